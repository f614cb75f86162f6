// What the durable-channel benchmark's parent and workers share: the bench channel (a
// durable stream of price messages), the stream key and consumer group, the messages, the
// worker options and the IPC protocol.
import { z } from 'zod';
import { defineCatalog, defineChannel, streamKey } from '../src/index.ts';
import { choiceOption, intOption, parseCli, positiveOption, type OptionSpec } from './lib/cli.ts';
import type { Summary } from './lib/stats.ts';

export const IMPLS = ['raw', 'tickbus'] as const;
export type Impl = (typeof IMPLS)[number];

/** throughput: as fast as the window allows; latency: paced at a fixed rate. */
export const MODES = ['throughput', 'latency'] as const;
export type Mode = (typeof MODES)[number];

/** Unmeasured messages first (JIT, connections, buffers), then the measured ones. */
export type Phase = 'warmup' | 'measure';

export const TICKERS = ['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'BRK.B', 'JPM', 'V'] as const;

/** The stream's bound, for both implementations: XADD … MAXLEN ~ 100000. */
export const MAX_LEN = 100_000;

/** The consumer group and the consumer's name, for both implementations. */
export const GROUP = 'bench';
export const CONSUMER = 'bench-consumer';

export const PriceSchema = z.object({
  type: z.literal('price'),
  symbol: z.string().min(1).max(16),
  price: z.number().nonnegative(),
  volume: z.number().nonnegative(),
  /** When the publisher made the message, in epoch ms (see epochMs). */
  sent_at: z.number(),
});

export type PriceMessage = z.output<typeof PriceSchema>;

/** The bench channel: one durable stream, bounded like the raw loop's. */
export const BenchDurablePrices = defineChannel({
  name: 'BENCH_DURABLE_PRICES',
  schema: PriceSchema,
  description: 'Benchmark price messages on a durable channel (bench/durable.ts).',
  durable: { maxLen: MAX_LEN },
});

export const benchDurableCatalog = defineCatalog('bench-durable', 'Durable-channel benchmark channels.', { BenchDurablePrices });

/** The stream both implementations write and read: the key tickbus uses for the channel. */
export const STREAM_KEY = streamKey(BenchDurablePrices.template);

/**
 * Wall-clock time in milliseconds with sub-millisecond resolution. Comparable across
 * processes on one machine: each process's timeOrigin is read from the same clock.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The i-th message of a run, stamped with its send time: tickers in turn, a price walking a little. */
export function priceMessage(i: number): PriceMessage {
  return {
    type: 'price',
    symbol: TICKERS[i % TICKERS.length] as string,
    price: 100 + (i % 1000) / 100,
    volume: 100 + (i % 50),
    sent_at: epochMs(),
  };
}

// ---- worker options ------------------------------------------------------------------

export const WORKER_OPTIONS = {
  impl: { type: 'string', description: 'raw (node-redis) or tickbus.', value: 'impl' },
  mode: { type: 'string', description: 'throughput or latency.', value: 'mode' },
  url: { type: 'string', description: 'Redis URL.', value: 'url' },
  warmup: { type: 'string', description: 'Unmeasured messages before the measured ones.', value: 'N' },
  messages: { type: 'string', description: 'Measured messages.', value: 'N' },
  rate: { type: 'string', description: 'Latency runs: messages per second.', value: 'R', default: '5000' },
  window: { type: 'string', description: 'Publishes (XADDs) in flight at most.', value: 'N', default: '512' },
  batch: { type: 'string', description: 'Entries per XREADGROUP (COUNT / batchSize).', value: 'N', default: '100' },
  block: { type: 'string', description: 'XREADGROUP BLOCK (blockMs), ms.', value: 'ms', default: '1000' },
  profile: { type: 'string', description: 'Write a CPU profile of the measured phase to this file.', value: 'file' },
} as const satisfies Record<string, OptionSpec>;

export interface WorkerConfig {
  impl: Impl;
  mode: Mode;
  url: string;
  warmup: number;
  messages: number;
  rate: number;
  window: number;
  batch: number;
  block: number;
  /** Where to write a CPU profile of the measured phase, if anywhere. */
  profile: string | undefined;
}

export function workerArgs(c: WorkerConfig): string[] {
  return [
    '--impl', c.impl,
    '--mode', c.mode,
    '--url', c.url,
    '--warmup', String(c.warmup),
    '--messages', String(c.messages),
    '--rate', String(c.rate),
    '--window', String(c.window),
    '--batch', String(c.batch),
    '--block', String(c.block),
    ...(c.profile ? ['--profile', c.profile] : []),
  ];
}

export function parseWorkerConfig(role: string): WorkerConfig {
  const v = parseCli(`node --import tsx bench/durable-${role}.ts [options]`, `The ${role} worker of bench/durable.ts (started by it).`, WORKER_OPTIONS);
  if (v.url === undefined || v.impl === undefined || v.mode === undefined || v.warmup === undefined || v.messages === undefined) {
    throw new Error('--impl, --mode, --url, --warmup and --messages are required.');
  }
  return {
    impl: choiceOption(v.impl, 'impl', IMPLS),
    mode: choiceOption(v.mode, 'mode', MODES),
    url: v.url,
    warmup: intOption(v.warmup, 'warmup', 0),
    messages: intOption(v.messages, 'messages'),
    rate: positiveOption(v.rate, 'rate'),
    window: intOption(v.window, 'window'),
    batch: intOption(v.batch, 'batch'),
    block: intOption(v.block, 'block'),
    profile: v.profile,
  };
}

// ---- IPC protocol --------------------------------------------------------------------

export type PublisherCommand = { type: 'run'; phase: Phase };

export type PublisherEvent =
  | { type: 'ready' }
  | {
      type: 'sent';
      phase: Phase;
      count: number;
      /** epochMs just before the first publish and after the last one resolved. */
      startedAt: number;
      endedAt: number;
      /** CPU time (user + system) the phase took, in microseconds. */
      cpuMicros: number;
    };

/** `report`: send the result now, complete or not (the parent gave up waiting). */
export type ConsumerCommand = { type: 'report' };

export type ConsumerEvent =
  /** The group exists and the consumer is reading. */
  | { type: 'ready' }
  /** Every warm-up message was handled; the measured ones come next. */
  | { type: 'warm' }
  | {
      type: 'result';
      complete: boolean;
      /** Measured messages handled. */
      handled: number;
      /** epochMs when the handler finished the last measured message. */
      lastAt: number;
      /** CPU time from the last warm-up message to the last measured one, in microseconds. */
      cpuMicros: number;
      /** Latency runs: publish-to-handler latency in ms. */
      latency: Summary | undefined;
      /** Bus errors, dead letters and unexpected messages. */
      errors: number;
      firstError: string | undefined;
    };
