// The market-data broker of seed 000. It listens on BROKER_REGISTRATION only, keeps who
// wants which ticker as leases in Redis, streams the wanted tickers from its feed, and
// publishes every price and order update of a ticker on TICKER_UPDATES_{ticker}. Orders
// from ORDER_REQUESTS are routed to the feed's venue; refusals go to BROKER_ERRORS.
// With forwardTicks it is also seed 002's TickStockAppV2 side: each price it publishes goes
// to TickStockPL as a bare tick on tickstock:market:ticks, in the same batch.
import type { Registry } from 'prom-client';
import type { TickBus } from '../bus/tick-bus.ts';
import type { BusError } from '../core/errors.ts';
import { preview } from '../core/errors.ts';
import { LogThrottle, type Logger } from '../core/logger.ts';
import { BrokerErrors, BrokerRegistration, GATEWAY_CLIENT_PREFIX, OrderRequests, TickerUpdates, type OrderRequestMessage, type Registration } from '../catalogs/broker.ts';
import { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';
import type { FeedSink, MarketDataFeed, OrderEvent, TradeTick } from './feeds/feed.ts';
import { UpdateBatcher } from './update-batcher.ts';
import { BrokerGroup } from './broker-group.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { HealthReport } from '../ops/ops-server.ts';
import { MarketTicks } from '../catalogs/tickstock.ts';

type TickerRef = ReturnType<typeof TickerUpdates.of>;

/** Codes of the notices the broker publishes on BROKER_ERRORS. */
export const BrokerNotice = {
  InvalidRegistration: 'TB_BROKER_INVALID_REGISTRATION',
  TickerLimit: 'TB_BROKER_TICKER_LIMIT',
  StoreFailed: 'TB_BROKER_STORE_FAILED',
  InvalidOrder: 'TB_BROKER_INVALID_ORDER',
  Feed: 'TB_BROKER_FEED',
} as const;

/** The holder of registrations that carry no client_id (the seed's plain {action, ticker}). */
export const ANONYMOUS = '~anonymous';

export { BROKER_DEFAULTS } from './broker-defaults.ts';

function isGateway(holder: string): boolean {
  return holder.startsWith(GATEWAY_CLIENT_PREFIX);
}

export interface BrokerServiceOptions {
  bus: TickBus;
  store: BrokerStore;
  feed: MarketDataFeed;
  registry: Registry;
  logger: Logger;
  maxTickers?: number;
  /** Tickers held only by gateways' leases (client_id `gateway-…`), at most. @default half of maxTickers */
  maxGatewayTickers?: number;
  anonymousLeaseTtlSeconds?: number;
  clientLeaseTtlSeconds?: number;
  sweepIntervalMs?: number;
  coalesceMs?: number;
  maxCoalesceMs?: number;
  /**
   * Also publish each price as seed 002's raw tick {symbol, price, volume, timestamp (Unix
   * seconds)} on tickstock:market:ticks, for a pattern library (TickStockPL). Only the broker
   * that streams a ticker publishes it, so in a group each tick is forwarded once. @default false
   */
  forwardTicks?: boolean;
  /**
   * Share the tickers with the other brokers on the same Redis: each ticker is streamed by
   * exactly one live broker, under a fenced lease. Undefined: this broker streams every
   * registered ticker by itself (the in-memory mode).
   */
  group?: { redis: CommandLink; memberId?: string; leaseMs?: number };
}

export class BrokerService {
  readonly metrics: BrokerMetrics;
  /** The limits and timings of the options, each resolved against BROKER_DEFAULTS. */
  readonly #settings: Required<Omit<BrokerServiceOptions, 'bus' | 'store' | 'feed' | 'registry' | 'logger' | 'group'>>;
  readonly #group: BrokerGroup | undefined;
  readonly #bus: TickBus;
  readonly #store: BrokerStore;
  readonly #feed: MarketDataFeed;
  readonly #log: Logger;
  readonly #batcher: UpdateBatcher;
  /** ticker → holder → expiry (epoch ms, or null): the in-memory mirror of the lease set. */
  readonly #holders = new Map<string, Map<string, number | null>>();
  #streaming = new Set<string>();
  readonly #refs = new Map<string, TickerRef>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #coalesceTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #burstStart = 0;
  #reconciling: Promise<void> = Promise.resolve();
  #started = 0;
  #stopping = false;
  #feedProblem: string | undefined;
  readonly #noticeThrottle = new LogThrottle(BROKER_DEFAULTS.noticesPerSecond);
  readonly #sink: FeedSink;

  constructor(options: BrokerServiceOptions) {
    this.#bus = options.bus;
    this.#store = options.store;
    this.#feed = options.feed;
    this.#log = options.logger;
    this.#settings = {
      maxTickers: options.maxTickers ?? BROKER_DEFAULTS.maxTickers,
      maxGatewayTickers: options.maxGatewayTickers ?? Math.floor((options.maxTickers ?? BROKER_DEFAULTS.maxTickers) * BROKER_DEFAULTS.gatewayTickerShare),
      anonymousLeaseTtlSeconds: options.anonymousLeaseTtlSeconds ?? BROKER_DEFAULTS.anonymousLeaseTtlSeconds,
      clientLeaseTtlSeconds: options.clientLeaseTtlSeconds ?? BROKER_DEFAULTS.clientLeaseTtlSeconds,
      sweepIntervalMs: options.sweepIntervalMs ?? BROKER_DEFAULTS.sweepIntervalMs,
      coalesceMs: options.coalesceMs ?? BROKER_DEFAULTS.coalesceMs,
      maxCoalesceMs: options.maxCoalesceMs ?? BROKER_DEFAULTS.maxCoalesceMs,
      forwardTicks: options.forwardTicks ?? false,
    };
    this.metrics = new BrokerMetrics(options.registry);
    this.#group = options.group ? new BrokerGroup({ ...options.group, logger: this.#log, background: this.#bus.context.background, onChange: () => this.#schedule() }) : undefined;
    this.#batcher = new UpdateBatcher(this.#bus.publisher, this.#store, this.metrics, this.#log, {
      onFenced: (channel) => {
        const ticker = TickerUpdates.parse(channel)?.ticker;
        if (ticker !== undefined) this.#group?.lost(ticker);
      },
    });
    this.#sink = {
      trade: (tick) => this.#onTrade(tick),
      order: (event) => this.#onOrderEvent(event),
      problem: (message, details) => this.#onFeedProblem(message, details),
      reconnecting: (attempt, delayMs) => {
        this.metrics.feedReconnects.inc();
        this.#log.warn({ attempt, delayMs, feed: this.#feed.name }, 'feed reconnecting');
      },
    };
  }

  /** Tickers being streamed now. */
  get tickers(): string[] {
    return [...this.#streaming].sort();
  }

  /** Loads the leases from the store, subscribes to registrations and orders, starts the feed. */
  async start(): Promise<void> {
    this.#started = Date.now();
    for (const lease of await this.#store.leases(Date.now())) this.#hold(lease.ticker, lease.holder, lease.expiresAt);
    this.#bus.on('error', (error) => this.#onBusError(error));
    await this.#bus.subscribe(BrokerRegistration, (registration) => this.#onRegistration(registration));
    await this.#bus.subscribe(OrderRequests, (order) => this.#onOrderRequest(order));
    await this.#group?.start();
    if (this.#feed.updatesInPlace) {
      const desired = await this.#desired();
      await this.#feed.start([...desired], this.#sink);
      this.#streaming = desired;
    } else {
      await this.#reconcile();
    }
    this.#gauges();
    this.#sweepTimer = setInterval(() => this.#bus.context.background.run('broker_lease_sweep', () => this.#sweep()), this.#settings.sweepIntervalMs);
    this.#log.info({ feed: this.#feed.name, tickers: this.tickers, leases: this.#leaseCount() }, 'broker started');
  }

  /** Stops taking registrations, stops the feed and publishes what is still queued. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#coalesceTimer);
    clearTimeout(this.#retryTimer);
    await this.#bus.unsubscribe(BrokerRegistration);
    await this.#bus.unsubscribe(OrderRequests);
    await this.#reconciling;
    await this.#feed.stop();
    await this.#batcher.drain();
    // Last: the others take the tickers over only once nothing more goes out from here.
    await this.#group?.stop();
    this.#log.info('broker stopped');
  }

  health(): HealthReport {
    const redis = this.#bus.publisher.isConnected;
    const feedOk = this.#feed.state !== 'failed';
    return {
      status: redis && feedOk ? 'ok' : 'degraded',
      service: 'broker',
      uptime_seconds: Math.round((Date.now() - this.#started) / 1000),
      redis: { connected: redis, target: this.#bus.context.transport.target },
      feed: { name: this.#feed.name, state: this.#feed.state, ...(this.#feedProblem ? { problem: this.#feedProblem } : {}) },
      tickers: this.#streaming.size,
      ticker_list: this.tickers.slice(0, BROKER_DEFAULTS.healthTickerList),
      leases: this.#leaseCount(),
      ...(this.#group ? { group: { member: this.#group.memberId, members: this.#group.members.length } } : {}),
    };
  }

  /** Counters for the heartbeat: updates published, registrations, orders. */
  async counters(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const metric of [this.metrics.updatesPublished, this.metrics.registrations, this.metrics.orders]) {
      const { name, values } = await metric.get();
      for (const v of values) {
        const labels = Object.values(v.labels).join('_');
        out[`${name.replace(/^tickbus_broker_|_total$/g, '')}${labels ? `_${labels}` : ''}`] = v.value;
      }
    }
    return out;
  }

  /** The last price message of a ticker from the last-value cache. */
  async lastPrice(ticker: string): Promise<unknown> {
    const json = await this.#store.lastValue(ticker);
    return json === undefined ? undefined : (JSON.parse(json) as unknown);
  }

  // ---- registrations ---------------------------------------------------------------

  /**
   * Applies a registration to the in-memory lease set at once and writes it to Redis in
   * the background (node-redis pipelines the writes, in order). Handling stays synchronous,
   * so a burst is taken in one go and the quiet window that ends it is real.
   */
  #onRegistration(reg: Registration): void {
    if (this.#stopping) return;
    const holder = reg.client_id ?? ANONYMOUS;
    const { ticker } = reg;
    let write: Promise<unknown>;
    if (reg.action === 'subscribe') {
      if (!this.#holders.has(ticker) && this.#holders.size >= this.#settings.maxTickers) {
        this.metrics.registrations.labels('subscribe', 'rejected').inc();
        this.#notice(BrokerNotice.TickerLimit, `Cannot stream ${ticker}: the broker already streams its maximum of ${this.#settings.maxTickers} tickers. Unregister some, or raise --max-tickers.`, { ticker, client_id: reg.client_id });
        return;
      }
      // A new ticker for a gateway comes out of the gateways' share only: the rest of
      // maxTickers stays for bots. Tickers already streamed cost nothing more.
      if (!this.#holders.has(ticker) && isGateway(holder) && this.#gatewayOnlyTickers() >= this.#settings.maxGatewayTickers) {
        this.metrics.registrations.labels('subscribe', 'rejected').inc();
        this.#notice(BrokerNotice.TickerLimit, `Cannot stream ${ticker} for gateway ${holder}: tickers held by gateways alone are at their share of ${this.#settings.maxGatewayTickers} (--max-gateway-tickers); the rest is kept for other clients.`, { ticker, client_id: reg.client_id });
        return;
      }
      const ttl = reg.ttl_seconds ?? (holder === ANONYMOUS ? this.#settings.anonymousLeaseTtlSeconds : this.#settings.clientLeaseTtlSeconds);
      const expiresAt = ttl === 0 ? null : Date.now() + ttl * 1000;
      this.#hold(ticker, holder, expiresAt);
      write = this.#store.acquire({ ticker, holder, expiresAt });
    } else {
      this.#drop(ticker, holder);
      write = this.#store.release(ticker, holder);
    }
    this.metrics.registrations.labels(reg.action, 'accepted').inc();
    this.#schedule();
    write.catch((error: unknown) => {
      // The stream follows the registration; only a restart would not see it.
      this.#notice(BrokerNotice.StoreFailed, `Registration ${reg.action} ${ticker} was applied but not stored in Redis: ${(error as Error).message}`, { ticker, client_id: reg.client_id });
    });
  }

  /** Tickers that only gateways hold: what their share counts. */
  #gatewayOnlyTickers(): number {
    let n = 0;
    for (const holders of this.#holders.values()) {
      let onlyGateways = holders.size > 0;
      for (const h of holders.keys()) if (!isGateway(h)) onlyGateways = false;
      if (onlyGateways) n++;
    }
    return n;
  }

  #hold(ticker: string, holder: string, expiresAt: number | null): void {
    let holders = this.#holders.get(ticker);
    if (!holders) this.#holders.set(ticker, (holders = new Map<string, number | null>()));
    holders.set(holder, expiresAt);
  }

  #drop(ticker: string, holder: string): void {
    const holders = this.#holders.get(ticker);
    if (!holders) return;
    holders.delete(holder);
    if (holders.size === 0) this.#holders.delete(ticker);
  }

  async #sweep(): Promise<void> {
    if (this.#stopping) return;
    try {
      const expired = await this.#store.sweep(Date.now());
      for (const lease of expired) {
        // The mirror may hold a renewal the store saw after our read: keep the later expiry.
        const current = this.#holders.get(lease.ticker)?.get(lease.holder);
        if (current !== undefined && current !== null && current <= Date.now()) this.#drop(lease.ticker, lease.holder);
      }
      if (expired.length > 0 && !this.#stopping) {
        this.#log.info({ expired: expired.map((l) => `${l.ticker}:${l.holder}`) }, 'leases expired');
        this.#schedule();
      }
    } catch (error) {
      // Redis away: the mirror keeps serving; the next sweep catches up.
      this.#bus.context.background.failed('broker_lease_sweep', error);
    }
  }

  /** Coalesces a burst of registrations into one feed update. */
  #schedule(): void {
    const now = Date.now();
    if (this.#coalesceTimer === undefined) this.#burstStart = now;
    else if (now - this.#burstStart >= this.#settings.maxCoalesceMs) return; // already due soon
    clearTimeout(this.#coalesceTimer);
    this.#coalesceTimer = setTimeout(() => {
      this.#coalesceTimer = undefined;
      // One reconciliation at a time; the chain never rejects, so neither a failure nor
      // stop() awaiting it can surface as an unhandled rejection.
      this.#reconciling = this.#reconciling.then(() => this.#reconcile()).catch(this.#bus.context.background.catcher('broker_reconcile'));
    }, this.#settings.coalesceMs);
  }

  async #reconcile(): Promise<void> {
    if (this.#stopping) return; // the feed is being stopped: never restart it
    let desired: Set<string>;
    try {
      desired = await this.#desired();
    } catch (error) {
      // Redis away: try again after a pause (not at the coalescing pace, which would spin).
      this.#bus.context.background.failed('broker_ticker_split', error);
      if (!this.#stopping) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#schedule(), BROKER_DEFAULTS.settleRetryMs);
      }
      return;
    }
    if (this.#stopping) return;
    const add = [...desired].filter((t) => !this.#streaming.has(t));
    const remove = [...this.#streaming].filter((t) => !desired.has(t));
    if (add.length === 0 && remove.length === 0) return;
    try {
      if (this.#feed.updatesInPlace) {
        await this.#feed.update(add, remove);
        this.metrics.feedUpdates.labels('in_place').inc();
      } else {
        // Seed 000, step 3.9: stop the publisher, update the ticker list, start it again.
        // The registration subscription is not part of this and keeps running.
        await this.#feed.stop();
        await this.#batcher.drain();
        if (desired.size > 0) await this.#feed.start([...desired], this.#sink);
        this.metrics.feedUpdates.labels('restart').inc();
      }
      this.#streaming = desired;
      this.#gauges();
      this.#log.info({ added: add, removed: remove, tickers: desired.size }, 'ticker set changed');
    } catch (error) {
      this.#onFeedProblem(`could not change the ticker set: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The tickers to stream: every registered one, or (in a group) those this broker holds. */
  async #desired(): Promise<Set<string>> {
    const wanted = new Set(this.#holders.keys());
    return this.#group ? await this.#group.settle(wanted) : wanted;
  }

  #gauges(): void {
    this.metrics.tickers.set(this.#streaming.size);
    this.metrics.leases.set(this.#leaseCount());
  }

  #leaseCount(): number {
    let n = 0;
    for (const h of this.#holders.values()) n += h.size;
    return n;
  }

  // ---- orders ----------------------------------------------------------------------

  async #onOrderRequest(order: OrderRequestMessage): Promise<void> {
    if (this.#stopping) return;
    // In a group every broker hears every order: the one streaming the ticker routes it
    // (or, for a ticker nobody streams, the one the split would give it to).
    if (this.#group && !(await this.#group.routes(order.symbol))) return;
    try {
      // Placed by one broker whichever (or how many) took it: see BrokerStore.claimOrder. A
      // resend to the same broker goes on to its venue, which refuses the duplicate itself.
      const me = this.#group?.memberId ?? 'broker';
      if ((await this.#store.claimOrder(order.client_order_id, me)) !== me) {
        this.metrics.orders.labels('duplicate').inc();
        return;
      }
      await this.#feed.placeOrder(order);
      this.metrics.orders.labels('routed').inc();
    } catch (error) {
      this.metrics.orders.labels('rejected').inc();
      await this.#onOrderEvent({
        event: 'rejected',
        symbol: order.symbol,
        timestamp: new Date().toISOString(),
        order: { client_order_id: order.client_order_id, symbol: order.symbol, side: order.side, qty: String(order.qty), type: order.type, status: 'rejected' },
        reason: (error as Error).message,
      });
    }
  }

  // ---- from the feed to the bus ----------------------------------------------------

  #ref(ticker: string): TickerRef {
    let ref = this.#refs.get(ticker);
    if (!ref) {
      ref = TickerUpdates.of({ ticker });
      if (this.#refs.size > BROKER_DEFAULTS.tickerRefCache) this.#refs.clear();
      this.#refs.set(ticker, ref);
    }
    return ref;
  }

  #onTrade(tick: TradeTick): void | Promise<void> {
    // A trade for a ticker nobody holds any more (the feed has not caught up yet) is dropped.
    if (!this.#holders.has(tick.symbol)) return;
    // In a group, only while this broker holds the ticker's lease, and fenced by it.
    let fence: string | undefined;
    if (this.#group) {
      fence = this.#group.fence(tick.symbol);
      if (fence === undefined) return;
    }
    const data = { type: 'price' as const, price: tick.price, volume: tick.volume, symbol: tick.symbol, timestamp: tick.timestamp };
    const forward = this.#settings.forwardTicks ? { channel: MarketTicks, data: rawTick(tick) } : undefined;
    return this.#batcher.enqueue(fence === undefined ? { channel: this.#ref(tick.symbol), data } : { channel: this.#ref(tick.symbol), data, fence }, 'price', tick.symbol, forward);
  }

  #onOrderEvent(event: OrderEvent): void | Promise<void> {
    let ref: TickerRef;
    try {
      ref = this.#ref(event.symbol);
    } catch {
      this.#notice(BrokerNotice.InvalidOrder, `The venue reported an order update for an invalid symbol "${preview(event.symbol, BROKER_DEFAULTS.symbolPreviewChars)}".`, {});
      return;
    }
    const order_data = {
      ...event.order,
      event: event.event,
      ...(event.reason === undefined ? {} : { reason: event.reason }),
      ...(event.execution === undefined ? {} : { execution: event.execution }),
    };
    return this.#batcher.enqueue({ channel: ref, data: { type: 'order' as const, symbol: ref.params.ticker, timestamp: event.timestamp, order_data } }, 'order');
  }

  #onFeedProblem(message: string, details: { code?: number | string; final?: boolean; cause?: unknown }): void {
    this.metrics.feedProblems.labels(String(details.code ?? 'unknown')).inc();
    if (details.final) this.#feedProblem = message;
    this.#log[details.final ? 'error' : 'warn']({ code: details.code, err: details.cause }, `feed: ${message}`);
    this.#notice(BrokerNotice.Feed, message, {});
  }

  // ---- refusals --------------------------------------------------------------------

  #onBusError(error: BusError): void {
    if (error.channel === BrokerRegistration.template) {
      this.metrics.registrations.labels('unknown', 'rejected').inc();
      this.#notice(BrokerNotice.InvalidRegistration, `Registration rejected (${error.code}): ${error.message}`, {}, { error, summary: 'registration rejected' });
    } else if (error.channel === OrderRequests.template) {
      this.metrics.orders.labels('rejected').inc();
      this.#notice(BrokerNotice.InvalidOrder, `Order request rejected (${error.code}): ${error.message}`, {}, { error, summary: 'order request rejected' });
    }
  }

  /**
   * `cause`: the bus error behind a refusal. Its line then says `summary` and carries the
   * error (with its channel; compact, by the logger's serializer, when it is bad input)
   * rather than repeating its message.
   */
  #notice(code: string, message: string, extra: { ticker?: string | undefined; client_id?: string | undefined }, cause?: { error: BusError; summary: string }): void {
    // Logs and the errors channel are both throttled: a flood of bad input must not
    // become a flood of notices. Metrics count everything.
    if (this.#noticeThrottle.take() < 0) return;
    // The log line stays short whatever the input: the whole message goes on the errors channel.
    if (cause) this.#log.warn({ code, ...extra, err: cause.error }, cause.summary);
    else this.#log.warn({ code, ...extra }, preview(message, BROKER_DEFAULTS.noticeLogChars));
    const data = {
      code,
      message: message.slice(0, BROKER_DEFAULTS.noticeMessageChars),
      timestamp: new Date().toISOString(),
      ...(extra.ticker ? { ticker: extra.ticker } : {}),
      ...(extra.client_id ? { client_id: extra.client_id } : {}),
    };
    this.#bus.publish(BrokerErrors, data).catch((error: unknown) => this.#log.warn({ err: error }, 'could not publish a broker notice'));
  }
}

/**
 * Seed 002's raw tick: the seed's times are Python's time.time() (Unix seconds), so the
 * feed's ISO time becomes seconds; one that does not parse goes on as the feed wrote it.
 */
function rawTick(tick: TradeTick): { symbol: string; price: number; volume: number; timestamp: number | string } {
  const ms = Date.parse(tick.timestamp);
  return { symbol: tick.symbol, price: tick.price, volume: tick.volume, timestamp: Number.isFinite(ms) ? ms / 1000 : tick.timestamp };
}
