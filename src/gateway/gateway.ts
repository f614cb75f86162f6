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
import { BusError, ConfigError, ErrorCode, preview } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { compareStreamIds, isStreamId } from '../core/stream-id.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { TickerUpdates } from '../catalogs/broker.ts';
import { OpsServer, type HealthReport, type Route } from '../ops/ops-server.ts';
import { verifyToken, type TokenOptions } from './auth.ts';
import { CloseCode, type ClientOp } from './protocol.ts';
import { RoomRegistry, updateJson, type Room } from './rooms.ts';
import { JobRelay } from './job-relay.ts';
import { Session, type Grants, type SessionLimits } from './session.ts';

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
  /** Name of the gateway's broker leases. @default gateway-<random> */
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
      maxSubscriptions: 200,
      ratePerSecond: 20,
      maxFrameBytes: 64 * 1024,
      channels: [],
      maxReplay: 1000,
      leaseTtlSeconds: 60,
      ...options,
    };
    const o = this.#o;
    for (const [name, value] of [['batchMs', o.batchMs], ['highWaterBytes', o.highWaterBytes], ['maxSubscriptions', o.maxSubscriptions], ['ratePerSecond', o.ratePerSecond], ['maxFrameBytes', o.maxFrameBytes], ['maxReplay', o.maxReplay]] as const) {
      if (!Number.isSafeInteger(value) || value < (name === 'batchMs' ? 0 : 1)) throw new ConfigError(`gateway: ${name} must be a whole number${name === 'batchMs' ? ' of at least 0' : ' of at least 1'}, got ${String(value)}.`);
    }
    for (const name of o.channels) {
      if (!o.bus.context.resolver.resolve(name)) throw new ConfigError(`gateway: channel "${preview(name)}" is in no catalog; expose catalog channels by their names (e.g. tickstock.events.patterns).`);
    }
    this.#exposed = new Set(o.channels);
    this.clientId = o.clientId ?? `gateway-${randomUUID().slice(0, 8)}`;
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

  async #onRequest(session: Session, raw: Buffer, isBinary: boolean): Promise<void> {
    if (session.closed) return;
    if (!session.allowRequest()) return this.#error(session, ErrorCode.RateLimited, `More than ${this.#o.ratePerSecond} requests a second; slow down.`);
    if (isBinary) return this.#error(session, ErrorCode.BadRequest, 'Binary frames are not part of the protocol: send JSON text.');
    let op: ClientOp;
    try {
      op = JSON.parse(raw.toString('utf8')) as ClientOp;
    } catch {
      return this.#error(session, ErrorCode.BadRequest, `Not JSON: ${preview(raw.toString('utf8'), 60)}`);
    }
    if (op === null || typeof op !== 'object') return this.#error(session, ErrorCode.BadRequest, 'A request is a JSON object with an "op".');
    const id = typeof op.id === 'string' || typeof op.id === 'number' ? op.id : undefined;
    try {
      switch (op.op) {
        case 'subscribe':
          return await this.#subscribe(session, op, id);
        case 'unsubscribe':
          return await this.#unsubscribe(session, op, id);
        case 'ping':
          return session.send({ type: 'pong', ...(typeof op.t === 'number' ? { t: op.t } : {}), ...(id === undefined ? {} : { id }) });
        default:
          return this.#error(session, ErrorCode.BadRequest, `Unknown op "${preview(String((op as { op?: unknown }).op))}": use subscribe, unsubscribe or ping.`, undefined, id);
      }
    } catch (error) {
      const code = error instanceof BusError ? error.code : ErrorCode.Transport;
      this.#error(session, code, error instanceof Error ? error.message : String(error), undefined, id);
    }
  }

  /** The rooms a request names, checked: symbols against the ticker rule, channels against what is exposed, both against the token. */
  #targets(session: Session, op: { symbols?: unknown; channels?: unknown }, id: string | number | undefined): Array<{ key: string; ref: ChannelRef; symbol: string | undefined }> {
    const out: Array<{ key: string; ref: ChannelRef; symbol: string | undefined }> = [];
    const list = (v: unknown, what: string): string[] => {
      if (v === undefined) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new BusError(ErrorCode.BadRequest, `"${what}" must be an array of strings.`);
      return v as string[];
    };
    for (const raw of list(op.symbols, 'symbols')) {
      let symbol: string;
      try {
        symbol = checkParam(TICKER, 'symbol', raw);
      } catch (error) {
        this.#error(session, ErrorCode.InvalidChannelParam, (error as Error).message, preview(raw, 20), id);
        continue;
      }
      if (session.grants.symbols && !session.grants.symbols.has(symbol) && !session.grants.symbols.has('*')) {
        this.#error(session, ErrorCode.Forbidden, `Your token does not allow ${symbol}.`, symbol, id);
        continue;
      }
      out.push({ key: symbol, ref: TickerUpdates.of({ ticker: symbol }), symbol });
    }
    for (const name of list(op.channels, 'channels')) {
      const found = this.#exposed.has(name) ? this.#o.bus.context.resolver.resolve(name) : undefined;
      if (!found) {
        this.#error(session, ErrorCode.UnknownChannel, `"${preview(name, 60)}" is not a channel this gateway exposes (${[...this.#exposed].join(', ') || 'none'}).`, preview(name, 60), id);
        continue;
      }
      if (session.grants.channels && !session.grants.channels.has(name) && !session.grants.channels.has('*')) {
        this.#error(session, ErrorCode.Forbidden, `Your token does not allow ${name}.`, name, id);
        continue;
      }
      const channel = found.channel as unknown as { isTemplate: boolean; of(params?: Readonly<Record<string, string>>): ChannelRef };
      out.push({ key: name, ref: channel.of(channel.isTemplate ? found.params : undefined), symbol: undefined });
    }
    return out;
  }

  /** A user's job room: their jobs' progress and results, and nobody else's. */
  async #subscribeJobs(session: Session, op: Extract<ClientOp, { op: 'subscribe' }>, id: string | number | undefined): Promise<void> {
    if (!this.#jobs) return this.#error(session, ErrorCode.UnknownChannel, 'This gateway does not relay jobs.', undefined, id);
    const claimed = session.grants.user;
    const asked = typeof op.user === 'string' ? op.user : undefined;
    if (claimed !== undefined && asked !== undefined && asked !== claimed) return this.#error(session, ErrorCode.Forbidden, `Your token is for user ${claimed}, not ${preview(asked, 40)}.`, undefined, id);
    const user = claimed ?? asked;
    if (user === undefined || !/^[A-Za-z0-9_.:-]{1,128}$/.test(user)) {
      return this.#error(session, this.#o.auth ? ErrorCode.Forbidden : ErrorCode.BadRequest, this.#o.auth ? 'Your token names no user (its "sub" claim).' : 'Say whose jobs: {"op":"subscribe","jobs":true,"user":"<user id>"}.', undefined, id);
    }
    const room = await this.#jobs.join(session, user);
    session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume: 'live', ...(id === undefined ? {} : { id }) });
  }

  async #subscribe(session: Session, op: Extract<ClientOp, { op: 'subscribe' }>, id: string | number | undefined): Promise<void> {
    if (op.jobs === true) await this.#subscribeJobs(session, op, id);
    if (op.symbols === undefined && op.channels === undefined) return;
    // Each room once, and not again if this client is already in it.
    const targets = [...new Map(this.#targets(session, op, id).map((t) => [t.key, t])).values()].filter((t) => !session.rooms.has(t.key));
    if (session.rooms.size + targets.length > this.#o.maxSubscriptions) {
      return this.#error(session, ErrorCode.TooManySubscriptions, `At most ${this.#o.maxSubscriptions} subscriptions per connection (${session.rooms.size} held).`, undefined, id);
    }
    const since = op.since !== null && typeof op.since === 'object' ? op.since : {};
    await Promise.all(
      targets.map(async ({ key, ref, symbol }) => {
        const after = since[key];
        const resumeFrom = typeof after === 'string' && isStreamId(after) ? after : undefined;
        // Live updates wait until what this client missed (or its snapshot) has gone out.
        const room = await this.#rooms.join(session, key, ref, symbol, (r) => session.hold(r));
        if (session.closed) return;
        await this.#catchUp(session, room, resumeFrom, id);
      }),
    );
  }

  /** History after the client's position if it reaches back that far, else a snapshot of the last value. */
  async #catchUp(session: Session, room: Room, after: string | undefined, id: string | number | undefined): Promise<void> {
    let lastSent: string | undefined;
    try {
      if (after !== undefined && room.ref.channel.hasHistory) {
        const read = await this.#o.bus.subscriber.history(room.ref, after, this.#o.maxReplay);
        if (read.status === 'complete' && !read.more) {
          session.sendReplay(read.messages.map((m) => updateJson(room, m.data, m.context.position, true)));
          lastSent = read.messages.at(-1)?.context.position ?? after;
          this.#metrics.resumes.labels('replayed').inc();
          session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume: 'replayed', replayed: read.messages.length, ...(id === undefined ? {} : { id }) });
          return;
        }
      }
      const snapshot = await this.#snapshot(room);
      if (snapshot) {
        session.send({ type: 'snapshot', key: room.key, channel: room.ref.name, ...(snapshot.position ? { position: snapshot.position } : {}), data: snapshot.data });
        lastSent = snapshot.position;
      }
      this.#metrics.resumes.labels(snapshot ? 'snapshot' : 'live').inc();
      session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume: snapshot ? 'snapshot' : 'live', ...(id === undefined ? {} : { id }) });
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

  async #unsubscribe(session: Session, op: Extract<ClientOp, { op: 'unsubscribe' }>, id: string | number | undefined): Promise<void> {
    if (op.jobs === true) {
      for (const room of [...session.rooms.values()]) {
        if (!JobRelay.isJobRoom(room)) continue;
        this.#jobs?.leave(session, room);
        session.send({ type: 'unsubscribed', key: room.key, ...(id === undefined ? {} : { id }) });
      }
    }
    const keys = [...(Array.isArray(op.symbols) ? op.symbols.map((s) => (typeof s === 'string' ? s.trim().toUpperCase() : '')) : []), ...(Array.isArray(op.channels) ? op.channels : [])];
    for (const key of keys) {
      const room = session.rooms.get(key);
      if (room) await this.#rooms.leave(session, room);
      session.send({ type: 'unsubscribed', key, ...(id === undefined ? {} : { id }) });
    }
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
