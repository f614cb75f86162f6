// The tickers the broker streams, kept in step with the ones wanted. A burst of changes is
// coalesced into one feed update: in place when the feed can (add and remove tickers on a
// live stream), else, as seed 000 does, stop the feed, drain, and start it on the new list.
// In a group the wanted set is first narrowed to the tickers this broker holds.
import type { Background } from '../core/background.ts';
import type { Logger } from '../core/logger.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerGroup } from './broker-group.ts';
import type { FeedSink, MarketDataFeed } from './feeds/feed.ts';
import type { UpdateBatcher } from './update-batcher.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';

export interface TickerSetOptions {
  feed: MarketDataFeed;
  /** Where the feed's trades and order events go. */
  sink: FeedSink;
  batcher: UpdateBatcher;
  group: BrokerGroup | undefined;
  metrics: BrokerMetrics;
  logger: Logger;
  background: Background;
  coalesceMs: number;
  maxCoalesceMs: number;
  /** Every registered ticker. */
  wanted: () => Set<string>;
  /** The streamed set changed. */
  onChange: () => void;
  /** A feed update failed: the feed stays as it was. */
  onProblem: (message: string, details: { cause: unknown }) => void;
}

export class TickerSet {
  readonly #options: TickerSetOptions;
  #streaming = new Set<string>();
  #coalesceTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #burstStart = 0;
  #reconciling: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: TickerSetOptions) {
    this.#options = options;
  }

  /** Tickers being streamed now. */
  get streaming(): ReadonlySet<string> {
    return this.#streaming;
  }

  /** Starts the feed on the tickers wanted now. */
  async start(): Promise<void> {
    const { feed } = this.#options;
    if (feed.updatesInPlace) {
      const desired = await this.#desired();
      await feed.start([...desired], this.#options.sink);
      this.#streaming = desired;
    } else {
      // On the chain like every later change: a registration that arrives while the feed
      // starts must not start it a second time beside this one.
      const first = this.#reconciling.then(() => this.#reconcile());
      this.#reconciling = first.catch(this.#options.background.catcher('broker_reconcile'));
      await first;
    }
  }

  /** Changes the feed no more; a pending update is dropped. See idle(). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#coalesceTimer);
    clearTimeout(this.#retryTimer);
  }

  /** Settles once the feed update under way (if any) has ended; never rejects. */
  idle(): Promise<void> {
    return this.#reconciling;
  }

  /** Coalesces a burst of registrations into one feed update. */
  schedule(): void {
    const now = Date.now();
    if (this.#coalesceTimer === undefined) this.#burstStart = now;
    else if (now - this.#burstStart >= this.#options.maxCoalesceMs) return; // already due soon
    clearTimeout(this.#coalesceTimer);
    this.#coalesceTimer = setTimeout(() => {
      this.#coalesceTimer = undefined;
      // One reconciliation at a time; the chain never rejects, so neither a failure nor
      // stop() awaiting it can surface as an unhandled rejection.
      this.#reconciling = this.#reconciling.then(() => this.#reconcile()).catch(this.#options.background.catcher('broker_reconcile'));
    }, this.#options.coalesceMs);
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return; // the feed is being stopped: never restart it
    const { feed, metrics } = this.#options;
    let desired: Set<string>;
    try {
      desired = await this.#desired();
    } catch (error) {
      // Redis away: try again after a pause (not at the coalescing pace, which would spin).
      this.#options.background.failed('broker_ticker_split', error);
      if (!this.#stopped) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.schedule(), BROKER_DEFAULTS.settleRetryMs);
      }
      return;
    }
    if (this.#stopped) return;
    const add = [...desired].filter((t) => !this.#streaming.has(t));
    const remove = [...this.#streaming].filter((t) => !desired.has(t));
    if (add.length === 0 && remove.length === 0) return;
    try {
      if (feed.updatesInPlace) {
        await feed.update(add, remove);
        metrics.feedUpdates.labels('in_place').inc();
      } else {
        // Seed 000, step 3.9: stop the publisher, update the ticker list, start it again.
        // The registration subscription is not part of this and keeps running.
        await feed.stop();
        await this.#options.batcher.drain();
        if (desired.size > 0) await feed.start([...desired], this.#options.sink);
        metrics.feedUpdates.labels('restart').inc();
      }
      this.#streaming = desired;
      this.#options.onChange();
      this.#options.logger.info({ added: add, removed: remove, tickers: desired.size }, 'ticker set changed');
    } catch (error) {
      this.#options.onProblem(`could not change the ticker set: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The tickers to stream: every registered one, or (in a group) those this broker holds. */
  async #desired(): Promise<Set<string>> {
    const wanted = this.#options.wanted();
    return this.#options.group ? await this.#options.group.settle(wanted) : wanted;
  }
}
