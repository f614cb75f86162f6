// Replays recorded trades from a file, at the recorded pace times `speed`, or as fast as
// the sink takes them (speed 'max'). Formats (see docs/feeds.md):
//   NDJSON: one trade per line, either tickbus's {"symbol","price","volume","timestamp"}
//           or Alpaca's trade message {"T":"t","S","p","s","t"} as it arrives on the stream
//           (a line may also hold an Alpaca array of messages).
//   CSV:    a header naming timestamp,symbol,price,volume (any order), then one trade a line.
// (The line parsers are in src/core/trade-file.ts, shared with the backtest worker.)
// The file position survives stop()/start(), so restarting with a new ticker list never
// replays a trade twice.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ConfigError } from '../../core/errors.ts';
import { csvParser, parseJsonLine } from '../../core/trade-file.ts';
import type { CancelRequest, FeedSink, FeedState, MarketDataFeed, OrderRequest, TradeTick } from './feed.ts';
import { SimVenue } from './sim-venue.ts';
import { FEED_DEFAULTS } from './feed-names.ts';

export interface ReplayFeedOptions {
  file: string;
  /** Multiplier of the recorded pace, or 'max' for as fast as possible. @default 1 */
  speed?: number | 'max';
  /** Start again from the top at the end of the file. @default false */
  loop?: boolean;
}

type Parser = (line: string) => TradeTick[];

export class ReplayFeed implements MarketDataFeed {
  readonly name = 'replay';
  /** The seed's stop / update / start sequence applies to replays (the position is kept). */
  readonly updatesInPlace = false;
  readonly #options: Required<ReplayFeedOptions>;
  readonly #tickers = new Set<string>();
  readonly #lastPrice = new Map<string, number>();
  readonly #venue: SimVenue;
  #lines: AsyncIterator<string> | undefined;
  #parser: Parser | undefined;
  #sink: FeedSink | undefined;
  #state: FeedState = 'idle';
  #running: Promise<void> | undefined;
  #stopRequested = false;
  #wake: (() => void) | undefined;
  /** Pace anchor: wall time and trade time of the first trade since (re)start. */
  #anchor: { wall: number; trade: number } | undefined;
  /** Trades read from the file, published, and skipped (other tickers, bad lines). */
  readonly stats = { read: 0, published: 0, skipped: 0, malformed: 0 };
  #starting = false;

  constructor(options: ReplayFeedOptions) {
    const speed = options.speed ?? FEED_DEFAULTS.replaySpeed;
    if (speed !== 'max' && !(typeof speed === 'number' && speed > 0)) throw new ConfigError(`--speed must be a positive number or "max", got "${String(speed)}".`);
    this.#options = { file: options.file, speed, loop: options.loop ?? false };
    this.#venue = new SimVenue((event) => this.#sink?.order(event));
  }

  get state(): FeedState {
    return this.#state;
  }

  async start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    // #starting is set before the first await: two starts at once would each open the file,
    // and the first pump would read on in the second's reader, from the top again.
    if (this.#running || this.#starting) throw new ConfigError('The replay feed is already running: stop() it first.');
    this.#starting = true;
    try {
      await this.#startPump(tickers, sink);
    } finally {
      this.#starting = false;
    }
  }

  async #startPump(tickers: readonly string[], sink: FeedSink): Promise<void> {
    this.#sink = sink;
    this.#tickers.clear();
    for (const t of tickers) this.#tickers.add(t);
    this.#stopRequested = false;
    this.#anchor = undefined;
    if (!this.#lines) await this.#open();
    this.#state = 'streaming';
    this.#running = this.#pump().catch((error: unknown) => {
      this.#state = 'failed';
      sink.problem(`replay of ${this.#options.file} failed: ${(error as Error).message}`, { final: true, cause: error });
    });
  }

  update(): Promise<void> {
    return Promise.reject(new ConfigError('The replay feed changes tickers by stop() and start().'));
  }

  async stop(): Promise<void> {
    this.#stopRequested = true;
    this.#wake?.();
    await this.#running;
    this.#running = undefined;
    if (this.#state !== 'failed') this.#state = 'stopped';
  }

  async placeOrder(request: OrderRequest): Promise<void> {
    const price = this.#lastPrice.get(request.symbol);
    if (price === undefined) {
      await this.#sink?.order({
        event: 'rejected',
        symbol: request.symbol,
        timestamp: new Date().toISOString(),
        order: { client_order_id: request.client_order_id, symbol: request.symbol, side: request.side, qty: String(request.qty), type: request.type, status: 'rejected' },
        reason: `no replayed price for ${request.symbol} yet`,
      });
      return;
    }
    await this.#venue.place(request, price);
  }

  cancelOrder(request: CancelRequest): Promise<void> {
    return this.#venue.cancel(request);
  }

  async #open(): Promise<void> {
    const input = createReadStream(this.#options.file, { encoding: 'utf8' });
    await new Promise<void>((resolve, reject) => {
      input.once('open', () => resolve());
      input.once('error', (error) => reject(new ConfigError(`Cannot read replay file ${this.#options.file}: ${error.message}`, { cause: error })));
    });
    this.#lines = createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]();
    this.#parser = undefined;
  }

  async #pump(): Promise<void> {
    const sink = this.#sink as FeedSink;
    while (!this.#stopRequested) {
      const next = await (this.#lines as AsyncIterator<string>).next();
      if (next.done) {
        if (!this.#options.loop) {
          this.#state = 'stopped';
          sink.problem(`replay of ${this.#options.file} reached the end (${this.stats.published} trades published)`, { code: 'end_of_file' });
          return;
        }
        await this.#open();
        this.#anchor = undefined;
        continue;
      }
      const line = next.value.trim();
      if (line === '') continue;
      const ticks = this.#parse(line);
      for (const tick of ticks) {
        this.stats.read++;
        if (!this.#tickers.has(tick.symbol)) {
          this.stats.skipped++;
          continue;
        }
        // At speed 'max' and with no order resting, a trade costs no await: each was a
        // microtask per trade, measurable at 100,000 a second (bench/broker-replay.ts).
        if (this.#options.speed !== 'max') await this.#pace(tick);
        if (this.#stopRequested) return;
        this.#lastPrice.set(tick.symbol, tick.price);
        const pending = sink.trade(tick);
        if (pending) await pending;
        this.stats.published++;
        const filling = this.#venue.onPrice(tick.symbol, tick.price);
        if (filling) await filling;
      }
    }
  }

  #parse(line: string): TradeTick[] {
    if (!this.#parser) {
      if (line.startsWith('{') || line.startsWith('[')) this.#parser = parseJsonLine;
      else {
        this.#parser = csvParser(line);
        return []; // the header
      }
    }
    try {
      return this.#parser(line);
    } catch {
      this.stats.malformed++;
      return [];
    }
  }

  async #pace(tick: TradeTick): Promise<void> {
    if (this.#options.speed === 'max') return;
    const tradeTime = Date.parse(tick.timestamp);
    if (Number.isNaN(tradeTime)) return;
    if (!this.#anchor) {
      this.#anchor = { wall: performance.now(), trade: tradeTime };
      return;
    }
    const due = this.#anchor.wall + (tradeTime - this.#anchor.trade) / this.#options.speed;
    const wait = due - performance.now();
    if (wait <= 1) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }
}
