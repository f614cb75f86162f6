// The publisher worker of bench/durable.ts. Connects (raw node-redis or tickbus), says
// ready, and on each `run` appends a phase of price messages to the durable channel's
// stream: as fast as a bounded window of appends in flight allows (throughput), or paced
// at a fixed rate in 1 ms ticks (latency). Both implementations go through the same loops;
// only `publish` differs.
//
// - raw: XADD <key> MAXLEN ~ 100000 * payload <JSON>, one command per message.
// - tickbus: bus.publish(BenchDurablePrices.of(), message): validation, the envelope (with
//   a message id), then the transport's stream append.
import { createClient } from 'redis';
import { createBus } from '../src/index.ts';
import { serveParent } from './lib/proc.ts';
import { startCpuProfile } from './lib/profiler.ts';
import { Window } from './lib/window.ts';
import {
  BenchDurablePrices,
  MAX_LEN,
  STREAM_KEY,
  benchDurableCatalog,
  epochMs,
  parseWorkerConfig,
  priceMessage,
  type Phase,
  type PublisherCommand,
  type PublisherEvent,
  type WorkerConfig,
} from './durable-common.ts';

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
  const trim = { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: MAX_LEN } } as const;
  return {
    publish: (i) => client.xAdd(STREAM_KEY, '*', { payload: JSON.stringify(priceMessage(i)) }, trim),
    close: () => client.close(),
  };
}

async function tickbusSender(cfg: WorkerConfig): Promise<Sender> {
  const bus = createBus({ redis: { url: cfg.url }, catalogs: [benchDurableCatalog], sender: 'bench-publisher' });
  bus.on('error', (error) => {
    throw error;
  });
  await bus.connect();
  const ref = BenchDurablePrices.of();
  return {
    // Without a fallback buffer a receipt is 'sent' or the publish rejects (and the window
    // rethrows): no check per message, which would cost tickbus a promise the raw loop has not.
    publish: (i) => bus.publish(ref, priceMessage(i)),
    close: () => bus.close(),
  };
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
const connecting = cfg.impl === 'raw' ? rawSender(cfg) : tickbusSender(cfg);
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
