// The market-data broker of seed 000. It listens on BROKER_REGISTRATION only, keeps who
// wants which ticker as leases in Redis, streams the wanted tickers from its feed, and
// publishes every price and order update of a ticker on TICKER_UPDATES_{ticker}. Orders
// from ORDER_REQUESTS are routed to the feed's venue; refusals go to BROKER_ERRORS.
// With forwardTicks it is also seed 002's TickStockAppV2 side: each price it publishes goes
// to TickStockPL as a bare tick on tickstock:market:ticks, in the same batch.
// This is the assembly and the lifecycle, and the path of the feed's prices to the bus; the
// jobs are apart: registrations and leases (lease-book.ts), the streamed ticker set and
// feed updates (ticker-set.ts), orders (order-desk.ts), notices (broker-notices.ts).
import type { Registry } from 'prom-client';
import type { TickBus } from '../bus/tick-bus.ts';
import type { Logger } from '../core/logger.ts';
import { BrokerRegistration, OrderCancels, OrderRequests, TickerUpdates } from '../catalogs/broker.ts';
import { PositionsUpdated, PriceUpdated } from '../catalogs/trading-events.ts';
import { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';
import { tradeProblem, type FeedSink, type MarketDataFeed, type TradeTick } from './feeds/feed.ts';
import { PRECHECKED } from '../bus/publisher.ts';
import { ErrorCode } from '../core/errors.ts';
import { LogThrottle } from '../core/log-throttle.ts';
import { UpdateBatcher } from './update-batcher.ts';
import { BrokerGroup } from './broker-group.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { HealthReport } from '../ops/ops-server.ts';
import { MarketTicks } from '../catalogs/tickstock.ts';
import { BrokerNotice, BrokerNotices } from './broker-notices.ts';
import { LeaseBook } from './lease-book.ts';
import { TickerSet } from './ticker-set.ts';
import { OrderDesk } from './order-desk.ts';

type TickerRef = ReturnType<typeof TickerUpdates.of>;

export { BrokerNotice } from './broker-notices.ts';
export { ANONYMOUS } from './lease-book.ts';
export { BROKER_DEFAULTS } from './broker-defaults.ts';

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
   * Also publish each price as seed 004's `price.updated.{symbol}` (bare JSON, the price as
   * a decimal string), as that seed's market data service does: the quotes' mid for a symbol
   * the feed sends quotes for (Alpaca with quotes on), else the trade's price. @default false
   */
  priceEvents?: boolean;
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
  /** One line a second about trades that are not valid price updates (all are counted). */
  readonly #badTrades = new LogThrottle(1);
  readonly #batcher: UpdateBatcher;
  readonly #notices: BrokerNotices;
  readonly #leases: LeaseBook;
  readonly #tickerSet: TickerSet;
  readonly #orders: OrderDesk;
  readonly #refs = new Map<string, TickerRef>();
  /** Symbols the feed has sent quotes for: their price.updated events carry the quotes' mid only. */
  readonly #quoted = new Set<string>();
  #started = 0;
  #stopping = false;
  #feedProblem: string | undefined;
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
      priceEvents: options.priceEvents ?? false,
    };
    const background = this.#bus.context.background;
    this.metrics = new BrokerMetrics(options.registry);
    this.#notices = new BrokerNotices(this.#bus, this.metrics, this.#log);
    this.#group = options.group ? new BrokerGroup({ ...options.group, logger: this.#log, background, onChange: () => this.#tickerSet.schedule() }) : undefined;
    this.#batcher = new UpdateBatcher(this.#bus.publisher, this.#store, this.metrics, this.#log, {
      onFenced: (channel) => {
        const ticker = TickerUpdates.parse(channel)?.ticker;
        if (ticker !== undefined) this.#group?.lost(ticker);
      },
    });
    const { maxTickers, maxGatewayTickers, anonymousLeaseTtlSeconds, clientLeaseTtlSeconds } = this.#settings;
    this.#leases = new LeaseBook({
      store: this.#store,
      metrics: this.metrics,
      notices: this.#notices,
      logger: this.#log,
      background,
      limits: { maxTickers, maxGatewayTickers, anonymousLeaseTtlSeconds, clientLeaseTtlSeconds },
      onChange: () => this.#tickerSet.schedule(),
    });
    this.#orders = new OrderDesk({
      store: this.#store,
      feed: this.#feed,
      batcher: this.#batcher,
      group: this.#group,
      metrics: this.metrics,
      notices: this.#notices,
      channelOf: (ticker) => this.#ref(ticker),
      positionUpdated: (event) => this.#bus.publish(PositionsUpdated, event),
    });
    this.#sink = {
      trade: (tick) => this.#onTrade(tick),
      order: (event) => this.#orders.event(event),
      problem: (message, details) => this.#onFeedProblem(message, details),
      reconnecting: (attempt, delayMs) => {
        this.metrics.feedReconnects.inc();
        this.#log.warn({ attempt, delayMs, feed: this.#feed.name }, 'feed reconnecting');
      },
    };
    this.#tickerSet = new TickerSet({
      feed: this.#feed,
      sink: this.#sink,
      batcher: this.#batcher,
      group: this.#group,
      metrics: this.metrics,
      logger: this.#log,
      background,
      coalesceMs: this.#settings.coalesceMs,
      maxCoalesceMs: this.#settings.maxCoalesceMs,
      wanted: () => this.#leases.wanted(),
      onChange: () => this.#gauges(),
      onProblem: (message, details) => this.#onFeedProblem(message, details),
    });
  }

  /** Tickers being streamed now. */
  get tickers(): string[] {
    return [...this.#tickerSet.streaming].sort();
  }

  /** Loads the leases from the store, subscribes to registrations and orders, starts the feed. */
  async start(): Promise<void> {
    this.#started = Date.now();
    await this.#leases.load();
    this.#bus.on('error', (error) => this.#notices.busError(error));
    await this.#bus.subscribe(BrokerRegistration, (registration) => this.#leases.register(registration));
    await this.#bus.subscribe(OrderRequests, async (order) => {
      if (!this.#stopping) await this.#orders.request(order);
    });
    await this.#bus.subscribe(OrderCancels, async (cancel) => {
      if (!this.#stopping) await this.#orders.cancel(cancel);
    });
    await this.#group?.start();
    await this.#tickerSet.start();
    this.#gauges();
    this.#leases.sweepEvery(this.#settings.sweepIntervalMs);
    this.#log.info({ feed: this.#feed.name, tickers: this.tickers, leases: this.#leases.count }, 'broker started');
  }

  /** Stops taking registrations, stops the feed and publishes what is still queued. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#leases.stop();
    this.#tickerSet.stop();
    await this.#bus.unsubscribe(BrokerRegistration);
    await this.#bus.unsubscribe(OrderRequests);
    await this.#bus.unsubscribe(OrderCancels);
    await this.#tickerSet.idle();
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
      tickers: this.#tickerSet.streaming.size,
      ticker_list: this.tickers.slice(0, BROKER_DEFAULTS.healthTickerList),
      leases: this.#leases.count,
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

  #gauges(): void {
    this.metrics.tickers.set(this.#tickerSet.streaming.size);
    this.metrics.leases.set(this.#leases.count);
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
    if (!this.#leases.has(tick.symbol)) return;
    // In a group, only while this broker holds the ticker's lease, and fenced by it.
    let fence: string | undefined;
    if (this.#group) {
      fence = this.#group.fence(tick.symbol);
      if (fence === undefined) return;
    }
    // Checked here, where it comes in, and not again on the way out (PRECHECKED).
    const problem = tradeProblem(tick);
    if (problem !== undefined) {
      this.#badTrade(tick.symbol, problem);
      return;
    }
    const data = { type: 'price' as const, price: tick.price, volume: tick.volume, symbol: tick.symbol, timestamp: tick.timestamp };
    const forward = this.#settings.forwardTicks ? { channel: MarketTicks, data: rawTick(tick) } : undefined;
    if (this.#settings.priceEvents) {
      // Seed 004's price is the quotes' mid: once a symbol has quotes, its trades and bars are left out.
      if (tick.kind === 'quote') this.#quoted.add(tick.symbol);
      if (tick.kind === 'quote' || !this.#quoted.has(tick.symbol)) this.#priceEvent(tick);
    }
    return this.#batcher.enqueue(fence === undefined ? { channel: this.#ref(tick.symbol), data, [PRECHECKED]: true } : { channel: this.#ref(tick.symbol), data, fence, [PRECHECKED]: true }, 'price', tick.symbol, forward);
  }

  /** A trade no price update can be made of: counted as an update refused by validation, logged (throttled). */
  #badTrade(symbol: string, problem: string): void {
    this.metrics.publishFailures.labels(ErrorCode.Validation).inc();
    const suppressed = this.#badTrades.take();
    if (suppressed >= 0) this.#log.warn({ code: ErrorCode.Validation, symbol, problem, ...(suppressed > 0 ? { suppressed } : {}) }, 'feed: a trade that is not a valid price update was dropped');
  }

  /** Seed 004's price.updated.{symbol}: pub/sub, best effort as in the seed; a failure is counted with the other publish failures. */
  #priceEvent(tick: TradeTick): void {
    const price = decimal(tick.price);
    const timestamp = Number.isFinite(Date.parse(tick.timestamp)) ? new Date(tick.timestamp).toISOString() : new Date().toISOString();
    this.#bus
      .publish(PriceUpdated.of({ symbol: tick.symbol }), { event_type: 'price.updated', symbol: tick.symbol, price, timestamp })
      .then(() => this.metrics.priceEvents.inc())
      .catch((error: unknown) => this.metrics.publishFailures.labels((error as { code?: string }).code ?? 'unknown').inc());
  }

  #onFeedProblem(message: string, details: { code?: number | string; final?: boolean; cause?: unknown }): void {
    this.metrics.feedProblems.labels(String(details.code ?? 'unknown')).inc();
    if (details.final) this.#feedProblem = message;
    this.#log[details.final ? 'error' : 'warn']({ code: details.code, err: details.cause }, `feed: ${message}`);
    this.#notices.notice(BrokerNotice.Feed, message, {});
  }
}

/** A price as seed 004's decimal string ("189.31"): never in exponent notation. */
function decimal(n: number): string {
  const text = String(n);
  return /e/i.test(text) ? n.toFixed(8).replace(/\.?0+$/, '') : text;
}

/**
 * Seed 002's raw tick: the seed's times are Python's time.time() (Unix seconds), so the
 * feed's ISO time becomes seconds; one that does not parse goes on as the feed wrote it.
 */
function rawTick(tick: TradeTick): { symbol: string; price: number; volume: number; timestamp: number | string } {
  const ms = Date.parse(tick.timestamp);
  return { symbol: tick.symbol, price: tick.price, volume: tick.volume, timestamp: Number.isFinite(ms) ? ms / 1000 : tick.timestamp };
}
