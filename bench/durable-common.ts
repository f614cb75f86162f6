// What the durable-channel benchmark's parent and workers share: the bench channel (a
// durable stream of price messages), the stream key and consumer group, the messages and
// the worker options. The modes, tickers and IPC protocol are every delivery benchmark's
// (lib/delivery.ts).
import { z } from 'zod';
import { defineCatalog, defineChannel, streamKey } from './lib/tickbus.ts';
import { intOption, type OptionSpec } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { TICKERS, parseDeliveryWorker, type DeliveryWorkerConfig } from './lib/delivery.ts';

export const IMPLS = ['raw', 'tickbus'] as const;
export type Impl = (typeof IMPLS)[number];

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

export interface WorkerConfig extends DeliveryWorkerConfig<Impl> {
  batch: number;
  block: number;
}

export function parseWorkerConfig(role: string): WorkerConfig {
  const { config, values } = parseDeliveryWorker('durable', role, WORKER_OPTIONS, IMPLS);
  return { ...config, batch: intOption(values.batch, 'batch'), block: intOption(values.block, 'block') };
}
