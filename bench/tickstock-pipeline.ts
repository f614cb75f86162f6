// The pipeline worker of bench/tickstock.ts: the market side of the TickStock loop in one
// process, as `tickbus up` runs it: a broker (startBrokerRuntime with forwardTicks) streaming
// --symbols tickers from a bench feed, and the reference pattern library
// (startPatternRuntime, --bar-seconds bars) on the broker's bus. Every tick goes the real
// way: feed → broker (TICKER_UPDATES_{ticker} and the raw tick on tickstock:market:ticks, one
// pipelined batch) → Redis → the pattern library → tickstock:patterns:streaming and
// tickstock.events.patterns → the gateway (another process).
//
// The feed (GridFeed) is the sim feed's seeded random walk (cents, log-normal sizes) on a
// clock grid: every symbol trades every --tick-ms, on multiples of it since the epoch, so a
// trade falls on each bar boundary and closes the bar before it. Each trade's timestamp is
// the wall clock when the feed hands it to the broker; the worker records the closing tick
// of every bar (the first trade of the next bucket) so that the parent can measure a
// pattern from the moment its bar was closed. The tickers are registered the way the seed's
// bots do (BROKER_REGISTRATION).
import { pino } from 'pino';
import { createClient } from 'redis';
import { startBrokerRuntime, startPatternRuntime, tickstock } from './lib/tickbus.ts';
import type { FeedSink, FeedState, MarketDataFeed } from '../src/broker/feeds/feed.ts';
import { gaussian, hashString, mulberry32 } from '../src/core/random.ts';
import { intOption, parseCli, positiveOption } from './lib/cli.ts';
import { cpuMicrosSince, epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { closeKey, symbolNames, type PipelineCommand, type PipelineEvent } from './tickstock-common.ts';

const v = parseCli('node --import tsx bench/tickstock-pipeline.ts [options]', 'The broker and pattern library worker of bench/tickstock.ts (started by it).', {
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Tickers streamed.' },
  'tick-ms': { type: 'string', value: 'ms', default: '250', description: 'Every symbol trades every this many ms.' },
  'bar-seconds': { type: 'string', value: 's', default: '5', description: 'The pattern library timeframe.' },
  volatility: { type: 'string', value: 'x', default: '0.0002', description: 'Per-trade volatility of the log price.' },
  seed: { type: 'string', value: 'N', default: '42', description: 'Seed of the random walks.' },
});
if (v.url === undefined) throw new Error('--url is required.');
const url = v.url;
const symbols = symbolNames(intOption(v.symbols, 'symbols'));
const tickMs = intOption(v['tick-ms'], 'tick-ms');
const barSeconds = intOption(v['bar-seconds'], 'bar-seconds');
const barMs = barSeconds * 1000;
const volatility = positiveOption(v.volatility, 'volatility');
const seed = intOption(v.seed, 'seed', 0);
const symbolIndex = new Map(symbols.map((s, i) => [s, i]));

// ---- the feed ------------------------------------------------------------------------

let ticks = 0;
/** closeKey(symbol, bar end) → the feed timestamp of the tick that opened the next bar. */
const closingTicks = new Map<string, number>();
const lastBucket = new Int32Array(symbols.length).fill(-1);

class GridFeed implements MarketDataFeed {
  readonly name = 'bench-grid';
  readonly updatesInPlace = true;
  #state: FeedState = 'idle';
  readonly #tickers = new Set<string>();
  readonly #walks = new Map<string, { random: () => number; price: number }>();
  #sink: FeedSink | undefined;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  get state(): FeedState {
    return this.#state;
  }

  start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    this.#sink = sink;
    for (const t of tickers) this.#tickers.add(t);
    this.#state = 'streaming';
    if (this.#timer === undefined && this.#round === undefined) this.#schedule(Math.ceil(Date.now() / tickMs) * tickMs);
    return Promise.resolve();
  }

  update(add: readonly string[], remove: readonly string[]): Promise<void> {
    for (const t of remove) this.#tickers.delete(t);
    for (const t of add) this.#tickers.add(t);
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
    this.#state = 'stopped';
  }

  placeOrder(): Promise<void> {
    return Promise.reject(new Error('the bench feed takes no orders'));
  }

  cancelOrder(): Promise<void> {
    return Promise.reject(new Error('the bench feed takes no orders'));
  }

  /** The next round at `target` (a multiple of tick-ms): never before it, so its trades fall in its bucket. */
  #schedule(target: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (Date.now() < target) return this.#schedule(target);
      this.#round = this.#trade().finally(() => {
        this.#round = undefined;
        // A round that overran skips the grid points it missed rather than piling them up.
        this.#schedule(Math.max(target + tickMs, Math.ceil(Date.now() / tickMs) * tickMs));
      });
    }, Math.max(0, target - Date.now()));
  }

  async #trade(): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    for (const ticker of [...this.#tickers]) {
      let walk = this.#walks.get(ticker);
      if (!walk) {
        const random = mulberry32(seed ^ hashString(ticker));
        walk = { random, price: Math.round((20 + random() * 80) * 100) / 100 };
        this.#walks.set(ticker, walk);
      }
      walk.price = Math.max(0.01, Math.round(walk.price * Math.exp(volatility * gaussian(walk.random)) * 100) / 100);
      const volume = Math.max(1, Math.round(Math.exp(Math.log(100) + 0.8 * gaussian(walk.random))));
      const at = Date.now();
      const index = symbolIndex.get(ticker);
      if (index !== undefined) {
        const bucket = Math.floor(at / barMs);
        if (bucket > (lastBucket[index] as number)) {
          if ((lastBucket[index] as number) >= 0) closingTicks.set(closeKey(index, bucket * barMs), at);
          lastBucket[index] = bucket;
        }
      }
      ticks++;
      const pending = sink.trade({ symbol: ticker, price: walk.price, volume, timestamp: new Date(at).toISOString() });
      if (pending) await pending;
    }
  }
}

// ---- the broker and the pattern library ----------------------------------------------

const logger = pino({ level: 'silent' });
const feed = new GridFeed();
const broker = await startBrokerRuntime({ redisUrl: url, feed, logger, forwardTicks: true, heartbeatMs: 60_000 });
const patterns = await startPatternRuntime({ logger, bus: broker.bus, registry: broker.bus.context.metrics.registry, heartbeatMs: 0, timeframes: [barSeconds] });

// Bars the flush timer closed (no tick closed them first): counted apart, they have no closing tick.
let barsClosedByFlush = 0;
const engine = patterns.service.engine;
const flush = engine.flush.bind(engine);
engine.flush = (nowMs) => {
  const before = engine.stats().barsClosed;
  const out = flush(nowMs);
  barsClosedByFlush += engine.stats().barsClosed - before;
  return out;
};

// Patterns by name, as the library publishes them, and when each is back from Redis (the
// pipeline's share of the latency: closing tick to the pattern message on Redis).
const detected: Record<string, number> = {};
let published: number[] = [];
await broker.bus.subscribe(tickstock.PatternsStreaming, (m) => {
  if (!counting) return;
  detected[m.pattern_name] = (detected[m.pattern_name] ?? 0) + 1;
  const at = closingTicks.get(closeKey(symbolIndex.get(m.symbol) ?? -1, Math.round((m.detected_at ?? 0) * 1000)));
  if (at !== undefined) published.push(epochMs() - at);
});

const registrar = createClient({ url });
await registrar.connect();
const registration = (ticker: string) => JSON.stringify({ data: { action: 'subscribe', ticker }, timestamp: new Date().toISOString(), sender: 'bench_bot' });
await Promise.all(symbols.map((ticker) => registrar.publish('BROKER_REGISTRATION', registration(ticker))));
await registrar.close();
const deadline = Date.now() + 30_000;
while (broker.service.tickers.length < symbols.length) {
  if (Date.now() > deadline) throw new Error(`the broker streams ${broker.service.tickers.length} of ${symbols.length} tickers after 30 s`);
  await new Promise((resolve) => setTimeout(resolve, 20));
}

// ---- IPC -----------------------------------------------------------------------------

let counting = false;
let begin = { at: 0, cpu: process.cpuUsage(), ticks: 0, bars: 0, byFlush: 0 };
const send = serveParent<PipelineCommand, PipelineEvent>(
  (command) => {
    if (command.type === 'begin') {
      for (const k of Object.keys(detected)) delete detected[k];
      published = [];
      begin = { at: epochMs(), cpu: process.cpuUsage(), ticks, bars: engine.stats().barsClosed, byFlush: barsClosedByFlush };
      counting = true;
      send({ type: 'begun' });
      return;
    }
    counting = false;
    const cpuMicros = cpuMicrosSince(begin.cpu);
    send({ type: 'result', ticks: ticks - begin.ticks, barsClosed: engine.stats().barsClosed - begin.bars, barsClosedByFlush: barsClosedByFlush - begin.byFlush, patterns: { ...detected }, published: Float64Array.from(published), closingTicks, cpuMicros, windowMs: epochMs() - begin.at });
  },
  async () => {
    await patterns.close();
    await broker.stop();
  },
);
send({ type: 'ready', tickers: broker.service.tickers.length });
