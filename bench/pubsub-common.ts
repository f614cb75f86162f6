// What the pub/sub benchmark's parent and workers share: the tickers and messages, the
// bench channels (the seed price schema, with and without a send time, with and without
// history), the worker options and the IPC protocol.
import { z } from 'zod';
import { PriceUpdateSchema, TICKER, defineCatalog, defineChannel } from '../src/index.ts';
import { choiceOption, intOption, parseCli, positiveOption, type OptionSpec } from './lib/cli.ts';
import type { Summary } from './lib/stats.ts';

/**
 * raw: node-redis; tickbus: a channel without history (like for like with raw);
 * tickbus-history: the same channel with a bounded history, as TickerUpdates has.
 */
export const IMPLS = ['raw', 'tickbus', 'tickbus-history'] as const;
export type Impl = (typeof IMPLS)[number];

/** throughput: as fast as the window allows; latency: paced at a fixed rate. */
export const MODES = ['throughput', 'latency'] as const;
export type Mode = (typeof MODES)[number];

/** Unmeasured messages first (JIT, connections, buffers), then the measured ones. */
export type Phase = 'warmup' | 'measure';

export const TICKERS = ['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'BRK.B', 'JPM', 'V'] as const;

/** A seed-style price update (seed 001), as the broker publishes it. */
export interface PriceMessage {
  type: 'price';
  timestamp: string;
  price: number;
  volume: number;
  symbol: string;
  /** Latency runs only: when the publisher made the message, in epoch ms (see epochMs). */
  sent_at?: number;
}

/** The history bound of the tickbus-history channels: what TickerUpdates keeps per ticker. */
export const HISTORY_MAX_LEN = 1_000;

// The bench defines its own channels rather than publishing on TickerUpdates: that one
// keeps a history, which raw node-redis does not pay for, and its schema strips `sent_at`.
// Each pair differs only in history, so tickbus-history against tickbus is its cost.

/** Throughput runs: the seed price schema, no history. */
export const BenchPrices = defineChannel({
  name: 'BENCH_PRICES_{ticker}',
  schema: PriceUpdateSchema,
  params: { ticker: TICKER },
  description: 'Benchmark price updates.',
});

/** Throughput runs with history. */
export const BenchPricesHistory = defineChannel({
  name: 'BENCH_PRICES_HISTORY_{ticker}',
  schema: PriceUpdateSchema,
  params: { ticker: TICKER },
  history: { maxLen: HISTORY_MAX_LEN },
  description: 'Benchmark price updates, with a history.',
});

const TimedPriceSchema = PriceUpdateSchema.extend({ sent_at: z.number() });

/** Latency runs: the seed price schema plus `sent_at`, no history. */
export const BenchTicker = defineChannel({
  name: 'BENCH_TICKER_{ticker}',
  schema: TimedPriceSchema,
  params: { ticker: TICKER },
  description: 'Benchmark price updates carrying their send time.',
});

/** Latency runs with history. */
export const BenchTickerHistory = defineChannel({
  name: 'BENCH_TICKER_HISTORY_{ticker}',
  schema: TimedPriceSchema,
  params: { ticker: TICKER },
  history: { maxLen: HISTORY_MAX_LEN },
  description: 'Benchmark price updates carrying their send time, with a history.',
});

export const benchCatalog = defineCatalog('bench', 'Benchmark channels.', { BenchPrices, BenchPricesHistory, BenchTicker, BenchTickerHistory });

/** The catalogs the tickbus workers use. */
export const BENCH_CATALOGS = [benchCatalog] as const;

/** The raw workers' channel names: the same strings tickbus builds for its channels without history. */
export function rawChannel(mode: Mode, ticker: string): string {
  return mode === 'throughput' ? `BENCH_PRICES_${ticker}` : `BENCH_TICKER_${ticker}`;
}

/** The tickbus channels of an implementation: for throughput runs and for latency runs. */
export function tickbusChannels(impl: Exclude<Impl, 'raw'>): { prices: typeof BenchPrices | typeof BenchPricesHistory; timed: typeof BenchTicker | typeof BenchTickerHistory } {
  return impl === 'tickbus-history' ? { prices: BenchPricesHistory, timed: BenchTickerHistory } : { prices: BenchPrices, timed: BenchTicker };
}

/**
 * Wall-clock time in milliseconds with sub-millisecond resolution. Comparable across
 * processes on one machine: each process's timeOrigin is read from the same clock.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The i-th message of a run: tickers in turn, a price walking a little. */
export function priceMessage(i: number): PriceMessage {
  return {
    type: 'price',
    timestamp: new Date().toISOString(),
    price: 100 + (i % 1000) / 100,
    volume: 100 + (i % 50),
    symbol: TICKERS[i % TICKERS.length] as string,
  };
}

/** A price message stamped with its send time (latency runs). */
export function timedPriceMessage(i: number): PriceMessage & { sent_at: number } {
  const m = priceMessage(i) as PriceMessage & { sent_at: number };
  m.sent_at = epochMs();
  return m;
}

// ---- worker options ------------------------------------------------------------------

export const WORKER_OPTIONS = {
  impl: { type: 'string', description: 'raw (node-redis), tickbus or tickbus-history.', value: 'impl' },
  mode: { type: 'string', description: 'throughput or latency.', value: 'mode' },
  url: { type: 'string', description: 'Redis URL.', value: 'url' },
  warmup: { type: 'string', description: 'Unmeasured messages before the measured ones.', value: 'N' },
  messages: { type: 'string', description: 'Measured messages.', value: 'N' },
  rate: { type: 'string', description: 'Latency runs: messages per second.', value: 'R', default: '10000' },
  window: { type: 'string', description: 'Publishes in flight at most.', value: 'N', default: '512' },
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
  /** Where to write a CPU profile of the measured phase, if anywhere. */
  profile: string | undefined;
}

export function workerArgs(c: WorkerConfig): string[] {
  return ['--impl', c.impl, '--mode', c.mode, '--url', c.url, '--warmup', String(c.warmup), '--messages', String(c.messages), '--rate', String(c.rate), '--window', String(c.window), ...(c.profile ? ['--profile', c.profile] : [])];
}

export function parseWorkerConfig(role: string): WorkerConfig {
  const v = parseCli(`node --import tsx bench/pubsub-${role}.ts [options]`, `The ${role} worker of bench/pubsub.ts (started by it).`, WORKER_OPTIONS);
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
export type SubscriberCommand = { type: 'report' };

export type SubscriberEvent =
  | { type: 'ready' }
  /** Every warm-up message arrived; the measured ones come next. */
  | { type: 'warm' }
  | {
      type: 'result';
      complete: boolean;
      /** Measured messages received. */
      received: number;
      /** epochMs when the last measured message reached the handler. */
      lastAt: number;
      /** CPU time from the last warm-up message to the last measured one, in microseconds. */
      cpuMicros: number;
      /** Latency runs: publish-to-handler latency in ms. */
      latency: Summary | undefined;
      /** Bus errors and unexpected messages. */
      errors: number;
      firstError: string | undefined;
    };
