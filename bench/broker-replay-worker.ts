// The worker of bench/broker-replay.ts: one implementation, one process. Connects, replays
// the warm-up file unmeasured (the broker registers its tickers on BROKER_REGISTRATION
// during it), says ready, and on `run` replays the measured file as fast as it can,
// reporting the time from the start of the replay to the last publish Redis acknowledged
// and the CPU time that took.
//
// raw:    node-redis reads the file line by line and publishes what the broker would
//         publish for each Alpaca trade (the same envelope on TICKER_UPDATES_{S}), with a
//         window of publishes in flight; no validation, no last-value cache, no history.
// raw-history: the same messages, with the Redis work the broker's history-keeping channel
//         does: per batch of 256, one EVAL of a script (written here) that XADDs each
//         update to its ticker's stream (MAXLEN ~ 1000) and PUBLISHes it with the entry's
//         id appended as "position"; the window counts updates, so 512 is 2 scripts.
// broker: startBrokerRuntime() with a ReplayFeed at speed 'max', exactly as
//         `tickbus broker --feed replay --speed max` runs it (validation, envelope,
//         batching, last-value cache, metrics all on).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { createClient } from 'redis';
import { ReplayFeed, startBrokerRuntime, type BrokerRuntime, type FeedSink, type ReplayFeedOptions } from './lib/tickbus.ts';
import { HISTORY_BATCH, HISTORY_MAX_LEN, SENDER, historyKey, parseWorkerConfig, type WorkerCommand, type WorkerEvent } from './broker-replay-common.ts';
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

/** How the raw loop sends: one command per update (PUBLISH), or one per batch (the history script). */
interface RawSender {
  /** Commands in flight at most. */
  readonly window: number;
  /** Takes an update; true when a command is ready to send. */
  add(channel: string, payload: string): boolean;
  /** Sends the updates taken since the last send, in one command. */
  send(): Promise<unknown>;
  /** Updates taken and not yet sent. */
  readonly pending: number;
}

/** raw: a PUBLISH per update, `--window` in flight. */
function publishSender(publish: (channel: string, payload: string) => Promise<unknown>): RawSender {
  let channel = '';
  let payload = '';
  return {
    window: cfg.window,
    pending: 0,
    add: (c, p) => {
      channel = c;
      payload = p;
      return true;
    },
    send: () => publish(channel, payload),
  };
}

/**
 * raw-history: what a client without tickbus would write for the broker's channel with a
 * history: per update, an XADD to the channel's stream (MAXLEN ~ ARGV[1]) and a PUBLISH of
 * the payload with the entry's id appended as "position". ARGV: the bound, then channel,
 * stream key and payload per update. Returns the ids.
 */
const HISTORY_SCRIPT = `local ids = {}
for i = 2, #ARGV, 3 do
  local id = redis.call('XADD', ARGV[i + 1], 'MAXLEN', '~', ARGV[1], '*', 'payload', ARGV[i + 2])
  redis.call('PUBLISH', ARGV[i], string.sub(ARGV[i + 2], 1, -2) .. ',"position":"' .. id .. '"}')
  ids[#ids + 1] = id
end
return ids`;

/** raw-history: one EVAL of HISTORY_SCRIPT per HISTORY_BATCH updates, `--window` updates in flight. */
function historySender(sendCommand: (args: string[]) => Promise<unknown>): RawSender {
  const start = () => ['EVAL', HISTORY_SCRIPT, '0', String(HISTORY_MAX_LEN)];
  let args = start();
  let pending = 0;
  return {
    window: Math.max(1, Math.floor(cfg.window / HISTORY_BATCH)),
    get pending() {
      return pending;
    },
    add: (channel, payload) => {
      args.push(channel, historyKey(channel), payload);
      return ++pending === HISTORY_BATCH;
    },
    send: () => {
      const sent = args;
      const count = pending;
      args = start();
      pending = 0;
      return sendCommand(sent).then((ids) => {
        if (!Array.isArray(ids) || ids.length !== count) throw new Error(`the history script returned ${String(ids)} for ${count} updates`);
      });
    },
  };
}

/** Publishes what the broker would for every trade of `file`; returns how many. */
async function rawReplay(sender: RawSender, file: string): Promise<number> {
  const window = new Window(sender.window);
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
    if (sender.add(`TICKER_UPDATES_${trade.S}`, payload)) {
      if (window.full) await window.slot();
      window.add(sender.send());
    }
    published++;
  }
  if (sender.pending > 0) {
    if (window.full) await window.slot();
    window.add(sender.send());
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
  const sender =
    cfg.impl === 'raw-history'
      ? historySender((args) => client.sendCommand(args))
      : publishSender((channel, payload) => client.publish(channel, payload));
  return {
    warmup: () => rawReplay(sender, cfg.warmupFile),
    measure: async () => {
      const clock = await startClock(cfg.profile);
      const published = await rawReplay(sender, cfg.file);
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

function startRuntime(feed: InstanceType<typeof ReplayFeed>): Promise<BrokerRuntime> {
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
  cfg.impl !== 'broker'
    ? await rawWorker()
    : { warmup: brokerWarmup, measure: brokerMeasure, close: () => Promise.resolve() };

const send = serveParent<WorkerCommand, WorkerEvent>(async () => {
  const m = await worker.measure();
  send({ type: 'result', ...m });
}, worker.close);

send({ type: 'ready', warmupPublished: await worker.warmup() });
