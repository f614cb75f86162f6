// The publisher worker of bench/pubsub.ts. Connects (raw node-redis or tickbus), says
// ready, and on each `run` publishes a phase of messages: as fast as a bounded window of
// publishes in flight allows (throughput), or paced at a fixed rate in 1 ms ticks
// (latency). Every implementation goes through the same loops; only `publish` differs.
import { createClient } from 'redis';
import { createBus } from '../src/index.ts';
import { serveParent } from './lib/proc.ts';
import { startCpuProfile } from './lib/profiler.ts';
import { Window } from './lib/window.ts';
import {
  BENCH_CATALOGS,
  epochMs,
  parseWorkerConfig,
  priceMessage,
  rawChannel,
  tickbusChannels,
  timedPriceMessage,
  type Phase,
  type PublisherCommand,
  type PublisherEvent,
  type WorkerConfig,
} from './pubsub-common.ts';

interface Sender {
  /** Publishes the i-th message of the run. */
  publish(i: number): Promise<unknown>;
  close(): Promise<void>;
}

async function rawSender(cfg: WorkerConfig): Promise<Sender> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => {
    throw error;
  });
  await client.connect();
  const publish =
    cfg.mode === 'throughput'
      ? (i: number) => {
          const m = priceMessage(i);
          return client.publish(rawChannel('throughput', m.symbol), JSON.stringify(m));
        }
      : (i: number) => {
          const m = timedPriceMessage(i);
          return client.publish(rawChannel('latency', m.symbol), JSON.stringify(m));
        };
  return { publish, close: () => client.close() };
}

/** tickbus and tickbus-history: the same code, on a channel without or with history. */
async function tickbusSender(cfg: WorkerConfig & { impl: 'tickbus' | 'tickbus-history' }): Promise<Sender> {
  const { prices, timed } = tickbusChannels(cfg.impl);
  const bus = createBus({ redis: { url: cfg.url }, catalogs: BENCH_CATALOGS, sender: 'bench-publisher' });
  bus.on('error', (error) => {
    throw error;
  });
  await bus.connect();
  const publish =
    cfg.mode === 'throughput'
      ? (i: number) => {
          const m = priceMessage(i);
          return bus.publish(prices.of({ ticker: m.symbol }), m);
        }
      : (i: number) => {
          const m = timedPriceMessage(i);
          return bus.publish(timed.of({ ticker: m.symbol }), m);
        };
  return { publish, close: () => bus.close() };
}

/** Publishes messages first..first+count-1 as fast as the window allows. */
async function flood(sender: Sender, first: number, count: number, window: Window): Promise<void> {
  for (let i = first; i < first + count; i++) {
    if (window.full) await window.slot();
    window.add(sender.publish(i));
  }
  await window.drain();
}

/**
 * Publishes at `rate` messages a second: every tick (a 1 ms timer) sends what is due by
 * then, so late timers catch up and the average rate holds.
 */
async function paced(sender: Sender, first: number, count: number, rate: number, window: Window): Promise<void> {
  const start = epochMs();
  const perMs = rate / 1000;
  let sent = 0;
  while (sent < count) {
    // What is due by the end of the current millisecond.
    const due = Math.min(count, Math.floor((epochMs() - start + 1) * perMs));
    while (sent < due) {
      if (window.full) await window.slot();
      window.add(sender.publish(first + sent));
      sent++;
    }
    if (sent < count) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await window.drain();
}

const cfg = parseWorkerConfig('publisher');
const connecting = cfg.impl === 'raw' ? rawSender(cfg) : tickbusSender({ ...cfg, impl: cfg.impl });
let next = 0;

async function run(phase: Phase): Promise<void> {
  const sender = await connecting;
  const count = phase === 'warmup' ? cfg.warmup : cfg.messages;
  const window = new Window(cfg.window);
  const stopProfile = phase === 'measure' && cfg.profile ? await startCpuProfile(cfg.profile) : undefined;
  const cpu = process.cpuUsage();
  const startedAt = epochMs();
  if (cfg.mode === 'throughput') await flood(sender, next, count, window);
  else await paced(sender, next, count, cfg.rate, window);
  const endedAt = epochMs();
  const used = process.cpuUsage(cpu);
  await stopProfile?.();
  next += count;
  send({ type: 'sent', phase, count, startedAt, endedAt, cpuMicros: used.user + used.system });
}

const send = serveParent<PublisherCommand, PublisherEvent>((command) => run(command.phase), async () => (await connecting).close());
await connecting;
send({ type: 'ready' });
