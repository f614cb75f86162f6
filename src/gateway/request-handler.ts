// What a client asks, turned into what the gateway does: a frame (already checked against
// its schema in requests.ts) becomes joining or leaving rooms (with a symbol filter, for the
// symbol-keyed channels), following the user's inbox, setting the user's alert preferences or
// acknowledging inbox entries, within the token's grants and the room and subscription
// limits, and ends in exactly one reply.
import type { ChannelRef } from '../core/channel.ts';
import { checkParam, TICKER } from '../core/channel-param.ts';
import { BusError, ErrorCode, PositionError, preview } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { isStreamId } from '../core/stream-id.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { TickerUpdates } from '../catalogs/broker.ts';
import { InboxNotices, USER_ID } from '../catalogs/system.ts';
import { AlertJobs } from '../catalogs/tickstock.ts';
import type { AlertPreferences } from './alert-preferences.ts';
import type { DeskRequests } from './desk-requests.ts';
import type { InboxRelay } from './inbox.ts';
import { JobRelay } from './job-relay.ts';
import { parseRequest, type AckRequest, type AlertsRequest, type RequestId, type SubscribeRequest, type UnsubscribeRequest } from './requests.ts';
import type { Resumer } from './resume.ts';
import type { RoomRegistry } from './rooms.ts';
import type { Session } from './session.ts';

/** A room a request names. */
interface Target {
  key: string;
  ref: ChannelRef;
  symbol: string | undefined;
}

/** How a request ends: its one reply. */
type Outcome =
  | { type: 'ok'; op: 'subscribe' | 'unsubscribe'; keys: string[]; failed: string[] }
  | { type: 'done'; op: 'alerts' | 'ack' }
  | { type: 'reply'; op: 'order' | 'cancel' | 'history' | 'backtest' | 'backtest_cancel'; fields: Record<string, unknown> }
  | { type: 'pong'; t: number | undefined }
  | { type: 'error'; code: ErrorCode; message: string };

function refuse(code: ErrorCode, message: string): Extract<Outcome, { type: 'error' }> {
  return { type: 'error', code, message };
}

/** What a client may cost (GatewayOptions). */
export interface RequestLimits {
  readonly maxSubscriptions: number;
  readonly maxRooms: number;
  readonly maxRoomsPerConnection: number;
  readonly maxRoomsPerUser: number;
  readonly ratePerSecond: number;
}

export interface RequestHandlerOptions {
  readonly bus: TickBus;
  readonly logger: Logger;
  readonly limits: RequestLimits;
  /** Connections carry a verified JWT: its user is who they are (jobs, per-user room limit). */
  readonly authenticated: boolean;
  /** Catalog channels besides ticker updates that clients may subscribe to, by name. */
  readonly exposed: ReadonlySet<string>;
  readonly rooms: RoomRegistry;
  /** Undefined when the gateway does not relay jobs. */
  readonly jobs: JobRelay | undefined;
  readonly resumer: Resumer;
  /** The alert preferences and inboxes; undefined when the gateway has no Redis to keep them in. */
  readonly alerts: { readonly preferences: AlertPreferences; readonly inbox: InboxRelay } | undefined;
  /** Orders, history, backtests (desk-requests.ts). */
  readonly desk: DeskRequests;
  /** The open connections of a user (with JWT), for the per-user room limit. */
  readonly connectionsOf: (user: string) => ReadonlySet<Session> | undefined;
  /** An error reply, by code (for the metrics). */
  readonly errorSent: (code: ErrorCode) => void;
}

export class RequestHandler {
  readonly #options: RequestHandlerOptions;

  constructor(options: RequestHandlerOptions) {
    this.#options = options;
  }

  /**
   * One client frame. Every path ends in exactly one reply: `pong`, `ok` (sent when the
   * request has an id: what it did) or an `error` without `key` (the request refused as a
   * whole). Per-key messages (`subscribed`, `unsubscribed`, an `error` with `key`) come
   * before it and carry the id too.
   */
  async handle(session: Session, raw: Buffer, isBinary: boolean): Promise<void> {
    if (session.closed) return;
    const { id, outcome } = await this.#answer(session, raw, isBinary);
    switch (outcome.type) {
      case 'error':
        return this.#error(session, outcome.code, outcome.message, undefined, id);
      case 'pong':
        return session.send({ type: 'pong', ...(outcome.t === undefined ? {} : { t: outcome.t }), ...(id === undefined ? {} : { id }) });
      case 'ok':
        // Without an id there is nothing to match it to: the per-key messages said it all.
        if (id !== undefined) session.send({ type: 'ok', op: outcome.op, keys: outcome.keys, failed: outcome.failed, id });
        return;
      case 'done':
        // Nothing else answers these: the `ok` goes out with or without an id.
        return session.send({ type: 'ok', op: outcome.op, ...(id === undefined ? {} : { id }) });
      case 'reply':
        return session.send({ type: 'ok', op: outcome.op, ...outcome.fields, ...(id === undefined ? {} : { id }) });
    }
  }

  #error(session: Session, code: ErrorCode, message: string, key?: string, id?: RequestId): void {
    this.#options.errorSent(code);
    session.send({ type: 'error', code, message, ...(key === undefined ? {} : { key }), ...(id === undefined ? {} : { id }) });
  }

  /** What to answer a frame with. Never throws: a failure is an outcome too. */
  async #answer(session: Session, raw: Buffer, isBinary: boolean): Promise<{ id: RequestId | undefined; outcome: Outcome }> {
    // Parsed before the rate check, so that even a request over the rate is answered with its id.
    const parsed = isBinary ? undefined : parseRequest(raw.toString('utf8'));
    const id = parsed?.id;
    if (!session.allowRequest()) return { id, outcome: refuse(ErrorCode.RateLimited, `More than ${this.#options.limits.ratePerSecond} requests a second; slow down.`) };
    if (!parsed) return { id, outcome: refuse(ErrorCode.BadRequest, 'Binary frames are not part of the protocol: send JSON text.') };
    if (!parsed.ok) return { id, outcome: refuse(parsed.code, parsed.message) };
    const request = parsed.request;
    try {
      switch (request.op) {
        case 'subscribe':
          return { id, outcome: await this.#subscribe(session, request, id) };
        case 'unsubscribe':
          return { id, outcome: await this.#unsubscribe(session, request, id) };
        case 'ping':
          return { id, outcome: { type: 'pong', t: request.t } };
        case 'alerts':
          return { id, outcome: await this.#alerts(session, request) };
        case 'ack':
          return { id, outcome: await this.#ack(session, request) };
        case 'history':
          return { id, outcome: await this.#options.desk.handle(session.grants, request, undefined, session) };
        case 'order':
        case 'cancel':
        case 'backtest':
        case 'backtest_cancel': {
          const who = this.#userOf(session, request.user, `{"op":"${request.op}","user":"<user id>",…}`);
          if ('type' in who) return { id, outcome: who };
          return { id, outcome: await this.#options.desk.handle(session.grants, request, who.user, session) };
        }
      }
    } catch (error) {
      return { id, outcome: this.#failure(session, error, request.op) };
    }
  }

  /**
   * Our own refusals say what to fix; a failure of Redis (its message names its address and
   * internals) is logged here, and the client is told only that it happened.
   */
  #failure(session: Session, error: unknown, what: string): Extract<Outcome, { type: 'error' }> {
    const code = error instanceof BusError ? error.code : ErrorCode.Transport;
    // A refusal by Redis's ACL names the gateway's Redis user and address: for the operator's log only.
    const ours = error instanceof BusError && !error.retryable && code !== ErrorCode.NoPermission;
    if (!ours) this.#options.logger.warn({ err: error, session: session.id, op: what }, 'gateway: request failed');
    if (code === ErrorCode.NoPermission) return refuse(code, 'The gateway is not allowed to do this on its Redis (its ACL user lacks a permission); the operator can grant it.');
    return refuse(code, ours ? error.message : 'The gateway could not complete this request (Redis is unavailable); try again.');
  }

  /**
   * The rooms a request names, checked: symbols against the ticker rule, channels against
   * what is exposed, both against the token. Each refused one gets its error (with its key)
   * and is listed in `failed`.
   */
  #targets(session: Session, op: { symbols?: string[] | undefined; channels?: string[] | undefined }, id: RequestId | undefined): { targets: Target[]; failed: string[] } {
    const { exposed, bus } = this.#options;
    const targets: Target[] = [];
    const failed: string[] = [];
    const refuse = (code: ErrorCode, message: string, key: string) => {
      this.#error(session, code, message, key, id);
      failed.push(key);
    };
    for (const raw of op.symbols ?? []) {
      let symbol: string;
      try {
        symbol = checkParam(TICKER, 'symbol', raw);
      } catch (error) {
        refuse(ErrorCode.InvalidChannelParam, (error as Error).message, preview(raw, 20));
        continue;
      }
      if (session.grants.symbols && !session.grants.symbols.has(symbol) && !session.grants.symbols.has('*')) {
        refuse(ErrorCode.Forbidden, `Your token does not allow ${symbol}.`, symbol);
        continue;
      }
      targets.push({ key: symbol, ref: TickerUpdates.of({ ticker: symbol }), symbol });
    }
    for (const name of op.channels ?? []) {
      const found = exposed.has(name) ? bus.context.resolver.resolve(name) : undefined;
      if (!found) {
        refuse(ErrorCode.UnknownChannel, `"${preview(name, 60)}" is not a channel this gateway exposes (${[...exposed].join(', ') || 'none'}).`, preview(name, 60));
        continue;
      }
      if (session.grants.channels && !session.grants.channels.has(name) && !session.grants.channels.has('*')) {
        refuse(ErrorCode.Forbidden, `Your token does not allow ${name}.`, name);
        continue;
      }
      const channel = found.channel as unknown as { isTemplate: boolean; of(params?: Readonly<Record<string, string>>): ChannelRef };
      targets.push({ key: name, ref: channel.of(channel.isTemplate ? found.params : undefined), symbol: undefined });
    }
    return { targets, failed };
  }

  /** Whose jobs a `jobs` subscription follows, or why it may not. */
  #jobsUser(session: Session, op: SubscribeRequest): { user: string } | Outcome {
    if (!this.#options.jobs) return refuse(ErrorCode.UnknownChannel, 'This gateway does not relay jobs.');
    return this.#userOf(session, op.user, '{"op":"subscribe","jobs":true,"user":"<user id>"}');
  }

  /**
   * The user a request acts for: the token's subject with JWT (asking for another is
   * TB_ERR_FORBIDDEN), else the request's `user` (trusted networks only). `example` says how.
   */
  #userOf(session: Session, asked: string | undefined, example: string): { user: string } | Extract<Outcome, { type: 'error' }> {
    const claimed = session.grants.user;
    if (claimed !== undefined && asked !== undefined && asked !== claimed) return refuse(ErrorCode.Forbidden, `Your token is for user ${claimed}, not ${preview(asked, 40)}.`);
    const user = claimed ?? asked;
    if (user === undefined || !USER_ID.allow.test(user)) {
      return this.#options.authenticated ? refuse(ErrorCode.Forbidden, 'Your token names no user (its "sub" claim).') : refuse(ErrorCode.BadRequest, `Say which user (${USER_ID.rule}): ${example}.`);
    }
    // From now on this connection sees the user's orders (order-privacy.ts).
    session.actFor(user);
    return { user };
  }

  /** Symbols as the ticker rule makes them, each allowed by the token; or why not (the request as a whole). */
  #symbolSet(session: Session, raw: readonly string[], what: string): Set<string> | Extract<Outcome, { type: 'error' }> {
    const out = new Set<string>();
    for (const r of raw) {
      let symbol: string;
      try {
        symbol = checkParam(TICKER, 'symbol', r);
      } catch (error) {
        return refuse(ErrorCode.InvalidChannelParam, `${what}: ${(error as Error).message}`);
      }
      if (session.grants.symbols && !session.grants.symbols.has(symbol) && !session.grants.symbols.has('*')) return refuse(ErrorCode.Forbidden, `${what}: your token does not allow ${symbol}.`);
      out.add(symbol);
    }
    return out;
  }

  /**
   * The symbol filter of a subscribe, checked: it applies to channels (each symbol-keyed:
   * the catalog names the field messages are routed by), never to ticker symbols, which are
   * rooms of their own. Undefined: no filter.
   */
  #filterOf(session: Session, op: SubscribeRequest): { filter: ReadonlySet<string> | undefined } | Extract<Outcome, { type: 'error' }> {
    if (op.filter === undefined) return { filter: undefined };
    if ((op.symbols?.length ?? 0) > 0 || (op.channels?.length ?? 0) === 0) return refuse(ErrorCode.BadRequest, 'A "filter" applies to "channels" (symbol-keyed ones): subscribe to ticker "symbols" in a request of their own.');
    const { exposed, bus } = this.#options;
    for (const name of op.channels ?? []) {
      const found = exposed.has(name) ? bus.context.resolver.resolve(name) : undefined;
      // Unknown ones are refused per key, as without a filter.
      if (found && found.channel.keyField === undefined) return refuse(ErrorCode.BadRequest, `${preview(name, 60)} is not keyed by symbol: it cannot be filtered (subscribe to it without "filter").`);
    }
    const symbols = this.#symbolSet(session, op.filter.symbols, 'filter');
    return symbols instanceof Set ? { filter: symbols } : symbols;
  }

  #alertsNeeded(): NonNullable<RequestHandlerOptions['alerts']> | Extract<Outcome, { type: 'error' }> {
    return this.#options.alerts ?? refuse(ErrorCode.UnknownChannel, 'This gateway keeps no alerts or inboxes (it has no Redis).');
  }

  /** Sets the user's alert preferences: here at once, then published on tickstock.jobs.alerts for every gateway and seed app. */
  async #alerts(session: Session, op: AlertsRequest): Promise<Outcome> {
    const alerts = this.#alertsNeeded();
    if ('type' in alerts) return alerts;
    const who = this.#userOf(session, op.user, '{"op":"alerts","user":"<user id>","symbols":["AAPL"]}');
    if ('type' in who) return who;
    const symbols = op.symbols === undefined ? undefined : this.#symbolSet(session, op.symbols, 'symbols');
    if (symbols !== undefined && !(symbols instanceof Set)) return symbols;
    const message = {
      user_id: who.user,
      action: op.action ?? ('subscribe' as const),
      ...(symbols === undefined ? {} : { symbols: [...symbols] }),
      ...(op.patterns === undefined ? {} : { patterns: op.patterns }),
      ...(op.min_confidence === undefined ? {} : { min_confidence: op.min_confidence }),
      timestamp: Date.now() / 1000,
    };
    await alerts.preferences.apply(message);
    await this.#options.bus.publish(AlertJobs, message);
    return { type: 'done', op: 'alerts' };
  }

  /** Removes the user's inbox entries up to and including the id given. */
  async #ack(session: Session, op: AckRequest): Promise<Outcome> {
    const alerts = this.#alertsNeeded();
    if ('type' in alerts) return alerts;
    const who = this.#userOf(session, op.user ?? alerts.inbox.userOf(session), '{"op":"ack","inbox":"<id>","user":"<user id>"}');
    if ('type' in who) return who;
    if (!isStreamId(op.inbox)) return refuse(ErrorCode.InvalidPosition, new PositionError('inbox', op.inbox).message);
    await alerts.inbox.ack(who.user, op.inbox);
    return { type: 'done', op: 'ack' };
  }

  /**
   * The targets that may go ahead: joining a room that is open costs nothing; opening one
   * must stay within the gateway's room limit, the connection's and (with JWT) its user's.
   * Each refused one gets a TB_ERR_ROOM_LIMIT error with its key. Decided synchronously, so
   * concurrent requests cannot overshoot a limit together.
   */
  #withinRoomLimits(session: Session, targets: Target[], id: RequestId | undefined, failed: string[]): Target[] {
    const { limits, rooms } = this.#options;
    const user = this.#options.authenticated ? session.grants.user : undefined;
    const peers = user === undefined ? undefined : this.#options.connectionsOf(user);
    let mine = rooms.ownedBy(session);
    let users = peers ? [...peers].reduce((n, s) => n + rooms.ownedBy(s), 0) : 0;
    let open = rooms.size;
    const allowed: Target[] = [];
    for (const t of targets) {
      if (rooms.get(t.key)) {
        allowed.push(t);
        continue;
      }
      const why =
        open >= limits.maxRooms
          ? `this gateway has its maximum of ${limits.maxRooms} rooms open (--max-rooms)`
          : mine >= limits.maxRoomsPerConnection
            ? `this connection already opened its maximum of ${limits.maxRoomsPerConnection} rooms nobody else watches (--max-rooms-per-connection)`
            : peers && users >= limits.maxRoomsPerUser
              ? `user ${preview(user ?? '', 40)} already opened its maximum of ${limits.maxRoomsPerUser} rooms (--max-rooms-per-user)`
              : undefined;
      if (why !== undefined) {
        this.#error(session, ErrorCode.RoomLimit, `Cannot open a room for ${preview(t.key, 40)}: ${why}. Symbols others already watch can still be subscribed.`, t.key, id);
        failed.push(t.key);
        continue;
      }
      open++;
      mine++;
      users++;
      allowed.push(t);
    }
    return allowed;
  }

  async #subscribe(session: Session, op: SubscribeRequest, id: RequestId | undefined): Promise<Outcome> {
    const { rooms, jobs: relay, resumer, limits } = this.#options;
    // Whatever refuses the request as a whole is decided before anything is joined.
    const jobs = op.jobs === true ? this.#jobsUser(session, op) : undefined;
    if (jobs !== undefined && !('user' in jobs)) return jobs;
    const filtered = this.#filterOf(session, op);
    if ('type' in filtered) return filtered;
    const { filter } = filtered;
    const since = op.since ?? {};
    let inbox: { user: string; relay: InboxRelay; after: string | undefined } | undefined;
    if (op.inbox === true) {
      const alerts = this.#alertsNeeded();
      if ('type' in alerts) return alerts;
      const who = this.#userOf(session, op.user, '{"op":"subscribe","inbox":true,"user":"<user id>"}');
      if ('type' in who) return who;
      const after = since.inbox;
      if (after !== undefined && !isStreamId(after)) return refuse(ErrorCode.InvalidPosition, new PositionError('since.inbox', after).message);
      inbox = { user: who.user, relay: alerts.inbox, after };
    }
    const { targets: named, failed } = this.#targets(session, op, id);
    // Each room once; one this client is already in counts as done. A position that is not a
    // stream id is refused here, before the room is joined: Redis would refuse the history
    // read only after the client was subscribed.
    const held = rooms.roomsOf(session);
    const unique = [...new Map(named.map((t) => [t.key, t])).values()];
    const keys = unique.filter((t) => held.has(t.key)).map((t) => t.key);
    // A room already held takes the new filter (or, without one, everything again): the latest subscribe decides.
    for (const t of unique) if (t.ref.channel.keyField !== undefined) held.get(t.key)?.setFilter(session, filter);
    const targets = unique.filter((t) => {
      if (held.has(t.key)) return false;
      const after = since[t.key];
      if (after === undefined || isStreamId(after)) return true;
      this.#error(session, ErrorCode.InvalidPosition, new PositionError(`since.${t.key}`, after).message, t.key, id);
      failed.push(t.key);
      return false;
    });
    if (held.size + targets.length > limits.maxSubscriptions) {
      return refuse(ErrorCode.TooManySubscriptions, `At most ${limits.maxSubscriptions} subscriptions per connection (${held.size} held).`);
    }
    if (jobs !== undefined && relay) {
      const room = await relay.join(session, jobs.user);
      session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume: 'live', ...(id === undefined ? {} : { id }) });
      keys.push(room.key);
    }
    // After the last await before joining: no other request can open rooms in between.
    const allowed = this.#withinRoomLimits(session, targets, id, failed);
    await Promise.all(
      allowed.map(async ({ key, ref, symbol }) => {
        const resumeFrom = since[key];
        try {
          // Live updates wait until what this client missed (or its snapshot) has gone out.
          const room = await rooms.join(session, key, ref, symbol, (r) => session.hold(r), ref.channel.keyField === undefined ? undefined : filter);
          if (session.closed) return;
          await resumer.catchUp(session, room, resumeFrom, id);
          keys.push(key);
        } catch (error) {
          // One room failing (Redis refused it) does not stop the others; its error says which.
          const refused = this.#failure(session, error, 'subscribe');
          this.#error(session, refused.code, refused.message, key, id);
          failed.push(key);
        }
      }),
    );
    if (inbox && !session.closed) {
      try {
        const replayed = await inbox.relay.follow(session, inbox.user, inbox.after);
        session.send({ type: 'subscribed', key: 'inbox', channel: InboxNotices.name({ user: inbox.user }), resume: replayed > 0 ? 'replayed' : 'live', ...(replayed > 0 ? { replayed } : {}), ...(id === undefined ? {} : { id }) });
        keys.push('inbox');
      } catch (error) {
        const refused = this.#failure(session, error, 'subscribe');
        this.#error(session, refused.code, refused.message, 'inbox', id);
        failed.push('inbox');
      }
    }
    return { type: 'ok', op: 'subscribe', keys, failed };
  }

  async #unsubscribe(session: Session, op: UnsubscribeRequest, id: RequestId | undefined): Promise<Outcome> {
    const { rooms, jobs, alerts } = this.#options;
    const keys: string[] = [];
    if (op.inbox === true && alerts) {
      alerts.inbox.leave(session);
      session.send({ type: 'unsubscribed', key: 'inbox', ...(id === undefined ? {} : { id }) });
      keys.push('inbox');
    }
    if (op.jobs === true) {
      for (const room of [...rooms.roomsOf(session).values()]) {
        if (!JobRelay.isJobRoom(room)) continue;
        jobs?.leave(session, room);
        session.send({ type: 'unsubscribed', key: room.key, ...(id === undefined ? {} : { id }) });
        keys.push(room.key);
      }
    }
    for (const key of [...(op.symbols ?? []).map((s) => s.trim().toUpperCase()), ...(op.channels ?? [])]) {
      const room = rooms.roomsOf(session).get(key);
      if (room) await rooms.leave(session, room);
      session.send({ type: 'unsubscribed', key, ...(id === undefined ? {} : { id }) });
      keys.push(key);
    }
    return { type: 'ok', op: 'unsubscribe', keys, failed: [] };
  }
}
