// Alpaca as a market-data feed and an execution venue: trades (optionally quotes and bars) from
// the market-data stream, order updates from the trading stream, and orders over the REST API.
// This is the assembly: the feed's state, start/update/stop, and the sink calls. The parts are
// in alpaca/: the config, the REST order client, the reconnecting socket, both streams'
// protocols, and the subscription state.
import { BusError, ClosedError, ErrorCode, NotConnectedError, preview } from '../../core/errors.ts';
import { createLogger, LogThrottle, type Logger } from '../../core/logger.ts';
import type { CancelRequest, FeedSink, FeedState, MarketDataFeed, OrderRequest } from './feed.ts';
import { ALPACA_DEFAULTS, positive, resolveSocketTiming, type AlpacaConfig, type AlpacaFeedOptions } from './alpaca/alpaca-config.ts';
import { AlpacaOrderClient } from './alpaca/alpaca-orders.ts';
import type { DropReason } from './alpaca/alpaca-socket.ts';
import { MarketDataStream, type ProblemDetails } from './alpaca/market-data-stream.ts';
import type { MarketDataKind } from './alpaca/subscription-state.ts';
import { TradingStream } from './alpaca/trading-stream.ts';

export { ALPACA_DATA_FEEDS, ALPACA_DEFAULTS, alpacaConfigFromEnv, type AlpacaConfig, type AlpacaDataFeed, type AlpacaFeedOptions } from './alpaca/alpaca-config.ts';
export type { MarketDataKind } from './alpaca/subscription-state.ts';

export class AlpacaFeed implements MarketDataFeed {
  readonly name = 'alpaca';
  readonly updatesInPlace = true;

  readonly #logger: Logger;
  readonly #orderClient: AlpacaOrderClient;
  readonly #data: MarketDataStream;
  readonly #trading: TradingStream | undefined;
  readonly #throttle = new LogThrottle(5);

  #state: FeedState = 'idle';
  #sink: FeedSink | undefined;
  #stopping: Promise<void> | undefined;
  #dataReady: (() => void) | undefined;
  #tradingReady: (() => void) | undefined;
  readonly #orders = new Set<Promise<void>>();

  constructor(config: AlpacaConfig, options: AlpacaFeedOptions = {}) {
    const kinds: MarketDataKind[] = ['trades', ...(options.quotes ? (['quotes'] as const) : []), ...(options.bars ? (['bars'] as const) : [])];
    this.#logger = options.logger ?? createLogger('alpaca-feed');
    this.#orderClient = new AlpacaOrderClient(config, positive(options.orderTimeoutMs ?? ALPACA_DEFAULTS.orderTimeoutMs, 'orderTimeoutMs'));
    const timing = resolveSocketTiming(options);
    this.#data = new MarketDataStream(config, kinds, timing, this.#logger, {
      trade: (tick) => {
        const sink = this.#sink;
        return sink && this.#deliver(() => sink.trade(tick), 'trade');
      },
      streaming: () => {
        this.#state = 'streaming';
      },
      ready: () => this.#readyData(),
      problem: (message, details) => this.#problem(message, details),
      malformed: (text) => this.#malformed('market-data stream', text),
      failed: (code, message) => {
        this.#state = 'failed';
        this.#problem(message, { code, final: true });
        this.#readyData();
      },
      retrying: (attempt, delayMs, why) => {
        this.#state = 'reconnecting';
        this.#readyData();
        this.#onRetrying('market-data stream', attempt, delayMs, why);
      },
    });
    if (options.tradingStream !== false) {
      this.#trading = new TradingStream(config, timing, this.#logger, {
        order: (event) => {
          const sink = this.#sink;
          return sink && this.#deliver(() => sink.order(event), 'order');
        },
        ready: () => this.#tradingReady?.(),
        problem: (message, details) => this.#problem(message, details),
        malformed: (text) => this.#malformed('trading stream', text),
        retrying: (attempt, delayMs, why) => {
          this.#tradingReady?.();
          this.#tradingReady = undefined;
          this.#onRetrying('trading stream', attempt, delayMs, why);
        },
      });
    }
  }

  get state(): FeedState {
    return this.#state;
  }

  /** The tickers the feed is asked to stream. */
  get tickers(): readonly string[] {
    return this.#data.tickers;
  }

  /** What Alpaca last confirmed (its subscription echo): the truth about what streams. */
  get subscription(): { readonly trades: readonly string[]; readonly quotes: readonly string[]; readonly bars: readonly string[] } {
    return this.#data.subscription;
  }

  /**
   * Connects both streams. Resolves once each has settled its first attempt: subscribed (or
   * listening), failed for good, or retrying. Upstream trouble goes to sink.problem, never here.
   */
  async start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    if (this.#state === 'stopped') throw new ClosedError('Alpaca feed');
    if (this.#state !== 'idle') throw new BusError(ErrorCode.Config, 'start() was already called on this Alpaca feed; call update() to change its tickers.');
    this.#sink = sink;
    this.#state = 'starting';
    this.#data.update(tickers, []);
    const ready = [new Promise<void>((resolve) => (this.#dataReady = resolve))];
    if (this.#trading) ready.push(new Promise<void>((resolve) => (this.#tradingReady = resolve)));
    this.#data.connect();
    this.#trading?.connect();
    await Promise.all(ready);
  }

  /** Sends unsubscribe then subscribe on the live connection; Alpaca's echo confirms them later. */
  update(add: readonly string[], remove: readonly string[]): Promise<void> {
    if (this.#stopping) return Promise.reject(new ClosedError('Alpaca feed'));
    this.#data.update(add, remove);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'stopped';
    this.#dataReady?.();
    this.#tradingReady?.();
    await Promise.all([this.#data.end(), this.#trading?.end()]);
    // Orders already sent still get their outcome reported; nothing reaches the sink after that.
    await Promise.all([...this.#orders]);
    this.#sink = undefined;
  }

  /**
   * POSTs the order. Resolves once Alpaca answered: an accepted order's updates then arrive on the
   * trading stream; a refused one (or one that never got an answer) becomes a `rejected` update.
   */
  placeOrder(request: OrderRequest): Promise<void> {
    if (this.#stopping) return Promise.reject(new ClosedError('Alpaca feed'));
    if (!this.#sink) return Promise.reject(new NotConnectedError('The Alpaca feed is not started: call start() before placeOrder().'));
    const sending = this.#sendOrder(request).finally(() => this.#orders.delete(sending));
    this.#orders.add(sending);
    return sending;
  }

  /** Cancels through the REST API; the `canceled` update comes on the trading stream, a refusal here. */
  cancelOrder(request: CancelRequest): Promise<void> {
    if (this.#stopping) return Promise.reject(new ClosedError('Alpaca feed'));
    if (!this.#sink) return Promise.reject(new NotConnectedError('The Alpaca feed is not started: call start() before cancelOrder().'));
    const sending = this.#sendCancel(request).finally(() => this.#orders.delete(sending));
    this.#orders.add(sending);
    return sending;
  }

  async #sendCancel(request: CancelRequest): Promise<void> {
    const outcome = await this.#orderClient.cancel(request);
    if (outcome.accepted) return;
    const sink = this.#sink;
    if (sink) await this.#deliver(() => sink.order(outcome.rejected), 'order');
  }

  async #sendOrder(request: OrderRequest): Promise<void> {
    const outcome = await this.#orderClient.place(request);
    if (outcome.accepted) {
      this.#logger.debug({ client_order_id: request.client_order_id, status: outcome.status }, 'Alpaca accepted the order');
      return;
    }
    const sink = this.#sink;
    if (sink) await this.#deliver(() => sink.order(outcome.rejected), 'order');
  }

  /** start() resolves once the first subscription is settled, the stream failed, or it is retrying. */
  #readyData(): void {
    this.#dataReady?.();
    this.#dataReady = undefined;
  }

  #onRetrying(label: string, attempt: number, delayMs: number, why: DropReason): void {
    // One report per outage; the attempts that follow only go to reconnecting().
    if (attempt === 1) this.#problem(`The Alpaca ${label} is down (${why.reason}); reconnecting.`, { code: why.code, final: false });
    const sink = this.#sink;
    // #deliver's promise never rejects (it reports the sink's failure itself).
    if (sink?.reconnecting) this.#deliver(() => sink.reconnecting?.(attempt, delayMs), 'reconnecting')?.catch(() => undefined);
  }

  /** Calls the sink without letting it throw into the feed; returns its promise when it asks us to slow down. */
  #deliver(call: () => void | Promise<void>, what: string): Promise<void> | undefined {
    try {
      const result = call();
      if (result instanceof Promise) return result.catch((error: unknown) => this.#sinkFailed(what, error));
    } catch (error) {
      this.#sinkFailed(what, error);
    }
    return undefined;
  }

  #sinkFailed(what: string, error: unknown): void {
    if (this.#throttle.take() >= 0) this.#logger.error({ err: error }, `The feed sink's ${what}() failed`);
  }

  #problem(message: string, details: ProblemDetails): void {
    this.#logger.warn({ code: details.code, final: details.final }, message);
    const sink = this.#sink;
    if (!sink || this.#state === 'stopped') return;
    try {
      sink.problem(message, details);
    } catch (error) {
      this.#sinkFailed('problem', error);
    }
  }

  #malformed(where: string, text: string): void {
    const suppressed = this.#throttle.take();
    if (suppressed < 0) return;
    this.#problem(`The Alpaca ${where} sent a message the feed cannot read: ${preview(text)}${suppressed > 0 ? ` (${suppressed} more not reported)` : ''}`, {
      code: 'malformed',
      final: false,
    });
  }
}
