// Rooms: one Redis subscription per symbol (or exposed channel) that at least one client
// watches, whatever the number of clients. A message is encoded once for the room, not
// once per client. A ticker room also holds a lease with the broker, in the gateway's
// name, so that the broker streams the ticker while anyone watches it.
import type { ChannelRef } from '../core/channel.ts';
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BrokerRegistration } from '../catalogs/broker.ts';
import type { Logger } from '../core/logger.ts';
import type { Session } from './session.ts';

/** One update of a room, encoded once for every member. */
export interface RoomItem {
  /** The update object as JSON, for a batch. */
  readonly json: string;
  readonly position: string | undefined;
  /** Set on price updates: within one flush only the newest per key needs to go out. */
  readonly conflateKey: string | undefined;
  /** A whole batch frame of just this update, built on first use and shared. */
  frame(): Buffer;
}

export class Room {
  readonly key: string;
  readonly ref: ChannelRef;
  readonly symbol: string | undefined;
  readonly members = new Set<Session>();
  /** The member the room counts against in the room limits: who opened it, or, once they leave, one who stayed. */
  owner: Session | undefined;
  /**
   * With batching, members in good health take the room's updates of a flush as one shared,
   * pre-joined chunk: per update the gateway does one push, not one per client. The others
   * (resuming, slow) get updates one by one. Who is which changes only between flushes.
   */
  readonly shared = new Set<Session>();
  /** Updates since the last flush (JSON), for the shared members. */
  pending: string[] = [];
  /** Where the newest price is in `pending`, for conflation. */
  pendingPriceAt = -1;
  subscription: Subscription | undefined;
  /** Settles when the Redis subscription is confirmed. */
  ready: Promise<void> = Promise.resolve();

  constructor(key: string, ref: ChannelRef, symbol: string | undefined) {
    this.key = key;
    this.ref = ref;
    this.symbol = symbol;
  }
}

export interface RoomOptions {
  readonly bus: TickBus;
  readonly logger: Logger;
  /** Who the gateway is, for its broker leases. */
  readonly clientId: string;
  readonly leaseTtlSeconds: number;
  /** Called for each member that wants a flush after an update. */
  readonly dirty: (session: Session) => void;
  /** With batching: a room got updates for its shared members since the last flush. */
  readonly dirtyRoom: ((room: Room) => void) | undefined;
  /** Within one flush, keep only the newest price of a symbol. */
  readonly conflate: boolean;
  readonly conflated: (count: number) => void;
}

/** One update as JSON (protocol.ts `Update`), built by concatenation: once per message. */
export function updateJson(room: Room, data: unknown, position: string | undefined, replayed = false, channel = room.ref.name): string {
  return (
    '{"channel":' +
    JSON.stringify(channel) +
    (room.symbol === undefined ? '' : ',"symbol":' + JSON.stringify(room.symbol)) +
    (position === undefined ? '' : ',"position":"' + position + '"') +
    (replayed ? ',"replayed":true' : '') +
    ',"data":' +
    JSON.stringify(data) +
    '}'
  );
}

export function makeItem(room: Room, data: unknown, position: string | undefined, channel?: string): RoomItem {
  const json = updateJson(room, data, position, false, channel);
  const isPrice = room.symbol !== undefined && (data as { type?: unknown } | null)?.type === 'price';
  let frame: Buffer | undefined;
  return {
    json,
    position,
    conflateKey: isPrice ? room.key : undefined,
    frame: () => (frame ??= Buffer.from('{"type":"batch","updates":[' + json + ']}')),
  };
}

export class RoomRegistry {
  readonly #rooms = new Map<string, Room>();
  readonly #o: RoomOptions;
  readonly #renewTimer: NodeJS.Timeout;

  constructor(options: RoomOptions) {
    this.#o = options;
    // Renew every lease well before it expires; a gateway that dies lets them lapse.
    this.#renewTimer = setInterval(() => options.bus.context.background.run('gateway_lease_renewal', () => this.#renewAll()), Math.max(1_000, (options.leaseTtlSeconds * 1000) / 3));
    this.#renewTimer.unref();
  }

  get size(): number {
    return this.#rooms.size;
  }

  get(key: string): Room | undefined {
    return this.#rooms.get(key);
  }

  /**
   * Puts a session in a room, making the room (and its subscription and lease) if needed.
   * `onEnter` runs before the first update can reach the session (to hold them).
   */
  async join(session: Session, key: string, ref: ChannelRef, symbol: string | undefined, onEnter?: (room: Room) => void): Promise<Room> {
    let room = this.#rooms.get(key);
    if (!room) {
      const made = new Room(key, ref, symbol);
      made.owner = session;
      room = made;
      this.#rooms.set(key, made);
      made.ready = this.#open(made).catch((error: unknown) => {
        this.#rooms.delete(key);
        throw error;
      });
    }
    onEnter?.(room);
    room.members.add(session);
    session.rooms.set(key, room);
    try {
      await room.ready;
    } catch (error) {
      room.members.delete(session);
      session.rooms.delete(key);
      if (room.owner === session) room.owner = room.members.values().next().value;
      throw error;
    }
    return room;
  }

  /** Takes a session out of a room; the last one out closes it. */
  async leave(session: Session, room: Room): Promise<void> {
    room.members.delete(session);
    room.shared.delete(session);
    session.rooms.delete(room.key);
    if (room.owner === session) room.owner = room.members.values().next().value;
    if (room.members.size > 0 || this.#rooms.get(room.key) !== room) return;
    this.#rooms.delete(room.key);
    await room.ready.catch(() => undefined);
    await room.subscription?.unsubscribe();
    if (room.symbol !== undefined) await this.#lease(room.symbol, 'unsubscribe');
  }

  async close(): Promise<void> {
    clearInterval(this.#renewTimer);
    const rooms = [...this.#rooms.values()];
    this.#rooms.clear();
    await Promise.all(
      rooms.map(async (room) => {
        await room.ready.catch(() => undefined);
        await room.subscription?.unsubscribe().catch(() => undefined);
        if (room.symbol !== undefined) await this.#lease(room.symbol, 'unsubscribe');
      }),
    );
  }

  async #open(room: Room): Promise<void> {
    const { dirtyRoom, dirty, conflate, conflated } = this.#o;
    room.subscription = await this.#o.bus.subscribe(room.ref, (data, ctx) => {
      if (room.members.size === 0) return;
      const item = makeItem(room, data, ctx.position);
      if (dirtyRoom) {
        if (room.shared.size > 0) {
          if (conflate && item.conflateKey !== undefined && room.pendingPriceAt >= 0) {
            room.pending[room.pendingPriceAt] = item.json;
            conflated(room.shared.size);
          } else {
            if (item.conflateKey !== undefined) room.pendingPriceAt = room.pending.length;
            room.pending.push(item.json);
          }
        }
        // Also with no one sharing yet: the flush decides again who may.
        dirtyRoom(room);
      }
      if (room.shared.size === room.members.size) return;
      for (const session of room.members) if (!room.shared.has(session) && session.push(room, item)) dirty(session);
    });
    if (room.symbol !== undefined) await this.#lease(room.symbol, 'subscribe');
  }

  async #lease(symbol: string, action: 'subscribe' | 'unsubscribe'): Promise<void> {
    try {
      await this.#o.bus.publish(BrokerRegistration, { action, ticker: symbol, client_id: this.#o.clientId, ...(action === 'subscribe' ? { ttl_seconds: this.#o.leaseTtlSeconds } : {}) });
    } catch (error) {
      // The next renewal tries again; the room works for whatever the broker streams.
      this.#o.bus.context.background.failed('gateway_broker_registration', error, { symbol, action });
    }
  }

  async #renewAll(): Promise<void> {
    for (const room of this.#rooms.values()) if (room.symbol !== undefined) await this.#lease(room.symbol, 'subscribe');
  }
}
