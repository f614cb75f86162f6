// What the pub/sub benchmark's parent and workers share: the messages, the bench channels
// (the seed price schema, with and without a send time, with and without history) and the
// worker options. The modes, tickers and IPC protocol are every delivery benchmark's
// (lib/delivery.ts).
import { z } from 'zod';
import { PriceUpdateSchema, TICKER, defineCatalog, defineChannel, type StandardSchemaV1 } from './lib/tickbus.ts';
import type { OptionSpec } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { TICKERS, parseDeliveryWorker, type DeliveryWorkerConfig, type Mode } from './lib/delivery.ts';

/**
 * raw: node-redis; tickbus: a channel without history (like for like with raw);
 * tickbus-history: the same channel with a bounded history, as TickerUpdates has;
 * tickbus-traced: tickbus with an OpenTelemetry SDK registered in both processes (a span per
 * publish and per handling, the trace context in each envelope).
 */
export const IMPLS = ['raw', 'tickbus', 'tickbus-history', 'tickbus-traced'] as const;
export type Impl = (typeof IMPLS)[number];

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

/** A ticker channel BENCH_<kind>_{ticker} without history, and its twin BENCH_<kind>_HISTORY_{ticker} with one. */
function channelPair<const K extends string, S extends StandardSchemaV1>(kind: K, schema: S, description: string) {
  const params = { ticker: TICKER };
  return {
    plain: defineChannel({ name: `BENCH_${kind}_{ticker}`, schema, params, description: `${description}.` }),
    history: defineChannel({
      name: `BENCH_${kind}_HISTORY_{ticker}`,
      schema,
      params,
      history: { maxLen: HISTORY_MAX_LEN },
      description: `${description}, with a history.`,
    }),
  };
}

/** Throughput runs: the seed price schema. */
const PRICES = channelPair('PRICES', PriceUpdateSchema, 'Benchmark price updates');
/** Latency runs: the seed price schema plus `sent_at`. */
const TIMED = channelPair('TICKER', PriceUpdateSchema.extend({ sent_at: z.number() }), 'Benchmark price updates carrying their send time');

export const benchCatalog = defineCatalog('bench', 'Benchmark channels.', { BenchPrices: PRICES.plain, BenchPricesHistory: PRICES.history, BenchTicker: TIMED.plain, BenchTickerHistory: TIMED.history });

/** The catalogs the tickbus workers use. */
export const BENCH_CATALOGS = [benchCatalog] as const;

/** The raw workers' channel names: the same strings tickbus builds for its channels without history. */
export function rawChannel(mode: Mode, ticker: string): string {
  return mode === 'throughput' ? `BENCH_PRICES_${ticker}` : `BENCH_TICKER_${ticker}`;
}

/** The tickbus channels of an implementation: for throughput runs and for latency runs. */
export function tickbusChannels(impl: Exclude<Impl, 'raw'>): { prices: (typeof PRICES)[keyof typeof PRICES]; timed: (typeof TIMED)[keyof typeof TIMED] } {
  const side = impl === 'tickbus-history' ? 'history' : 'plain';
  return { prices: PRICES[side], timed: TIMED[side] };
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
  impl: { type: 'string', description: 'raw (node-redis), tickbus, tickbus-history or tickbus-traced.', value: 'impl' },
  mode: { type: 'string', description: 'throughput or latency.', value: 'mode' },
  url: { type: 'string', description: 'Redis URL.', value: 'url' },
  warmup: { type: 'string', description: 'Unmeasured messages before the measured ones.', value: 'N' },
  messages: { type: 'string', description: 'Measured messages.', value: 'N' },
  rate: { type: 'string', description: 'Latency runs: messages per second.', value: 'R', default: '10000' },
  window: { type: 'string', description: 'Publishes in flight at most.', value: 'N', default: '512' },
  profile: { type: 'string', description: 'Write a CPU profile of the measured phase to this file.', value: 'file' },
} as const satisfies Record<string, OptionSpec>;

export type WorkerConfig = DeliveryWorkerConfig<Impl>;

export function parseWorkerConfig(role: string): WorkerConfig {
  return parseDeliveryWorker('pubsub', role, WORKER_OPTIONS, IMPLS).config;
}
