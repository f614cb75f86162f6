// The subscriber worker of bench/pubsub.ts. Subscribes to the ten tickers' channels (raw
// node-redis with JSON.parse, or tickbus with a typed handler, on a channel without or with
// history), says ready, counts the
// warm-up messages, then times the measured ones: when the last arrives (throughput) and
// how long each took from its `sent_at` to the handler (latency). Reports once every
// message arrived, or when the parent asks.
import { createClient } from 'redis';
import { createBus } from '../src/index.ts';
import { serveParent } from './lib/proc.ts';
import { startCpuProfile } from './lib/profiler.ts';
import { summarize } from './lib/stats.ts';
import {
  BENCH_CATALOGS,
  TICKERS,
  epochMs,
  parseWorkerConfig,
  rawChannel,
  tickbusChannels,
  type PriceMessage,
  type SubscriberCommand,
  type SubscriberEvent,
  type WorkerConfig,
} from './pubsub-common.ts';

/** What both implementations call for each message their handler gets. */
interface Sink {
  /** A price message; `sentAt` in latency runs. */
  price(sentAt: number | undefined): void;
  /** Anything that should not have arrived, or a bus error. */
  error(what: string): void;
}

type Close = () => Promise<void>;

async function rawSubscriber(cfg: WorkerConfig, sink: Sink): Promise<Close> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => sink.error(error.message));
  await client.connect();
  await client.subscribe(
    TICKERS.map((t) => rawChannel(cfg.mode, t)),
    (message) => {
      const m = JSON.parse(message) as PriceMessage;
      if (m.type === 'price') sink.price(m.sent_at);
      else sink.error(`unexpected message ${message.slice(0, 60)}`);
    },
  );
  return () => client.close();
}

async function tickbusSubscriber(cfg: WorkerConfig & { impl: 'tickbus' | 'tickbus-history' }, sink: Sink): Promise<Close> {
  const { prices, timed } = tickbusChannels(cfg.impl);
  const bus = createBus({ redis: { url: cfg.url }, catalogs: BENCH_CATALOGS, sender: 'bench-subscriber' });
  bus.on('error', (error) => sink.error(error.message));
  for (const ticker of TICKERS) {
    if (cfg.mode === 'throughput') {
      await bus.subscribe(prices.of({ ticker }), () => sink.price(undefined));
    } else {
      await bus.subscribe(timed.of({ ticker }), (data) => sink.price(data.sent_at));
    }
  }
  return () => bus.close();
}

const cfg = parseWorkerConfig('subscriber');
const total = cfg.warmup + cfg.messages;
const latencies = cfg.mode === 'latency' ? new Float64Array(cfg.messages) : undefined;
let received = 0;
let lastAt = Number.NaN;
let errors = 0;
let firstError: string | undefined;
let cpuAtWarm = process.cpuUsage();
let profiling: Promise<() => Promise<void>> | undefined;
let reported = false;

async function report(): Promise<void> {
  if (reported) return;
  reported = true;
  const measured = Math.max(0, received - cfg.warmup);
  const cpu = process.cpuUsage(cpuAtWarm);
  const latency = latencies ? summarize(latencies.subarray(0, Math.min(measured, latencies.length))) : undefined;
  await (await profiling)?.();
  send({ type: 'result', complete: measured === cfg.messages, received: measured, lastAt, cpuMicros: cpu.user + cpu.system, latency, errors, firstError });
}

function warm(): void {
  if (cfg.profile) profiling = startCpuProfile(cfg.profile);
  cpuAtWarm = process.cpuUsage();
  send({ type: 'warm' });
}

const sink: Sink = {
  price(sentAt) {
    const n = ++received;
    if (latencies && n > cfg.warmup) {
      const idx = n - cfg.warmup - 1;
      if (idx < latencies.length) latencies[idx] = epochMs() - (sentAt ?? Number.NaN);
    }
    if (n === cfg.warmup) warm();
    else if (n === total) {
      lastAt = epochMs();
      void report();
    } else if (n > total) sink.error('more messages than were published');
  },
  error(what) {
    errors++;
    firstError ??= what;
  },
};

const connecting = cfg.impl === 'raw' ? rawSubscriber(cfg, sink) : tickbusSubscriber({ ...cfg, impl: cfg.impl }, sink);
const send = serveParent<SubscriberCommand, SubscriberEvent>(report, async () => (await connecting)());
await connecting;
send({ type: 'ready' });
if (cfg.warmup === 0) warm();
