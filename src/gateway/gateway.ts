// The WebSocket gateway (seeds 002, 003): Redis events to browsers. One HTTP server: the
// dashboard at /, the WebSocket at /ws, /health and /metrics. Clients subscribe to symbols
// (and to the catalog channels the configuration exposes); the gateway holds one Redis
// subscription per room, batches each client's updates, resumes a client that comes back
// with its last positions (from history, or a snapshot of the last value), and keeps a slow
// reader from costing more than a bounded buffer. Protocol: docs/gateway.md.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, type Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ChannelRef } from '../core/channel.ts';
import { checkParam, TICKER } from '../core/channel-param.ts';
import { BusError, ConfigError, ErrorCode, PositionError, preview } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { compareStreamIds, isStreamId } from '../core/stream-id.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { GATEWAY_CLIENT_PREFIX, TickerUpdates } from '../catalogs/broker.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { OpsServer, type HealthReport, type Route } from '../ops/ops-server.ts';
import { verifyToken, type TokenOptions } from './auth.ts';
import { CloseCode } from './protocol.ts';
import { parseRequest, type RequestId, type SubscribeRequest, type UnsubscribeRequest } from './requests.ts';
import { RoomRegistry, updateJson, type Room } from './rooms.ts';
import { JobRelay } from './job-relay.ts';
import { Session, type Grants, type SessionLimits } from './session.ts';

/** A room a request names. */
interface Target {
  key: string;
  ref: ChannelRef;
  symbol: string | undefined;
}

/** How a request ends: its one reply. */
type Outcome =
  | { type: 'ok'; op: 'subscribe' | 'unsubscribe'; keys: string[]; failed: string[] }
  | { type: 'pong'; t: number | undefined }
  | { type: 'error'; code: ErrorCode; message: string };

function refuse(code: ErrorCode, message: string): Extract<Outcome, { type: 'error' }> {
  return { type: 'error', code, message };
}

export interface GatewayOptions {
  bus: TickBus;
  logger: Logger;
  /** @default 8090 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Flush each client's updates every this many ms; 0 sends each at once. @default 250 */
  batchMs?: number;
  /** Within one flush, send only the latest price per symbol. @default false */
  conflate?: boolean;
  /** Per-client send buffer above which updates are conflated (x2: dropped, x4: closed). @default 1 MiB */
  highWaterBytes?: number;
  /** A client still over twice the high-water mark after this long is closed (4008). @default 5000 */
  slowClientCloseMs?: number;
  /** @default 200 */
  maxSubscriptions?: number;
  /** Rooms open at once in this gateway (each a Redis subscription, and for a ticker a broker lease). @default 500 */
  maxRooms?: number;
  /** Rooms one connection may own: it opened them (or was left the last in them). @default 100 */
  maxRoomsPerConnection?: number;
  /** With JWT: rooms the connections of one user (`sub`) may own together. @default 200 */
  maxRoomsPerUser?: number;
  /** Requests per second per client (bursts of twice that). @default 20 */
  ratePerSecond?: number;
  /** Largest frame a client may send. @default 64 KiB */
  maxFrameBytes?: number;
  /** Browser origins allowed to connect (the Origin header); unset allows any. */
  allowedOrigins?: readonly string[];
  /** Require a JWT (query `token` or `Authorization: Bearer`) naming what the user may see. */
  auth?: TokenOptions;
  /** Catalog channels besides ticker updates that clients may subscribe to, by name. */
  channels?: readonly string[];
  /** The last price of a symbol (the broker's last-value cache), for snapshots. */
  lastValue?: (symbol: string) => Promise<unknown>;
  /** Messages read from history per resume at most; a bigger gap gets a snapshot. @default 1000 */
  maxReplay?: number;
  /** Name of the gateway's broker leases; starts with `gateway-` (the broker counts those against its gateway share). @default gateway-<random> */
  clientId?: string;
  /** @default 60 */
  leaseTtlSeconds?: number;
  /** Extra HTTP routes (the dashboard's files are added). */
  routes?: Record<string, Route>;
  /** The owner (user id) of a backtest job, from its record: enables `jobs` subscriptions. */
  jobOwner?: (jobId: string) => Promise<string | undefined>;
  /** What /health reports, when the gateway shares its process (tickbus up); default: the gateway's own. */
  health?: () => HealthReport | Promise<HealthReport>;
}

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: `${PUBLIC_DIR}index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { file: `${PUBLIC_DIR}app.js`, type: 'text/javascript; charset=utf-8' },
  '/tickbus-client.js': { file: `${PUBLIC_DIR}tickbus-client.js`, type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: `${PUBLIC_DIR}style.css`, type: 'text/css; charset=utf-8' },
};

function chartsFile(): string {
  const pkg = createRequire(import.meta.url).resolve('lightweight-charts/package.json');
  return pkg.replace(/package\.json$/, 'dist/lightweight-charts.standalone.production.mjs');
}

function staticRoute(file: string, type: string): Route {
  let body: Buffer | undefined;
  return (_req, res) => {
    body ??= readFileSync(file);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.end(body);
  };
}

class GatewayMetrics {
  readonly connections: Gauge;
  readonly rooms: Gauge;
  readonly delivered: Counter;
  readonly dropped: Counter<'reason'>;
  readonly closed: Counter<'code'>;
  readonly errors: Counter<'code'>;
  readonly resumes: Counter<'result'>;
  readonly #registry: Registry;
  static readonly NAMES = ['tickbus_gateway_connections', 'tickbus_gateway_rooms', 'tickbus_gateway_updates_delivered_total', 'tickbus_gateway_updates_dropped_total', 'tickbus_gateway_closed_total', 'tickbus_gateway_errors_total', 'tickbus_gateway_resumes_total'];
  /** Per-delivery counts, handed to prom-client on scrape (its inc() is costly per call). */
  readonly pending = { delivered: 0 };

  constructor(registry: Registry, sessions: () => number, rooms: () => number) {
    // A gateway restarted in the same process (a test, an embedding app) takes the names over.
    for (const name of GatewayMetrics.NAMES) registry.removeSingleMetric(name);
    this.#registry = registry;
    const registers = [registry];
    const pending = this.pending;
    this.connections = new Gauge({ name: 'tickbus_gateway_connections', help: 'Open WebSocket connections.', registers, collect() { this.set(sessions()); } });
    this.rooms = new Gauge({ name: 'tickbus_gateway_rooms', help: 'Symbols and channels with at least one client (one Redis subscription each).', registers, collect() { this.set(rooms()); } });
    this.delivered = new Counter({
      name: 'tickbus_gateway_updates_delivered_total',
      help: 'Updates handed to client sockets.',
      registers,
      collect() {
        if (pending.delivered > 0) this.inc(pending.delivered);
        pending.delivered = 0;
      },
    });
    this.dropped = new Counter({ name: 'tickbus_gateway_updates_dropped_total', help: 'Updates not sent to a slow client: conflated (a newer price replaced it) or dropped.', labelNames: ['reason'], registers });
    this.closed = new Counter({ name: 'tickbus_gateway_closed_total', help: 'Connections closed, by close code.', labelNames: ['code'], registers });
    this.errors = new Counter({ name: 'tickbus_gateway_errors_total', help: 'Error replies sent to clients, by code.', labelNames: ['code'], registers });
    this.resumes = new Counter({ name: 'tickbus_gateway_resumes_total', help: 'Subscriptions answered with history (replayed), a snapshot, or live only.', labelNames: ['result'], registers });
  }

  unregister(): void {
    for (const name of GatewayMetrics.NAMES) this.#registry.removeSingleMetric(name);
  }
}

export class Gateway {
  readonly clientId: string;
  readonly #o: Required<Omit<GatewayOptions, 'allowedOrigins' | 'auth' | 'lastValue' | 'routes' | 'clientId' | 'health' | 'jobOwner'>> & GatewayOptions;
  readonly #jobs: JobRelay | undefined;
  readonly #ops: OpsServer;
  readonly #wss: WebSocketServer;
  readonly #rooms: RoomRegistry;
  readonly #sessions = new Set<Session>();
  /** With JWT: each user's open connections, for the per-user room limit. */
  readonly #byUser = new Map<string, Set<Session>>();
  readonly #dirty = new Set<Session>();
  readonly #dirtyRooms = new Set<Room>();
  /** Rooms joined since the last flush: their members may start sharing at the next one. */
  readonly #joined = new Set<Room>();
  readonly #limits: SessionLimits;
  readonly #metrics: GatewayMetrics;
  readonly #exposed: ReadonlySet<string>;
  #flushTimer: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #pingTimer: NodeJS.Timeout | undefined;
  readonly #alive = new WeakSet<WebSocket>();
  #url: string | undefined;

  constructor(options: GatewayOptions) {
    this.#o = {
      port: 8090,
      host: '127.0.0.1',
      batchMs: 250,
      conflate: false,
      highWaterBytes: 1024 * 1024,
      slowClientCloseMs: 5_000,
      maxSubscriptions: GATEWAY_DEFAULTS.maxSubscriptions,
      maxRooms: GATEWAY_DEFAULTS.maxRooms,
      maxRoomsPerConnection: GATEWAY_DEFAULTS.maxRoomsPerConnection,
      maxRoomsPerUser: GATEWAY_DEFAULTS.maxRoomsPerUser,
      ratePerSecond: 20,
      maxFrameBytes: 64 * 1024,
      channels: [],
      maxReplay: 1000,
      leaseTtlSeconds: 60,
      ...options,
    };
    const o = this.#o;
    for (const [name, value] of [['batchMs', o.batchMs], ['highWaterBytes', o.highWaterBytes], ['maxSubscriptions', o.maxSubscriptions], ['maxRooms', o.maxRooms], ['maxRoomsPerConnection', o.maxRoomsPerConnection], ['maxRoomsPerUser', o.maxRoomsPerUser], ['ratePerSecond', o.ratePerSecond], ['maxFrameBytes', o.maxFrameBytes], ['maxReplay', o.maxReplay]] as const) {
      if (!Number.isSafeInteger(value) || value < (name === 'batchMs' ? 0 : 1)) throw new ConfigError(`gateway: ${name} must be a whole number${name === 'batchMs' ? ' of at least 0' : ' of at least 1'}, got ${String(value)}.`);
    }
    for (const name of o.channels) {
      if (!o.bus.context.resolver.resolve(name)) throw new ConfigError(`gateway: channel "${preview(name)}" is in no catalog; expose catalog channels by their names (e.g. tickstock.events.patterns).`);
    }
    this.#exposed = new Set(o.channels);
    if (o.clientId !== undefined && !o.clientId.startsWith(GATEWAY_CLIENT_PREFIX)) throw new ConfigError(`gateway: clientId must start with "${GATEWAY_CLIENT_PREFIX}" (the broker counts such leases against its share for gateways), got "${preview(o.clientId)}".`);
    this.clientId = o.clientId ?? `${GATEWAY_CLIENT_PREFIX}${randomUUID().slice(0, 8)}`;
    this.#limits = { batchMs: o.batchMs, conflate: o.conflate, highWaterBytes: o.highWaterBytes, maxSubscriptions: o.maxSubscriptions, ratePerSecond: o.ratePerSecond, slowCloseMs: o.slowClientCloseMs };
    this.#rooms = new RoomRegistry({
      bus: o.bus,
      logger: o.logger,
      clientId: this.clientId,
      leaseTtlSeconds: o.leaseTtlSeconds,
      dirty: (s) => this.#markDirty(s),
      dirtyRoom: o.batchMs > 0 ? (room) => this.#dirtyRooms.add(room) : undefined,
      conflate: o.conflate,
      conflated: (n) => this.#metrics.dropped.labels('conflated').inc(n),
    });
    this.#jobs = o.jobOwner ? new JobRelay(o.bus, o.jobOwner, o.logger, (s) => this.#markDirty(s)) : undefined;
    this.#metrics = new GatewayMetrics(o.bus.context.metrics.registry, () => this.#sessions.size, () => this.#rooms.size);
    const routes: Record<string, Route> = { '/vendor/lightweight-charts.mjs': staticRoute(chartsFile(), 'text/javascript; charset=utf-8'), ...o.routes };
    for (const [path, { file, type }] of Object.entries(STATIC)) routes[path] = staticRoute(file, type);
    this.#ops = new OpsServer({ port: o.port, host: o.host, registry: o.bus.context.metrics.registry, health: o.health ?? (() => this.health()), routes });
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: o.maxFrameBytes, clientTracking: false });
    this.#ops.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgrade(req, socket, head).catch((error: unknown) => {
        socket.destroy();
        o.bus.context.background.failed('gateway_upgrade', error);
      });
    });
  }

  get url(): string | undefined {
    return this.#url;
  }

  /** The metrics registry the gateway reports in (the bus's). */
  get registry(): Registry {
    return this.#o.bus.context.metrics.registry;
  }

  health(): HealthReport {
    const redis = this.#o.bus.publisher.isConnected;
    return { status: redis ? 'ok' : 'degraded', redis, ...this.stats() };
  }

  stats(): { connections: number; rooms: number; batch_ms: number } {
    return { connections: this.#sessions.size, rooms: this.#rooms.size, batch_ms: this.#o.batchMs };
  }

  async listen(): Promise<{ port: number; url: string }> {
    const address = await this.#ops.listen();
    this.#url = address.url;
    if (this.#o.batchMs > 0) {
      this.#flushTimer = setInterval(() => this.#flush(), this.#o.batchMs);
      this.#flushTimer.unref();
    }
    // Dead connections (a laptop closed, a network gone) are found by ping and cut off.
    this.#pingTimer = setInterval(() => {
      for (const s of this.#sessions) {
        if (!this.#alive.has(s.ws)) {
          s.ws.terminate();
          continue;
        }
        this.#alive.delete(s.ws);
        s.ws.ping();
      }
    }, 30_000);
    this.#pingTimer.unref();
    return address;
  }

  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    clearInterval(this.#pingTimer);
    for (const s of this.#sessions) s.close(1001, 'gateway shutting down');
    await this.#jobs?.close();
    await this.#rooms.close();
    await this.#ops.close();
    this.#metrics.unregister();
  }

  // ---- connections -----------------------------------------------------------------

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const reject = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${text}\n`);
    };
    if (url.pathname !== '/ws') return reject(404, 'Not Found: the WebSocket is at /ws');
    const origin = req.headers.origin;
    if (this.#o.allowedOrigins && origin !== undefined && !this.#o.allowedOrigins.includes(origin)) {
      this.#metrics.errors.labels(ErrorCode.Forbidden).inc();
      return reject(403, 'Forbidden: origin not allowed');
    }
    let grants: Grants = { symbols: undefined, channels: undefined };
    let expiresAt: number | undefined;
    if (this.#o.auth) {
      const header = req.headers.authorization;
      const token = url.searchParams.get('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined);
      const verified = await verifyToken(token, this.#o.auth);
      if (verified instanceof BusError) {
        this.#metrics.errors.labels(ErrorCode.Unauthorized).inc();
        return reject(401, `Unauthorized: ${verified.message}`);
      }
      grants = verified.grants;
      expiresAt = verified.expiresAt;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#connected(ws, grants, expiresAt));
  }

  #connected(ws: WebSocket, grants: Grants, expiresAt: number | undefined): void {
    const session = new Session(randomUUID(), ws, grants, this.#limits, {
      sent: (n) => (this.#metrics.pending.delivered += n),
      dropped: (reason, n) => this.#metrics.dropped.labels(reason).inc(n),
      closing: (code) => this.#metrics.closed.labels(String(code)).inc(),
    });
    this.#sessions.add(session);
    const user = this.#o.auth ? grants.user : undefined;
    if (user !== undefined) {
      let mine = this.#byUser.get(user);
      if (!mine) this.#byUser.set(user, (mine = new Set()));
      mine.add(session);
    }
    this.#alive.add(ws);
    ws.on('pong', () => this.#alive.add(ws));
    const background = this.#o.bus.context.background;
    ws.on('message', (raw, isBinary) => background.run('gateway_request', () => this.#onRequest(session, raw as Buffer, isBinary)));
    ws.on('error', (error) => this.#o.logger.debug({ err: error, session: session.id }, 'gateway: socket error'));
    ws.on('close', (code) => {
      // Closed by the client (or the network): counted here; the gateway's own closes are counted as it decides them.
      if (!session.closed) this.#metrics.closed.labels(String(code)).inc();
      session.closed = true;
      this.#sessions.delete(session);
      if (user !== undefined) {
        const mine = this.#byUser.get(user);
        mine?.delete(session);
        if (mine?.size === 0) this.#byUser.delete(user);
      }
      this.#dirty.delete(session);
      for (const room of [...session.rooms.values()]) {
        if (JobRelay.isJobRoom(room)) this.#jobs?.leave(session, room);
        // Redis may be away: the room is gone here at once; its unsubscribe fails and is reported.
        else background.run('gateway_room_leave', () => this.#rooms.leave(session, room));
      }
    });
    if (expiresAt !== undefined) {
      setTimeout(() => session.close(CloseCode.Unauthorized, 'token expired'), Math.max(0, expiresAt - Date.now())).unref();
    }
    const o = this.#o;
    session.send({ type: 'welcome', session: session.id, batchMs: o.batchMs, conflate: o.conflate, limits: { maxSubscriptions: o.maxSubscriptions, ratePerSecond: o.ratePerSecond, maxFrameBytes: o.maxFrameBytes }, channels: [...this.#exposed] });
  }

  #error(session: Session, code: ErrorCode, message: string, key?: string, id?: string | number): void {
    this.#metrics.errors.labels(code).inc();
    session.send({ type: 'error', code, message, ...(key === undefined ? {} : { key }), ...(id === undefined ? {} : { id }) });
  }

  /**
   * One client frame. Every path ends in exactly one reply: `pong`, `ok` (sent when the
   * request has an id: what it did) or an `error` without `key` (the request refused as a
   * whole). Per-key messages (`subscribed`, `unsubscribed`, an `error` with `key`) come
   * before it and carry the id too.
   */
  async #onRequest(session: Session, raw: Buffer, isBinary: boolean): Promise<void> {
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
    }
  }

  /** What to answer a frame with. Never throws: a failure is an outcome too. */
  async #answer(session: Session, raw: Buffer, isBinary: boolean): Promise<{ id: RequestId | undefined; outcome: Outcome }> {
    // Parsed before the rate check, so that even a request over the rate is answered with its id.
    const parsed = isBinary ? undefined : parseRequest(raw.toString('utf8'));
    const id = parsed?.id;
    if (!session.allowRequest()) return { id, outcome: refuse(ErrorCode.RateLimited, `More than ${this.#o.ratePerSecond} requests a second; slow down.`) };
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
    const ours = error instanceof BusError && !error.retryable;
    if (!ours) this.#o.logger.warn({ err: error, session: session.id, op: what }, 'gateway: request failed');
    const code = error instanceof BusError ? error.code : ErrorCode.Transport;
    return refuse(code, ours ? error.message : 'The gateway could not complete this request (Redis is unavailable); try again.');
  }

  /**
   * The rooms a request names, checked: symbols against the ticker rule, channels against
   * what is exposed, both against the token. Each refused one gets its error (with its key)
   * and is listed in `failed`.
   */
  #targets(session: Session, op: { symbols?: string[] | undefined; channels?: string[] | undefined }, id: RequestId | undefined): { targets: Target[]; failed: string[] } {
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
      const found = this.#exposed.has(name) ? this.#o.bus.context.resolver.resolve(name) : undefined;
      if (!found) {
        refuse(ErrorCode.UnknownChannel, `"${preview(name, 60)}" is not a channel this gateway exposes (${[...this.#exposed].join(', ') || 'none'}).`, preview(name, 60));
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
    if (!this.#jobs) return refuse(ErrorCode.UnknownChannel, 'This gateway does not relay jobs.');
    const claimed = session.grants.user;
    const asked = op.user;
    if (claimed !== undefined && asked !== undefined && asked !== claimed) return refuse(ErrorCode.Forbidden, `Your token is for user ${claimed}, not ${preview(asked, 40)}.`);
    const user = claimed ?? asked;
    if (user === undefined || !/^[A-Za-z0-9_.:-]{1,128}$/.test(user)) {
      return this.#o.auth ? refuse(ErrorCode.Forbidden, 'Your token names no user (its "sub" claim).') : refuse(ErrorCode.BadRequest, 'Say whose jobs: {"op":"subscribe","jobs":true,"user":"<user id>"}.');
    }
    return { user };
  }

  /**
   * The targets that may go ahead: joining a room that is open costs nothing; opening one
   * must stay within the gateway's room limit, the connection's and (with JWT) its user's.
   * Each refused one gets a TB_ERR_ROOM_LIMIT error with its key. Decided synchronously, so
   * concurrent requests cannot overshoot a limit together.
   */
  #withinRoomLimits(session: Session, targets: Target[], id: RequestId | undefined, failed: string[]): Target[] {
    const o = this.#o;
    const owned = (s: Session) => {
      let n = 0;
      for (const room of s.rooms.values()) if (room.owner === s) n++;
      return n;
    };
    const user = o.auth ? session.grants.user : undefined;
    const peers = user === undefined ? undefined : this.#byUser.get(user);
    let mine = owned(session);
    let users = peers ? [...peers].reduce((n, s) => n + owned(s), 0) : 0;
    let open = this.#rooms.size;
    const allowed: Target[] = [];
    for (const t of targets) {
      if (this.#rooms.get(t.key)) {
        allowed.push(t);
        continue;
      }
      const why =
        open >= o.maxRooms
          ? `this gateway has its maximum of ${o.maxRooms} rooms open (--max-rooms)`
          : mine >= o.maxRoomsPerConnection
            ? `this connection already opened its maximum of ${o.maxRoomsPerConnection} rooms nobody else watches (--max-rooms-per-connection)`
            : peers && users >= o.maxRoomsPerUser
              ? `user ${preview(user ?? '', 40)} already opened its maximum of ${o.maxRoomsPerUser} rooms (--max-rooms-per-user)`
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
    // Whatever refuses the request as a whole is decided before anything is joined.
    const jobs = op.jobs === true ? this.#jobsUser(session, op) : undefined;
    if (jobs !== undefined && !('user' in jobs)) return jobs;
    const { targets: named, failed } = this.#targets(session, op, id);
    const since = op.since ?? {};
    // Each room once; one this client is already in counts as done. A position that is not a
    // stream id is refused here, before the room is joined: Redis would refuse the history
    // read only after the client was subscribed.
    const unique = [...new Map(named.map((t) => [t.key, t])).values()];
    const keys = unique.filter((t) => session.rooms.has(t.key)).map((t) => t.key);
    const targets = unique.filter((t) => {
      if (session.rooms.has(t.key)) return false;
      const after = since[t.key];
      if (after === undefined || isStreamId(after)) return true;
      this.#error(session, ErrorCode.InvalidPosition, new PositionError(`since.${t.key}`, after).message, t.key, id);
      failed.push(t.key);
      return false;
    });
    if (session.rooms.size + targets.length > this.#o.maxSubscriptions) {
      return refuse(ErrorCode.TooManySubscriptions, `At most ${this.#o.maxSubscriptions} subscriptions per connection (${session.rooms.size} held).`);
    }
    if (jobs !== undefined && this.#jobs) {
      const room = await this.#jobs.join(session, jobs.user);
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
          const room = await this.#rooms.join(session, key, ref, symbol, (r) => session.hold(r));
          if (session.closed) return;
          await this.#catchUp(session, room, resumeFrom, id);
          keys.push(key);
        } catch (error) {
          // One room failing (Redis refused it) does not stop the others; its error says which.
          const refused = this.#failure(session, error, 'subscribe');
          this.#error(session, refused.code, refused.message, key, id);
          failed.push(key);
        }
      }),
    );
    return { type: 'ok', op: 'subscribe', keys, failed };
  }

  /**
   * History after the client's position if it holds what came after it, else a snapshot of
   * the last value. The room is joined by now: whatever fails here, the client is told it is
   * subscribed (with `gap` when its position could not be honoured), never an error.
   */
  async #catchUp(session: Session, room: Room, after: string | undefined, id: string | number | undefined): Promise<void> {
    let lastSent: string | undefined;
    const reply = (resume: 'replayed' | 'snapshot' | 'live', extra: { replayed?: number; gap?: true } = {}) =>
      session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume, ...extra, ...(id === undefined ? {} : { id }) });
    try {
      let gap = false;
      if (after !== undefined && room.ref.channel.hasHistory) {
        const read = await this.#o.bus.subscriber.history(room.ref, after, this.#o.maxReplay);
        gap = read.status === 'gap';
        // A gap still replays what history holds after the position, when that is all the
        // stream ever had after it (a Redis restarted without persistence): it is exactly
        // what the client missed. With nothing to replay, the last value stands in.
        if (read.status !== 'unavailable' && !read.more && (read.status === 'complete' || read.messages.length > 0)) {
          session.sendReplay(read.messages.map((m) => updateJson(room, m.data, m.context.position, true)));
          lastSent = read.messages.at(-1)?.context.position ?? after;
          this.#metrics.resumes.labels('replayed').inc();
          reply('replayed', { replayed: read.messages.length, ...(gap ? { gap: true as const } : {}) });
          return;
        }
      }
      const snapshot = await this.#snapshot(room);
      if (snapshot) {
        session.send({ type: 'snapshot', key: room.key, channel: room.ref.name, ...(snapshot.position ? { position: snapshot.position } : {}), data: snapshot.data });
        lastSent = snapshot.position;
      }
      this.#metrics.resumes.labels(snapshot ? 'snapshot' : 'live').inc();
      reply(snapshot ? 'snapshot' : 'live', gap ? { gap: true } : {});
    } catch (error) {
      this.#o.logger.warn({ err: error, session: session.id, key: room.key }, 'gateway: resume failed; the client goes on live');
      this.#metrics.resumes.labels('live').inc();
      reply('live', after === undefined ? {} : { gap: true });
    } finally {
      session.release(room, lastSent, (p, than) => compareStreamIds(p, than) > 0);
      this.#markDirty(session);
      if (this.#o.batchMs > 0) this.#joined.add(room);
    }
  }

  async #snapshot(room: Room): Promise<{ data: unknown; position: string | undefined } | undefined> {
    if (room.symbol !== undefined && this.#o.lastValue) {
      const price = await this.#o.lastValue(room.symbol);
      if (price !== undefined) return { data: price, position: undefined };
    }
    if (!room.ref.channel.hasHistory) return undefined;
    const latest = await this.#o.bus.subscriber.latest(room.ref);
    return latest ? { data: latest.data, position: latest.context.position } : undefined;
  }

  async #unsubscribe(session: Session, op: UnsubscribeRequest, id: RequestId | undefined): Promise<Outcome> {
    const keys: string[] = [];
    if (op.jobs === true) {
      for (const room of [...session.rooms.values()]) {
        if (!JobRelay.isJobRoom(room)) continue;
        this.#jobs?.leave(session, room);
        session.send({ type: 'unsubscribed', key: room.key, ...(id === undefined ? {} : { id }) });
        keys.push(room.key);
      }
    }
    for (const key of [...(op.symbols ?? []).map((s) => s.trim().toUpperCase()), ...(op.channels ?? [])]) {
      const room = session.rooms.get(key);
      if (room) await this.#rooms.leave(session, room);
      session.send({ type: 'unsubscribed', key, ...(id === undefined ? {} : { id }) });
      keys.push(key);
    }
    return { type: 'ok', op: 'unsubscribe', keys, failed: [] };
  }

  // ---- sending -----------------------------------------------------------------------

  #markDirty(session: Session): void {
    if (session.queued === 0) return;
    this.#dirty.add(session);
    // With batching off, only a conflating (slow) client queues: flush it on the next turn.
    if (this.#o.batchMs === 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /**
   * One flush: each room's updates since the last are joined once into a chunk; each client
   * gets its own queued updates and the chunks of the rooms it shares, in one frame. Then who
   * shares which room is decided again for the next flush (never in between: a client never
   * gets an update both ways, nor misses one).
   */
  #flush(): void {
    const chunks = new Map<Room, { json: string; count: number }>();
    const targets = new Set(this.#dirty);
    const rooms = new Set([...this.#dirtyRooms, ...this.#joined]);
    for (const room of this.#dirtyRooms) {
      if (room.pending.length === 0) continue;
      chunks.set(room, { json: room.pending.join(','), count: room.pending.length });
      room.pending = [];
      room.pendingPriceAt = -1;
      for (const s of room.shared) targets.add(s);
    }
    for (const s of targets) {
      let parts: string[] | undefined;
      let count = 0;
      for (const room of s.rooms.values()) {
        const chunk = chunks.get(room);
        if (chunk && room.shared.has(s)) {
          (parts ??= []).push(chunk.json);
          count += chunk.count;
        }
      }
      s.flush(parts, count);
    }
    this.#dirty.clear();
    this.#dirtyRooms.clear();
    if (this.#o.batchMs === 0) return;
    for (const room of rooms) {
      for (const s of room.members) {
        if (s.canShare(room)) room.shared.add(s);
        else room.shared.delete(s);
      }
    }
    this.#joined.clear();
  }
}
