// The default feed: a seeded, deterministic random walk per ticker (same seed and ticker,
// same path), with log-normal trade sizes, at a configurable rate; and a simulated venue
// that fills orders against the simulated price. Tickers are added and removed in place.
import type { CancelRequest, FeedSink, FeedState, MarketDataFeed, OrderRequest } from './feed.ts';
import { gaussian, hashString, mulberry32 } from './random.ts';
import { SimVenue } from './sim-venue.ts';
import { FEED_DEFAULTS } from './feed-names.ts';

export interface SimFeedOptions {
  /** @default 42 */
  seed?: number;
  /** Trades per second per ticker. @default 2 */
  ratePerTicker?: number;
  /** Per-trade volatility of the log price. @default 0.0008 */
  volatility?: number;
}

interface Walk {
  readonly random: () => number;
  price: number;
}

export class SimFeed implements MarketDataFeed {
  readonly name = 'sim';
  readonly updatesInPlace = true;
  readonly #seed: number;
  readonly #intervalMs: number;
  readonly #volatility: number;
  readonly #walks = new Map<string, Walk>();
  readonly #tickers = new Set<string>();
  readonly #venue: SimVenue;
  #sink: FeedSink | undefined;
  #timer: NodeJS.Timeout | undefined;
  #state: FeedState = 'idle';
  #ticking: Promise<void> | undefined;

  constructor(options: SimFeedOptions = {}) {
    this.#seed = options.seed ?? FEED_DEFAULTS.simSeed;
    this.#intervalMs = 1000 / (options.ratePerTicker ?? FEED_DEFAULTS.simTradesPerSecond);
    this.#volatility = options.volatility ?? 0.0008;
    this.#venue = new SimVenue((event) => this.#sink?.order(event));
  }

  get state(): FeedState {
    return this.#state;
  }

  /** The current simulated price of a ticker (starting its walk if needed). */
  priceOf(ticker: string): number {
    return this.#walk(ticker).price;
  }

  start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    this.#sink = sink;
    for (const t of tickers) this.#tickers.add(t);
    this.#state = 'streaming';
    this.#timer ??= setInterval(() => {
      // A slow sink skips ticks rather than piling them up.
      // A tick that throws is a problem of the feed, reported, never an unhandled rejection.
      this.#ticking ??= this.#tick()
        .catch((error: unknown) => this.#sink?.problem(`simulated tick failed: ${(error as Error).message}`, { code: 'tick_failed', cause: error }))
        .finally(() => (this.#ticking = undefined));
    }, this.#intervalMs);
    return Promise.resolve();
  }

  update(add: readonly string[], remove: readonly string[]): Promise<void> {
    for (const t of remove) this.#tickers.delete(t);
    for (const t of add) this.#tickers.add(t);
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
    this.#tickers.clear();
    this.#state = 'stopped';
  }

  async placeOrder(request: OrderRequest): Promise<void> {
    await this.#venue.place(request, this.priceOf(request.symbol));
  }

  cancelOrder(request: CancelRequest): Promise<void> {
    return this.#venue.cancel(request);
  }

  get openOrders(): number {
    return this.#venue.openOrders;
  }

  #walk(ticker: string): Walk {
    let walk = this.#walks.get(ticker);
    if (!walk) {
      const random = mulberry32(this.#seed ^ hashString(ticker));
      // A plausible share price between $10 and $510, fixed per seed and ticker.
      walk = { random, price: Math.round((10 + random() * 500) * 100) / 100 };
      this.#walks.set(ticker, walk);
    }
    return walk;
  }

  async #tick(): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    const timestamp = new Date().toISOString();
    for (const ticker of [...this.#tickers]) {
      const walk = this.#walk(ticker);
      walk.price = Math.max(0.01, Math.round(walk.price * Math.exp(this.#volatility * gaussian(walk.random)) * 100) / 100);
      // Log-normal trade size around 100 shares, in whole shares.
      const volume = Math.max(1, Math.round(Math.exp(Math.log(100) + 0.8 * gaussian(walk.random))));
      const pending = sink.trade({ symbol: ticker, price: walk.price, volume, timestamp });
      if (pending) await pending;
      const filling = this.#venue.onPrice(ticker, walk.price);
      if (filling) await filling;
    }
  }
}
