// Publishes the feed's updates in pipelined batches: everything a feed produces in one
// turn of the event loop goes out in one round trip, and the last price of each ticker is
// written to the last-value cache once per batch, not once per trade. When Redis falls
// behind, enqueue() returns a promise so the feed slows down instead of memory growing.
// An update may bring a companion (the raw tick forwarded to TickStockPL, `forwardTicks`):
// it goes out in the same batch, right after its update, one more message in the same
// round trip.
import type { BatchItem, Publisher } from '../bus/publisher.ts';
import { BusError, ClosedError, ErrorCode, FencedError, LinkClosedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { LogThrottle } from '../core/logger.ts';
import { errorCode, errorText } from '../core/background.ts';
import { activeTraceContext, newTraceContext } from '../core/tracing.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';

export interface UpdateBatcherOptions {
  /** Largest batch sent in one round trip. @default 256 */
  maxBatch?: number;
  /**
   * Batches in flight before the feed is asked to wait. @default 2
   * More buys nothing once batches are full: updates only wait longer, survive more
   * garbage collections and cost more to collect (measured with bench/broker-replay.ts).
   */
  maxInFlight?: number;
  /** A publish was refused because its fencing token is stale (another broker took the ticker). */
  onFenced?: (channel: string) => void;
}

interface Queued {
  item: BatchItem;
  type: 'price' | 'order';
  enqueuedAt: number;
  /** The ticker whose last-value cache entry this update becomes, once published. */
  lastValueOf: string | undefined;
  /** Sent with the update, right after it (the forwarded tick); counted apart. */
  companion: BatchItem | undefined;
}

/** A batch's messages in order: each update, then its companion if it has one. */
function itemsOf(batch: readonly Queued[]): BatchItem[] {
  const items: BatchItem[] = [];
  for (const q of batch) {
    items.push(q.item);
    if (q.companion !== undefined) items.push(q.companion);
  }
  return items;
}

export class UpdateBatcher {
  #queue: Queued[] = [];
  #scheduled = false;
  #inFlight = 0;
  #waiters: Array<() => void> = [];
  #idle: Array<() => void> = [];
  /** Last-value cache writes sent and not yet answered. */
  readonly #lastValueWrites = new Set<Promise<unknown>>();
  readonly #maxBatch: number;
  readonly #maxInFlight: number;
  readonly #onFenced: ((channel: string) => void) | undefined;
  // One line a second: while Redis is down every batch fails the same way (all are counted).
  readonly #throttle = new LogThrottle(1);

  private readonly publisher: Publisher;
  private readonly store: BrokerStore;
  private readonly metrics: BrokerMetrics;
  private readonly logger: Logger;

  constructor(
    publisher: Publisher,
    store: BrokerStore,
    metrics: BrokerMetrics,
    logger: Logger,
    options: UpdateBatcherOptions = {},
  ) {
    this.publisher = publisher;
    this.store = store;
    this.metrics = metrics;
    this.logger = logger;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#maxInFlight = options.maxInFlight ?? 2;
    this.#onFenced = options.onFenced;
  }

  /** `companion`: a message to publish right after this one, in the same batch (the forwarded tick). */
  enqueue(item: BatchItem, type: 'price' | 'order', lastValueOf?: string, companion?: BatchItem): void | Promise<void> {
    // With tracing on, an order's update published later joins the order's trace; a price
    // begins its own (the feed's timers run in whatever context started the ticker).
    const traceContext = type === 'order' ? activeTraceContext() : newTraceContext();
    if (traceContext !== undefined && item.traceContext === undefined) item = { ...item, traceContext };
    this.#queue.push({ item, type, enqueuedAt: performance.now(), lastValueOf, companion });
    if (this.#queue.length >= this.#maxBatch && this.#inFlight < this.#maxInFlight) {
      // A full batch goes now, not at the end of the turn: a feed that produces faster than
      // Redis answers (a replay at speed 'max') never yields the turn until it has to wait,
      // and Redis would sit idle meanwhile (and the feed, later, waiting on Redis: 20 % of
      // a replay, measured with bench/broker-replay.ts).
      this.#flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
    if (this.#mustWait()) return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Every slot is taken and a full batch waits for one: the feed is asked to wait. */
  #mustWait(): boolean {
    return this.#inFlight >= this.#maxInFlight && this.#queue.length >= this.#maxBatch;
  }

  readonly #flushLater = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  /** Resolves when every queued update has been published (or has failed). */
  drain(): Promise<void> {
    if (this.#queue.length === 0 && this.#inFlight === 0) return this.#lastValuesWritten();
    return new Promise((resolve) => this.#idle.push(() => void this.#lastValuesWritten().then(resolve, resolve)));
  }

  /** Settles once the last-value writes sent so far are answered (their failures are logged). */
  async #lastValuesWritten(): Promise<void> {
    while (this.#lastValueWrites.size > 0) await Promise.all(this.#lastValueWrites);
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.#send(batch)
        .finally(() => {
          this.#inFlight--;
          this.#release();
        })
        // #send reports its own failures; this is for a bug in that reporting, never a crash.
        .catch((error: unknown) => this.#log(error as Error, 'ticker update batch failed'));
    }
  }

  async #send(batch: Queued[]): Promise<void> {
    let published: Queued[] = batch;
    try {
      await this.publisher.publishBatch(itemsOf(batch));
      this.#published(batch);
      this.#forwarded(batch);
    } catch (error) {
      if (error instanceof FencedError) {
        // Redis refused the stale holder's updates (the others of the batch went out): no
        // retry, which would repeat those; the ticker is given up.
        // The companions are not fenced (their channel has no stream), so they went out.
        this.#onFenced?.(error.channel ?? '');
        this.#failed(error, 1);
        this.#forwarded(batch);
        published = [];
      } else if ((batch.length > 1 || batch[0]?.companion !== undefined) && !failsWholeBatch(error)) {
        // One bad update (invalid, too large) must not sink its whole batch: send them one
        // by one, so only the bad one is lost (and counted); a companion goes on its own.
        const ok = await Promise.all(batch.map((q) => this.#sendOne(q)));
        published = batch.filter((_, i) => ok[i]);
      } else {
        this.#failed(error as BusError, batch.length);
        const lost = batch.filter((q) => q.companion !== undefined).length;
        if (lost > 0) this.metrics.forwardFailures.labels((error as BusError).code ?? ErrorCode.Transport).inc(lost);
        published = [];
      }
    }
    // The cache follows what subscribers saw: the latest published price of each ticker.
    // Newest first, so each ticker is serialised once (about 20 of a batch of 256).
    const lastValues = new Map<string, string>();
    for (let i = published.length - 1; i >= 0; i--) {
      const q = published[i] as Queued;
      if (q.lastValueOf !== undefined && !lastValues.has(q.lastValueOf)) lastValues.set(q.lastValueOf, JSON.stringify(q.item.data));
    }
    if (lastValues.size === 0) return;
    // Not awaited here: the batch's round trip is over, and holding its in-flight slot for a
    // second one halved the updates a second (the broker waited on Redis, not on CPU). The
    // writes are sent in the order the batches were acknowledged; drain() waits for them.
    const write: Promise<void> = this.store.setLastValues(lastValues).then(
      () => void this.#lastValueWrites.delete(write),
      (error: unknown) => {
        this.#lastValueWrites.delete(write);
        this.#log(error as Error, 'last-value cache write failed');
      },
    );
    this.#lastValueWrites.add(write);
  }

  async #sendOne(q: Queued): Promise<boolean> {
    // The companion on its own: a bad one must not lose its update, nor the other way round.
    const companion = q.companion === undefined ? undefined : this.#sendCompanion(q);
    try {
      await this.publisher.publishBatch([q.item]);
      this.#published([q]);
      return true;
    } catch (error) {
      if (error instanceof FencedError) this.#onFenced?.(error.channel ?? '');
      this.#failed(error as BusError, 1);
      return false;
    } finally {
      await companion;
    }
  }

  async #sendCompanion(q: Queued): Promise<void> {
    try {
      await this.publisher.publishBatch([q.companion as BatchItem]);
      this.#forwarded([q]);
    } catch (error) {
      this.metrics.forwardFailures.labels((error as BusError).code ?? ErrorCode.Transport).inc();
      this.#log(error as Error, 'forwarded tick not published');
    }
  }

  #forwarded(batch: readonly Queued[]): void {
    let n = 0;
    for (const q of batch) if (q.companion !== undefined) n++;
    if (n > 0) this.metrics.ticksForwarded.inc(n);
  }

  #published(batch: Queued[]): void {
    let orders = 0;
    for (const q of batch) if (q.type === 'order') orders++;
    if (batch.length > orders) this.metrics.updatesPublished.labels('price').inc(batch.length - orders);
    if (orders > 0) this.metrics.updatesPublished.labels('order').inc(orders);
    // The age of the batch's oldest update: the worst wait in it.
    const oldest = batch[0];
    if (oldest) this.metrics.publishLatency.observe((performance.now() - oldest.enqueuedAt) / 1000);
  }

  #failed(error: BusError, count: number): void {
    this.metrics.publishFailures.labels(error.code ?? ErrorCode.Transport).inc(count);
    this.#log(error, `${count} ticker update(s) not published`);
  }

  #log(error: Error, message: string): void {
    const suppressed = this.#throttle.take();
    // Compact (code and message, no stack): the same failure repeats for as long as Redis is away.
    if (suppressed >= 0) this.logger.warn({ code: errorCode(error), error: errorText(error), ...(suppressed > 0 ? { suppressed } : {}) }, message);
  }

  #release(): void {
    // A full batch takes the freed slot at once; a partial one waits for the end of the turn.
    if (this.#queue.length >= this.#maxBatch) this.#flush();
    else if (this.#queue.length > 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
    if (!this.#mustWait()) for (const w of this.#waiters.splice(0)) w();
    if (this.#queue.length === 0 && this.#inFlight === 0) for (const r of this.#idle.splice(0)) r();
  }
}

/**
 * Redis unreachable or the link failing (a retryable error), or the publisher closed:
 * sending the updates one by one would fail each the same way.
 */
function failsWholeBatch(error: unknown): boolean {
  return error instanceof BusError && (error.retryable || error instanceof ClosedError || error instanceof LinkClosedError);
}
