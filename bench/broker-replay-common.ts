// What the broker replay benchmark's parent and worker share: the tickers, the replay
// file (Alpaca trade messages, one a line), the worker options and the IPC protocol.
import { closeSync, openSync, writeSync } from 'node:fs';
import { choiceOption, intOption, parseCli, type OptionSpec } from './lib/cli.ts';
// The same seeded generator as the simulated market, so every run replays the same trades.
import { mulberry32 } from '../src/broker/feeds/random.ts';

/**
 * raw: node-redis publishing what the broker would (PUBLISH only); raw-history: node-redis
 * doing the Redis work the broker does (a history entry and a PUBLISH with its position per
 * update, in one script per batch); broker: the broker runtime itself.
 */
export const IMPLS = ['raw', 'raw-history', 'broker'] as const;
export type Impl = (typeof IMPLS)[number];

/** raw-history: entries kept per ticker (MAXLEN ~), as `history: { maxLen: 1_000 }` on the broker's ticker channel. */
export const HISTORY_MAX_LEN = 1_000;
/** raw-history: updates per script call, as the broker's transport batches them. */
export const HISTORY_BATCH = 256;

/** The stream holding a channel's history: the key tickbus uses, so both write the same keys. */
export function historyKey(channel: string): string {
  return `tickbus:{${channel}}:stream`;
}

/** The broker's sender, and so the envelope's `sender` in both implementations. */
export const SENDER = 'broker_service';

const KNOWN_TICKERS = [
  'AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'BRK.B', 'JPM', 'V',
  'UNH', 'XOM', 'JNJ', 'WMT', 'MA', 'PG', 'AVGO', 'HD', 'CVX', 'LLY',
  'MRK', 'ABBV', 'KO', 'PEP', 'COST', 'ADBE', 'CRM', 'NFLX', 'AMD', 'INTC',
] as const;

/** `count` distinct valid tickers: well-known ones first, then T31, T32, ... */
export function benchTickers(count: number): string[] {
  const out: string[] = KNOWN_TICKERS.slice(0, count);
  for (let i = out.length + 1; out.length < count; i++) out.push(`T${i}`);
  return out;
}

/** Alpaca's RFC 3339 time with nanoseconds, e.g. 2025-04-24T13:30:00.000137000Z. */
function alpacaTime(epochNs: bigint): string {
  const ms = Number(epochNs / 1_000_000n);
  const subMs = Number(epochNs % 1_000_000n);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(subMs).padStart(6, '0')}Z`;
}

/**
 * Writes `trades` Alpaca trade messages, one JSON object a line, exactly as Alpaca's
 * stream sends them: the tickers in turn, a random walk of prices, times increasing by
 * 137 µs from `startIso`. Returns the file's size in bytes.
 */
export function writeReplayFile(file: string, trades: number, tickers: readonly string[], seed: number, startIso = '2025-04-24T13:30:00.000Z'): number {
  const rnd = mulberry32(seed);
  const prices = tickers.map(() => 20 + Math.floor(rnd() * 480));
  let ns = BigInt(Date.parse(startIso)) * 1_000_000n;
  const fd = openSync(file, 'w');
  let bytes = 0;
  try {
    let chunk: string[] = [];
    for (let i = 0; i < trades; i++) {
      const k = i % tickers.length;
      const price = Math.max(0.01, (prices[k] as number) * (1 + (rnd() - 0.5) * 0.002));
      prices[k] = price;
      ns += 137_000n;
      const trade = {
        T: 't',
        S: tickers[k] as string,
        i: 1000 + i,
        x: 'V',
        p: Math.round(price * 100) / 100,
        s: 1 + Math.floor(rnd() * 500),
        c: ['@'],
        z: 'C',
        t: alpacaTime(ns),
      };
      chunk.push(JSON.stringify(trade));
      if (chunk.length === 10_000 || i === trades - 1) {
        const text = `${chunk.join('\n')}\n`;
        bytes += writeSync(fd, text);
        chunk = [];
      }
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

// ---- worker options ------------------------------------------------------------------

export const WORKER_OPTIONS = {
  impl: { type: 'string', description: 'raw, raw-history or broker.', value: 'impl' },
  url: { type: 'string', description: 'Redis URL.', value: 'url' },
  file: { type: 'string', description: 'The measured replay file.', value: 'file' },
  'warmup-file': { type: 'string', description: 'An unmeasured replay file run first (the broker registers its tickers during it).', value: 'file' },
  trades: { type: 'string', description: 'Trades in the measured file (all of them must be published).', value: 'N' },
  tickers: { type: 'string', description: 'The tickers, comma-separated.', value: 'list' },
  window: { type: 'string', description: 'raw and raw-history: updates in flight at most.', value: 'N', default: '512' },
  profile: { type: 'string', description: 'Write a CPU profile of the measured replay to this file.', value: 'file' },
} as const satisfies Record<string, OptionSpec>;

export interface WorkerConfig {
  impl: Impl;
  url: string;
  file: string;
  warmupFile: string;
  trades: number;
  tickers: string[];
  window: number;
  profile: string | undefined;
}

export function workerArgs(c: WorkerConfig): string[] {
  return [
    '--impl', c.impl,
    '--url', c.url,
    '--file', c.file,
    '--warmup-file', c.warmupFile,
    '--trades', String(c.trades),
    '--tickers', c.tickers.join(','),
    '--window', String(c.window),
    ...(c.profile ? ['--profile', c.profile] : []),
  ];
}

export function parseWorkerConfig(): WorkerConfig {
  const v = parseCli('node --import tsx bench/broker-replay-worker.ts [options]', 'The worker of bench/broker-replay.ts (started by it).', WORKER_OPTIONS);
  if (v.impl === undefined || v.url === undefined || v.file === undefined || v['warmup-file'] === undefined || v.trades === undefined || v.tickers === undefined) {
    throw new Error('--impl, --url, --file, --warmup-file, --trades and --tickers are required.');
  }
  return {
    impl: choiceOption(v.impl, 'impl', IMPLS),
    url: v.url,
    file: v.file,
    warmupFile: v['warmup-file'],
    trades: intOption(v.trades, 'trades'),
    tickers: v.tickers.split(','),
    window: intOption(v.window, 'window'),
    profile: v.profile,
  };
}

// ---- IPC protocol --------------------------------------------------------------------

export type WorkerCommand = { type: 'run' };

export type WorkerEvent =
  /** Connected and warmed up (the broker: tickers registered); waiting for `run`. */
  | { type: 'ready'; warmupPublished: number }
  | {
      type: 'result';
      /** Updates published in the measured replay (must equal the trades in the file). */
      published: number;
      /** epochMs when the replay started reading the file, and when the last publish was acknowledged. */
      startedAt: number;
      endedAt: number;
      /** CPU time (user + system) of the worker over that span, microseconds. */
      cpuMicros: number;
      /** broker: publish round trips (batches) the bus made, when known. */
      batches: number | undefined;
    };
