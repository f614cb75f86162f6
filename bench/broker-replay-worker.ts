// The worker of bench/broker-replay.ts: one implementation, one process. Connects, replays
// the warm-up file unmeasured (the broker registers its tickers on BROKER_REGISTRATION
// during it), says ready, and on `run` replays the measured file as fast as it can,
// reporting the time from the start of the replay to the last publish Redis acknowledged
// and the CPU time that took.
//
// raw:    node-redis reads the file line by line and publishes what the broker would
//         publish for each Alpaca trade (the same envelope on TICKER_UPDATES_{S}), with a
//         window of publishes in flight; no validation, no last-value cache.
// broker: startBrokerRuntime() with a ReplayFeed at speed 'max', exactly as
//         `tickbus broker --feed replay --speed max` runs it (validation, envelope,
//         batching, last-value cache, metrics all on).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createClient } from 'redis';
import { startBrokerRuntime, type BrokerRuntime } from '../src/broker/broker-runtime.ts';
import { ReplayFeed, type ReplayFeedOptions } from '../src/broker/feeds/replay-feed.ts';
import type { FeedSink } from '../src/broker/feeds/feed.ts';
import { SENDER, parseWorkerConfig, type WorkerCommand, type WorkerEvent } from './broker-replay-common.ts';
import { startClock, type Clock } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { Window } from './lib/window.ts';

const cfg = parseWorkerConfig();
const silent = pino({ level: 'silent' });

interface Measured {
  published: number;
  startedAt: number;
  endedAt: number;
  cpuMicros: number;
  batches: number | undefined;
}

// ---- raw -----------------------------------------------------------------------------

interface AlpacaTrade {
  T: string;
  S: string;
  p: number;
  s: number;
  t: string;
}

/** Publishes what the broker would for every trade of `file`; returns how many. */
async function rawReplay(publish: (channel: string, payload: string) => Promise<unknown>, file: string): Promise<number> {
  const window = new Window(cfg.window);
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let published = 0;
  for await (const line of lines) {
    if (line === '') continue;
    const trade = JSON.parse(line) as AlpacaTrade;
    if (trade.T !== 't') continue;
    const payload = JSON.stringify({
      data: { type: 'price', price: trade.p, volume: trade.s, symbol: trade.S, timestamp: trade.t },
      timestamp: new Date().toISOString(),
      sender: SENDER,
    });
    if (window.full) await window.slot();
    window.add(publish(`TICKER_UPDATES_${trade.S}`, payload));
    published++;
  }
  await window.drain();
  return published;
}

async function rawWorker(): Promise<{ warmup: () => Promise<number>; measure: () => Promise<Measured>; close: () => Promise<void> }> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => {
    throw error;
  });
  await client.connect();
  const publish = (channel: string, payload: string) => client.publish(channel, payload);
  return {
    warmup: () => rawReplay(publish, cfg.warmupFile),
    measure: async () => {
      const clock = await startClock(cfg.profile);
      const published = await rawReplay(publish, cfg.file);
      const { endedAt, cpuMicros } = await clock.stop();
      return { published, startedAt: clock.startedAt, endedAt, cpuMicros, batches: undefined };
    },
    close: () => client.close(),
  };
}

// ---- broker --------------------------------------------------------------------------

/**
 * A ReplayFeed that runs a hook before its first start (which opens the file and begins
 * the replay) and resolves `ended` when the replay reaches the end of the file. The sink's
 * trade path is the broker's own; only `problem` is wrapped.
 */
class ObservedReplayFeed extends ReplayFeed {
  readonly ended: Promise<void>;
  #onEnd: { resolve: () => void; reject: (error: Error) => void } | undefined;
  #beforeFirstStart: (() => Promise<void>) | undefined;

  constructor(options: ReplayFeedOptions, beforeFirstStart?: () => Promise<void>) {
    super(options);
    this.#beforeFirstStart = beforeFirstStart;
    this.ended = new Promise((resolve, reject) => (this.#onEnd = { resolve, reject }));
  }

  override async start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    const hook = this.#beforeFirstStart;
    this.#beforeFirstStart = undefined;
    await hook?.();
    return super.start(tickers, {
      ...sink,
      problem: (message, details) => {
        if (details.code === 'end_of_file') this.#onEnd?.resolve();
        else if (details.final) this.#onEnd?.reject(new Error(`replay feed failed: ${message}`));
        sink.problem(message, details);
      },
    });
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function counterTotal(runtime: BrokerRuntime, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = runtime.registry.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} is not registered`);
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0);
}

function startRuntime(feed: ReplayFeed): Promise<BrokerRuntime> {
  return startBrokerRuntime({ redisUrl: cfg.url, feed, logger: silent, sender: SENDER });
}

/**
 * Warm-up with registration: a broker with no leases starts, the tickers are registered
 * the way the seed's bots do it (an envelope with {action: 'subscribe', ticker} on
 * BROKER_REGISTRATION), the broker stores the leases and streams the warm-up file. The
 * measured broker then finds every ticker in Redis at start-up, before it reads its
 * first trade, so the replay never restarts and no trade is skipped.
 */
async function brokerWarmup(): Promise<number> {
  const feed = new ObservedReplayFeed({ file: cfg.warmupFile, speed: 'max' });
  const runtime = await startRuntime(feed);
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  try {
    await client.connect();
    const registration = (ticker: string) => JSON.stringify({ data: { action: 'subscribe', ticker }, timestamp: new Date().toISOString(), sender: 'bench_bot' });
    await Promise.all(cfg.tickers.map((ticker) => client.publish('BROKER_REGISTRATION', registration(ticker))));
    await until(() => runtime.service.tickers.length === cfg.tickers.length, `the broker to stream all ${cfg.tickers.length} tickers`);
    await feed.ended;
    await until(() => feed.state === 'stopped', 'the warm-up replay to end');
    await runtime.service.stop();
    return feed.stats.published;
  } finally {
    await client.close();
    await runtime.stop();
  }
}

async function brokerMeasure(): Promise<Measured> {
  let clock: Clock | undefined;
  const feed = new ObservedReplayFeed({ file: cfg.file, speed: 'max' }, async () => {
    clock = await startClock(cfg.profile);
  });
  const runtime = await startRuntime(feed);
  try {
    const streaming = runtime.service.tickers;
    if (streaming.length !== cfg.tickers.length) throw new Error(`the broker streams ${streaming.length} tickers at start-up, not ${cfg.tickers.length}: the leases were not stored`);
    // Counts the publish round trips (one per batch) to report the batch size.
    const publisher = runtime.bus.publisher;
    const publishBatch = publisher.publishBatch.bind(publisher);
    let batches = 0;
    publisher.publishBatch = (items) => {
      batches++;
      return publishBatch(items);
    };
    await feed.ended;
    // Stops the feed and drains the batcher: resolves once the last batch was acknowledged
    // and its last values written.
    await runtime.service.stop();
    if (!clock) throw new Error('the replay feed never started');
    const { endedAt, cpuMicros } = await clock.stop();
    const published = await counterTotal(runtime, 'tickbus_broker_updates_published_total', { type: 'price' });
    const failures = await counterTotal(runtime, 'tickbus_broker_publish_failures_total');
    if (failures > 0) throw new Error(`${failures} updates failed to publish`);
    if (feed.stats.published !== cfg.trades || published !== cfg.trades) {
      throw new Error(`the feed handed over ${feed.stats.published} and the broker published ${published} of ${cfg.trades} trades (skipped ${feed.stats.skipped}, malformed ${feed.stats.malformed})`);
    }
    return { published, startedAt: clock.startedAt, endedAt, cpuMicros, batches };
  } finally {
    await runtime.stop();
  }
}

// ---- main ----------------------------------------------------------------------------

const worker =
  cfg.impl === 'raw'
    ? await rawWorker()
    : { warmup: brokerWarmup, measure: brokerMeasure, close: () => Promise.resolve() };

const send = serveParent<WorkerCommand, WorkerEvent>(async () => {
  const m = await worker.measure();
  send({ type: 'result', ...m });
}, worker.close);

send({ type: 'ready', warmupPublished: await worker.warmup() });
