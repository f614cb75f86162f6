// One browser (or Node) connection: what it subscribed to, what waits to be sent to it,
// and how it is doing. Updates are queued and flushed together every batch interval (or
// sent at once with batching off); a client that reads too slowly is first conflated
// (only the latest price per symbol), then loses updates (told by a notice), then is
// closed (4008), so that one slow reader never grows the gateway's memory without bound.
import type { WebSocket } from 'ws';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { ErrorCode } from '../core/errors.ts';
import { CloseCode, type ServerMessage } from './protocol.ts';
import type { RoomIdentity, RoomItem } from './room-updates.ts';

export interface SessionLimits {
  readonly batchMs: number;
  readonly conflate: boolean;
  /** Buffered bytes above which updates are conflated; twice this drops them; four times closes. */
  readonly highWaterBytes: number;
  readonly maxSubscriptions: number;
  readonly ratePerSecond: number;
  /** A client that stays over twice the high-water mark this long is closed. */
  readonly slowCloseMs: number;
}

/** What a token allows: undefined means everything. */
export interface Grants {
  readonly symbols: ReadonlySet<string> | undefined;
  readonly channels: ReadonlySet<string> | undefined;
  /** The token's subject: whose jobs this connection may follow. */
  readonly user?: string | undefined;
  /**
   * The token's `orders` claim: the symbols this user may place and cancel orders for
   * (`true` in the token: "*"). Undefined: no claim, so no orders with JWT on.
   */
  readonly orders?: ReadonlySet<string> | undefined;
}

export type SessionHealth = 'ok' | 'conflating' | 'dropping';

export interface SessionEvents {
  /** Updates handed to the socket, and frames. */
  sent(updates: number): void;
  dropped(reason: 'conflated' | 'dropped', count: number): void;
  /** The gateway closes this session (its own decision, with this code). */
  closing(code: number): void;
}

const BATCH_HEAD = '{"type":"batch","updates":[';
const BATCH_TAIL = ']}';

/**
 * A connection. It is a room member (rooms.ts `RoomMember`) by its shape; which rooms it is
 * in is kept by the room registry, not here.
 */
export class Session {
  readonly id: string;
  readonly ws: WebSocket;
  readonly grants: Grants;
  readonly #limits: SessionLimits;
  readonly #events: SessionEvents;
  #queue: string[] = [];
  /** Index in the queue of the newest price of each symbol, while conflating. */
  #latestPrice = new Map<string, number>();
  /** Live updates of a room held back while its history is replayed to this client. */
  readonly #held = new Map<RoomIdentity, RoomItem[]>();
  /** After a resume: the last position sent from history, and how to compare. Live copies at or before it are late (pub/sub can lag a history read). */
  readonly #floor = new Map<RoomIdentity, { after: string; newer: (position: string, than: string) => boolean }>();
  #dropped = 0;
  #health: SessionHealth = 'ok';
  #droppingSince = 0;
  /** Token bucket for requests. */
  #tokens: number;
  #refilledAt = Date.now();
  #abuse = 0;
  #closed = false;
  /** The users this connection acts for (order-privacy.ts): the token's subject, or those its requests named. */
  readonly #actingFor = new Set<string>();

  constructor(id: string, ws: WebSocket, grants: Grants, limits: SessionLimits, events: SessionEvents) {
    this.id = id;
    this.ws = ws;
    this.grants = grants;
    this.#limits = limits;
    this.#events = events;
    this.#tokens = limits.ratePerSecond * GATEWAY_DEFAULTS.requestBurstSeconds;
    if (grants.user !== undefined) this.#actingFor.add(grants.user);
  }

  /**
   * A request of this connection acts for `user` (already checked against the token): from
   * now on it sees that user's orders. Without JWT a connection may name several; the oldest
   * go past GATEWAY_DEFAULTS.usersPerConnection.
   */
  actFor(user: string): void {
    if (this.#actingFor.has(user)) return;
    if (this.#actingFor.size >= GATEWAY_DEFAULTS.usersPerConnection) this.#actingFor.delete(this.#actingFor.values().next().value as string);
    this.#actingFor.add(user);
  }

  actsFor(user: string): boolean {
    return this.#actingFor.has(user);
  }

  get health(): SessionHealth {
    return this.#health;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Closed by the gateway, or its socket closed: nothing more is sent, and requests are ignored. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Its socket has closed. Returns true when the gateway had not closed it itself (the client
   * or the network did: the gateway counts such closes here, its own as it decides them).
   */
  socketClosed(): boolean {
    const byPeer = !this.#closed;
    this.#closed = true;
    return byPeer;
  }

  /** Takes one request token; false when over the rate. Closes a client that keeps at it. */
  allowRequest(): boolean {
    const now = Date.now();
    const rate = this.#limits.ratePerSecond;
    this.#tokens = Math.min(rate * GATEWAY_DEFAULTS.requestBurstSeconds, this.#tokens + ((now - this.#refilledAt) / 1000) * rate);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#abuse = 0;
      return true;
    }
    if (++this.#abuse > rate * GATEWAY_DEFAULTS.rateAbuseSeconds) {
      // Said here, before the close: the replies to the refused requests go out a turn later,
      // when a batch of frames read in one go has already closed the session.
      this.send({ type: 'error', code: ErrorCode.RateLimited, message: `Closed: more than ${rate} requests a second for ${GATEWAY_DEFAULTS.rateAbuseSeconds} s.` });
      this.close(CloseCode.RateLimited, 'rate limit: too many requests');
    }
    return false;
  }

  send(message: ServerMessage): void {
    if (this.#closed) return;
    this.ws.send(JSON.stringify(message));
  }

  /** Holds a room's live updates until release(): its history goes first. */
  hold(room: RoomIdentity): void {
    this.#held.set(room, []);
  }

  /** Sends the held updates newer than `after` (older ones came from history), and stops holding. */
  release(room: RoomIdentity, after: string | undefined, newer: (position: string, than: string) => boolean): void {
    const held = this.#held.get(room);
    this.#held.delete(room);
    if (!held) return;
    if (after === undefined) this.#floor.delete(room);
    else this.#floor.set(room, { after, newer });
    for (const item of held) this.push(room, item);
  }

  /** One live update of a room this client is in. Returns true when the session wants a flush. */
  push(room: RoomIdentity, item: RoomItem): boolean {
    if (this.#closed) return false;
    const held = this.#held.get(room);
    if (held) {
      held.push(item);
      return false;
    }
    const floor = this.#floor.get(room);
    if (floor !== undefined && item.position !== undefined) {
      if (!floor.newer(item.position, floor.after)) return false;
      // Pub/sub is in order: once a newer one comes, no late copy can follow.
      this.#floor.delete(room);
    }
    if (!this.#checkPressure()) return false;
    if (this.#limits.batchMs === 0 && this.#health === 'ok') {
      this.ws.send(item.frame());
      this.#events.sent(1);
      return false;
    }
    if (item.conflateKey !== undefined && (this.#limits.conflate || this.#health !== 'ok')) {
      const at = this.#latestPrice.get(item.conflateKey);
      if (at !== undefined) {
        this.#queue[at] = item.json;
        this.#events.dropped('conflated', 1);
        return true;
      }
      this.#latestPrice.set(item.conflateKey, this.#queue.length);
    }
    this.#queue.push(item.json);
    return true;
  }

  /**
   * Sends what is queued, and the shared chunks of its rooms (`shared`, with `sharedCount`
   * updates in them), as one batch frame. A reader over the limits loses the chunks (they
   * are counted as dropped) or is closed.
   */
  flush(shared: readonly string[] = [], sharedCount = 0): void {
    if (this.#closed) return;
    let chunks = shared;
    if (chunks.length > 0 && !this.#checkPressure(sharedCount)) chunks = [];
    if (this.#queue.length === 0 && chunks.length === 0) return;
    const n = this.#queue.length + (chunks.length > 0 ? sharedCount : 0);
    const own = this.#queue.join(',');
    const body = chunks.length === 0 ? own : own.length === 0 ? chunks.join(',') : `${own},${chunks.join(',')}`;
    this.ws.send(BATCH_HEAD + body + BATCH_TAIL);
    this.#queue = [];
    this.#latestPrice.clear();
    this.#events.sent(n);
  }

  /** May this session take a room's shared chunk from the next flush on? */
  canShare(room: RoomIdentity): boolean {
    return !this.#closed && this.#health === 'ok' && !this.#held.has(room) && !this.#floor.has(room);
  }

  /** Sends updates read from history, in one batch, ahead of live ones. */
  sendReplay(items: string[]): void {
    if (this.#closed || items.length === 0) return;
    this.ws.send(BATCH_HEAD + items.join(',') + BATCH_TAIL);
    this.#events.sent(items.length);
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.closing(code);
    this.#queue = [];
    this.ws.close(code, reason);
    // A client that does not answer the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), GATEWAY_DEFAULTS.closeHandshakeMs).unref();
  }

  /**
   * Above the high-water mark, conflate; above twice (GATEWAY_DEFAULTS.dropAtHighWater),
   * drop (and say so once it drains); above four times (closeAtHighWater), or still above
   * twice after slowCloseMs, close. Returns false when this update is dropped.
   */
  #checkPressure(count = 1): boolean {
    const buffered = this.ws.bufferedAmount;
    const high = this.#limits.highWaterBytes;
    if (buffered > GATEWAY_DEFAULTS.dropAtHighWater * high) {
      const now = Date.now();
      if (this.#health !== 'dropping') this.#droppingSince = now;
      this.#health = 'dropping';
      this.#dropped += count;
      this.#events.dropped('dropped', count);
      if (buffered > GATEWAY_DEFAULTS.closeAtHighWater * high || now - this.#droppingSince > this.#limits.slowCloseMs) {
        this.close(CloseCode.SlowConsumer, `slow consumer: ${buffered} bytes waiting to be read`);
      }
      return false;
    }
    if (buffered > high) {
      this.#health = 'conflating';
      return true;
    }
    if (this.#health !== 'ok' && buffered <= high * GATEWAY_DEFAULTS.recoverAtHighWater) {
      this.#health = 'ok';
      if (this.#dropped > 0) {
        this.send({ type: 'notice', code: ErrorCode.SlowConsumer, message: `This connection read too slowly: ${this.#dropped} update(s) were dropped. Resubscribe with "since" to fill the gap from history.`, dropped: this.#dropped });
        this.#dropped = 0;
      }
    }
    return true;
  }
}
