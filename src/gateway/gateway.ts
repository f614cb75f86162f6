// The WebSocket gateway (seeds 002, 003): Redis events to browsers. One HTTP server: the
// dashboard at /, the WebSocket at /ws, /health and /metrics. Clients subscribe to symbols
// (and to the catalog channels the configuration exposes); the gateway holds one Redis
// subscription per room, batches each client's updates, resumes a client that comes back
// with its last positions (from history, or a snapshot of the last value), and keeps a slow
// reader from costing more than a bounded buffer. With Redis for commands it also keeps the
// users' alert preferences, routes each pattern event and job result to the inboxes of the
// users it is for, and sends each user their inbox. Protocol: docs/gateway.md.
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { WebSocket } from 'ws';
import { ConfigError, ErrorCode, preview } from '../core/errors.ts';
import { LogThrottle } from '../core/log-throttle.ts';
import type { Logger } from '../core/logger.ts';
import type { ResumeResult } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { GATEWAY_CLIENT_PREFIX } from '../catalogs/broker.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { openFileLimit } from '../ops/open-files.ts';
import { OpsServer, type HealthReport, type Route } from '../ops/ops-server.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { JobService } from '../jobs/job-service.ts';
import { AlertPreferences } from './alert-preferences.ts';
import { AlertRouter } from './alert-router.ts';
import { DeskRequests } from './desk-requests.ts';
import type { TokenOptions } from './auth.ts';
import { Flusher, type BatchTiming } from './flush.ts';
import { GatewayMetrics } from './gateway-metrics.ts';
import { InboxRelay } from './inbox.ts';
import { JobRelay } from './job-relay.ts';
import { CloseCode } from './protocol.ts';
import { RequestHandler } from './request-handler.ts';
import { Resumer } from './resume.ts';
import { RoomRegistry } from './rooms.ts';
import { Session, type Grants, type SessionLimits } from './session.ts';
import { withDashboard } from './static-routes.ts';
import { acceptUpgrades } from './upgrade.ts';

export interface GatewayOptions {
  bus: TickBus;
  logger: Logger;
  /** @default 8090 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Adaptive timing: the longest a busy client's updates wait; interval timing: the flush period; 0 sends each at once. @default 50 */
  batchMs?: number;
  /** 'adaptive': a flush on the next turn when quiet, coalescing under load; 'interval': every batchMs. @default 'adaptive' */
  batchTiming?: BatchTiming;
  /** Adaptive timing: the share of the event loop's time flushes may take (0 to 1, exclusive). @default 0.2 */
  flushBudget?: number;
  /** Within one flush, send only the latest price per symbol. @default false */
  conflate?: boolean;
  /** Per-client send buffer above which updates are conflated (x2: dropped, x4: closed). @default 1 MiB */
  highWaterBytes?: number;
  /** A client still over twice the high-water mark after this long is closed (4008). @default 5000 */
  slowClientCloseMs?: number;
  /** WebSocket connections held at once; past it an upgrade is answered 503 (TB_ERR_GATEWAY_FULL). @default the open-file limit less 256, else 10,000 */
  maxConnections?: number;
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
  /**
   * Redis commands (the gateway's own link, closed by its owner): enables alert preferences,
   * routing alerts and job results to inboxes, and the `inbox`, `alerts` and `ack` requests.
   */
  alerts?: { readonly redis: CommandLink; readonly cluster: boolean };
  /**
   * Without JWT, take orders (place, cancel) from clients: trusted networks only (`tickbus up`
   * turns it on for its local desk). With JWT the token's `orders` claim decides. @default false
   */
  allowOrders?: boolean;
  /** Submits and cancels backtests for clients (`backtest`, `backtest_cancel`); with `jobOwner`. */
  jobService?: JobService;
}

type Settings = Required<Omit<GatewayOptions, 'allowedOrigins' | 'auth' | 'lastValue' | 'routes' | 'clientId' | 'health' | 'jobOwner' | 'alerts' | 'jobService'>> & GatewayOptions;

export class Gateway {
  readonly clientId: string;
  readonly #options: Settings;
  readonly #jobs: JobRelay | undefined;
  readonly #alerts: { readonly preferences: AlertPreferences; readonly router: AlertRouter; readonly inbox: InboxRelay } | undefined;
  readonly #ops: OpsServer;
  readonly #rooms: RoomRegistry;
  readonly #sessions = new Set<Session>();
  /** With JWT: each user's open connections, for the per-user room limit. */
  readonly #byUser = new Map<string, Set<Session>>();
  readonly #flusher: Flusher;
  readonly #requests: RequestHandler;
  readonly #limits: SessionLimits;
  readonly #metrics: GatewayMetrics;
  readonly #exposed: ReadonlySet<string>;
  #pingTimer: NodeJS.Timeout | undefined;
  readonly #alive = new WeakSet<WebSocket>();
  #url: string | undefined;

  constructor(options: GatewayOptions) {
    const d = GATEWAY_DEFAULTS;
    this.#options = {
      port: d.port,
      host: d.host,
      batchMs: d.batchMs,
      batchTiming: d.batchTiming,
      flushBudget: d.flushBudget,
      conflate: false,
      highWaterBytes: d.highWaterBytes,
      slowClientCloseMs: d.slowClientCloseMs,
      maxConnections: defaultMaxConnections(),
      maxSubscriptions: d.maxSubscriptions,
      maxRooms: d.maxRooms,
      maxRoomsPerConnection: d.maxRoomsPerConnection,
      maxRoomsPerUser: d.maxRoomsPerUser,
      ratePerSecond: d.ratePerSecond,
      maxFrameBytes: d.maxFrameBytes,
      channels: [],
      maxReplay: d.maxReplay,
      leaseTtlSeconds: d.leaseTtlSeconds,
      allowOrders: false,
      ...options,
    };
    const o = this.#options;
    for (const [name, value] of [['batchMs', o.batchMs], ['highWaterBytes', o.highWaterBytes], ['maxConnections', o.maxConnections], ['maxSubscriptions', o.maxSubscriptions], ['maxRooms', o.maxRooms], ['maxRoomsPerConnection', o.maxRoomsPerConnection], ['maxRoomsPerUser', o.maxRoomsPerUser], ['ratePerSecond', o.ratePerSecond], ['maxFrameBytes', o.maxFrameBytes], ['maxReplay', o.maxReplay]] as const) {
      if (!Number.isSafeInteger(value) || value < (name === 'batchMs' ? 0 : 1)) throw new ConfigError(`gateway: ${name} must be a whole number${name === 'batchMs' ? ' of at least 0' : ' of at least 1'}, got ${String(value)}.`);
    }
    if (o.batchTiming !== 'adaptive' && o.batchTiming !== 'interval') throw new ConfigError(`gateway: batchTiming must be "adaptive" or "interval", got ${preview(String(o.batchTiming))}.`);
    if (!(o.flushBudget > 0 && o.flushBudget < 1)) throw new ConfigError(`gateway: flushBudget must be a share of time above 0 and below 1, got ${String(o.flushBudget)}.`);
    for (const name of o.channels) {
      if (!o.bus.context.resolver.resolve(name)) throw new ConfigError(`gateway: channel "${preview(name)}" is in no catalog; expose catalog channels by their names (e.g. tickstock.events.patterns).`);
    }
    this.#exposed = new Set(o.channels);
    if (o.clientId !== undefined && !o.clientId.startsWith(GATEWAY_CLIENT_PREFIX)) throw new ConfigError(`gateway: clientId must start with "${GATEWAY_CLIENT_PREFIX}" (the broker counts such leases against its share for gateways), got "${preview(o.clientId)}".`);
    this.clientId = o.clientId ?? `${GATEWAY_CLIENT_PREFIX}${randomUUID().slice(0, 8)}`;
    this.#limits = { batchMs: o.batchMs, conflate: o.conflate, highWaterBytes: o.highWaterBytes, maxSubscriptions: o.maxSubscriptions, ratePerSecond: o.ratePerSecond, slowCloseMs: o.slowClientCloseMs };
    const flusher = (this.#flusher = new Flusher({ batchMs: o.batchMs, timing: o.batchTiming, flushBudget: o.flushBudget }, (member) => this.#rooms.roomsOf(member)));
    this.#rooms = new RoomRegistry({
      bus: o.bus,
      logger: o.logger,
      clientId: this.clientId,
      leaseTtlSeconds: o.leaseTtlSeconds,
      dirty: (member) => flusher.markDirty(member),
      dirtyRoom: o.batchMs > 0 ? (room) => flusher.roomDirty(room) : undefined,
      conflate: o.conflate,
      conflated: (n) => this.#metrics.dropped.labels('conflated').inc(n),
      filtered: (n) => (this.#metrics.pending.filtered += n),
    });
    this.#jobs = o.jobOwner ? new JobRelay(o.bus, o.jobOwner, o.logger, this.#rooms, (member) => flusher.markDirty(member)) : undefined;
    this.#metrics = new GatewayMetrics(o.bus.context.metrics.registry, () => this.#sessions.size, () => this.#rooms.size);
    const metrics = this.#metrics;
    if (o.alerts) {
      const preferences = new AlertPreferences(o.bus, o.alerts.redis, o.logger);
      const router = new AlertRouter({
        bus: o.bus,
        redis: o.alerts.redis,
        cluster: o.alerts.cluster,
        preferences,
        jobOwner: o.jobOwner,
        name: this.clientId,
        logger: o.logger,
        routed: (kind, n) => {
          metrics.alertsRouted.labels(kind).inc();
          metrics.inboxAppended.labels(kind).inc(n);
        },
      });
      const inbox = new InboxRelay({ bus: o.bus, redis: o.alerts.redis, logger: o.logger, delivered: (n) => metrics.inboxDelivered.inc(n) });
      this.#alerts = { preferences, router, inbox };
    }
    this.#requests = new RequestHandler({
      bus: o.bus,
      logger: o.logger,
      limits: o,
      authenticated: o.auth !== undefined,
      exposed: this.#exposed,
      rooms: this.#rooms,
      jobs: this.#jobs,
      alerts: this.#alerts,
      resumer: new Resumer({
        bus: o.bus,
        logger: o.logger,
        lastValue: o.lastValue,
        maxReplay: o.maxReplay,
        resumed: (result) => metrics.resumes.labels(result).inc(),
        caughtUp: (session, room) => flusher.caughtUp(session, room),
      }),
      desk: new DeskRequests({
        bus: o.bus,
        redis: o.alerts?.redis,
        cluster: o.alerts?.cluster ?? false,
        authenticated: o.auth !== undefined,
        allowOrders: o.allowOrders,
        jobs: o.jobService && o.jobOwner ? { service: o.jobService, ownerOf: o.jobOwner } : undefined,
      }),
      connectionsOf: (user) => this.#byUser.get(user),
      errorSent: (code) => metrics.errors.labels(code).inc(),
    });
    o.bus.subscriber.on('resumed', this.#roomResumed);
    this.#ops = new OpsServer({ port: o.port, host: o.host, registry: o.bus.context.metrics.registry, health: o.health ?? (() => this.health()), routes: withDashboard(o.routes), logger: o.logger, name: 'gateway' });
    const fullLog = new LogThrottle(1, 10_000);
    acceptUpgrades(this.#ops.server, {
      maxFrameBytes: o.maxFrameBytes,
      allowedOrigins: o.allowedOrigins,
      auth: o.auth,
      connections: () => this.#sessions.size,
      maxConnections: o.maxConnections,
      refused: (code) => {
        metrics.errors.labels(code).inc();
        if (code !== ErrorCode.GatewayFull) return;
        const suppressed = fullLog.take();
        if (suppressed >= 0) o.logger.warn({ code, maxConnections: o.maxConnections, refusedSinceLastLine: suppressed }, 'gateway: full, refusing new connections (raise the open-file limit and --max-connections, or add a gateway)');
      },
      background: o.bus.context.background,
      connected: (ws, grants, expiresAt) => this.#connected(ws, grants, expiresAt),
    });
  }

  get url(): string | undefined {
    return this.#url;
  }

  /** The metrics registry the gateway reports in (the bus's). */
  get registry(): Registry {
    return this.#options.bus.context.metrics.registry;
  }

  health(): HealthReport {
    const redis = this.#options.bus.publisher.isConnected;
    return { status: redis ? 'ok' : 'degraded', redis, ...this.stats() };
  }

  stats(): { connections: number; max_connections: number; rooms: number; batch_ms: number } {
    return { connections: this.#sessions.size, max_connections: this.#options.maxConnections, rooms: this.#rooms.size, batch_ms: this.#options.batchMs };
  }

  async listen(): Promise<{ port: number; url: string }> {
    // Preferences loaded and the router listening before the first client can ask anything.
    if (this.#alerts) {
      await this.#alerts.preferences.start();
      await this.#alerts.router.start();
    }
    const address = await this.#ops.listen();
    this.#url = address.url;
    this.#flusher.start();
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
    }, GATEWAY_DEFAULTS.pingIntervalMs);
    this.#pingTimer.unref();
    return address;
  }

  async close(): Promise<void> {
    this.#options.bus.subscriber.off('resumed', this.#roomResumed);
    this.#flusher.stop();
    clearInterval(this.#pingTimer);
    for (const s of this.#sessions) s.close(1001, 'gateway shutting down');
    await this.#jobs?.close();
    await this.#alerts?.router.close();
    await this.#alerts?.preferences.close();
    await this.#alerts?.inbox.close();
    await this.#rooms.close();
    await this.#ops.close();
    this.#metrics.unregister();
  }

  /**
   * The gateway's own subscription came back from a lost Redis link and history could not
   * give it everything it missed (trimmed, or unreadable for too long): its clients in that
   * room are told, once, so that a gap never passes unnoticed.
   */
  readonly #roomResumed = (result: ResumeResult): void => {
    if (result.status === 'complete') return;
    const why = result.status === 'gap' ? 'are no longer in its history' : 'could not be read from its history';
    for (const room of this.#rooms.onChannel(result.channel)) {
      const message = `The gateway lost its Redis link: updates of ${room.key} after ${result.after} ${why}. Resubscribe with "since" to fill what history still holds.`;
      for (const member of room.members) if (member instanceof Session) member.send({ type: 'notice', code: ErrorCode.StreamTrimmed, key: room.key, message });
    }
    this.#options.logger.warn({ channel: result.channel, after: result.after, status: result.status }, 'gateway: a room missed updates history could not fill; its clients were told');
  };

  /** A client is connected (its upgrade accepted): its session, until its socket closes. */
  #connected(ws: WebSocket, grants: Grants, expiresAt: number | undefined): void {
    const o = this.#options;
    const session = new Session(randomUUID(), ws, grants, this.#limits, {
      sent: (n) => (this.#metrics.pending.delivered += n),
      dropped: (reason, n) => this.#metrics.dropped.labels(reason).inc(n),
      closing: (code) => this.#metrics.closed.labels(String(code)).inc(),
    });
    this.#sessions.add(session);
    const user = o.auth ? grants.user : undefined;
    if (user !== undefined) {
      let mine = this.#byUser.get(user);
      if (!mine) this.#byUser.set(user, (mine = new Set()));
      mine.add(session);
    }
    this.#alive.add(ws);
    ws.on('pong', () => this.#alive.add(ws));
    const background = o.bus.context.background;
    ws.on('message', (raw, isBinary) => background.run('gateway_request', () => this.#requests.handle(session, raw as Buffer, isBinary)));
    ws.on('error', (error) => o.logger.debug({ err: error, session: session.id }, 'gateway: socket error'));
    ws.on('close', (code) => {
      // Closed by the client (or the network): counted here; the gateway's own closes are counted as it decides them.
      if (session.socketClosed()) this.#metrics.closed.labels(String(code)).inc();
      this.#sessions.delete(session);
      if (user !== undefined) {
        const mine = this.#byUser.get(user);
        mine?.delete(session);
        if (mine?.size === 0) this.#byUser.delete(user);
      }
      this.#flusher.forget(session);
      this.#alerts?.inbox.leave(session);
      for (const room of [...this.#rooms.roomsOf(session).values()]) {
        if (JobRelay.isJobRoom(room)) this.#jobs?.leave(session, room);
        // Redis may be away: the room is gone here at once; its unsubscribe fails and is reported.
        else background.run('gateway_room_leave', () => this.#rooms.leave(session, room));
      }
    });
    if (expiresAt !== undefined) {
      setTimeout(() => session.close(CloseCode.Unauthorized, 'token expired'), Math.max(0, expiresAt - Date.now())).unref();
    }
    session.send({ type: 'welcome', session: session.id, batchMs: o.batchMs, batchTiming: o.batchTiming, conflate: o.conflate, limits: { maxSubscriptions: o.maxSubscriptions, ratePerSecond: o.ratePerSecond, maxFrameBytes: o.maxFrameBytes }, channels: [...this.#exposed] });
  }
}

/** The connections a gateway may hold by default: what the open-file limit leaves (see GATEWAY_DEFAULTS.maxConnections). */
export function defaultMaxConnections(limit = openFileLimit()): number {
  const d = GATEWAY_DEFAULTS;
  return limit === undefined ? d.maxConnections : Math.max(1, limit - d.reservedFiles);
}
