// What the TickStock benchmark's parent (bench/tickstock.ts) and its workers share: the
// symbols, each user's seeded preferences (which symbols a filtered client or an alert user
// wants), the fan-out variants, the latency samples and the IPC protocol of the pipeline
// (broker + pattern library), gateway, client and publisher workers.
import { mulberry32 } from '../src/core/random.ts';

export { symbolNames } from './gateway-common.ts';

/** The channel the stream clients subscribe to, filtered by their symbols. */
export const PATTERN_CHANNEL = 'tickstock:patterns:streaming';

/**
 * Fan-out variants, 1,000 users on one gateway at the same message rate:
 * - filtered: `tickstock:patterns:streaming` with `filter.symbols` (1 to 10 of the symbols);
 * - unfiltered: the same channel with no filter (every message to every user);
 * - rooms: the ticker rooms of the same symbols (`TICKER_UPDATES_{symbol}`), the plain
 *   symbol room: as many deliveries as filtered, one Redis subscription per symbol.
 */
export const VARIANTS = ['filtered', 'unfiltered', 'rooms'] as const;
export type Variant = (typeof VARIANTS)[number];

/** Patterns an alert user may pick (a user picks none: all). */
const ALERT_PATTERNS = ['Doji', 'Bullish Engulfing', 'Bearish Engulfing', 'Hammer', 'Shooting Star'];
const MIN_CONFIDENCE = [0, 0, 0.5, 0.7];

export interface Preferences {
  /** 1 to 10 distinct symbols, by index. */
  symbols: number[];
  /** For alert users: pattern names (empty: all) and the minimum confidence (a fraction). */
  patterns: string[];
  minConfidence: number;
}

/** User `index`'s preferences, the same in every process for a seed: 1 to 10 random symbols of `symbolCount`. */
export function preferencesOf(index: number, symbolCount: number, seed: number): Preferences {
  const random = mulberry32((seed * 7919) ^ (index + 1));
  const want = 1 + Math.floor(random() * 10);
  const picked = new Set<number>();
  while (picked.size < Math.min(want, symbolCount)) picked.add(Math.floor(random() * symbolCount));
  const patterns = random() < 0.5 ? [] : ALERT_PATTERNS.filter(() => random() < 0.5);
  return { symbols: [...picked].sort((a, b) => a - b), patterns, minConfidence: MIN_CONFIDENCE[Math.floor(random() * MIN_CONFIDENCE.length)] ?? 0 };
}

/** How many of `users` users want each symbol (by index). */
export function wantersPerSymbol(users: number, symbolCount: number, seed: number, first = 0): number[] {
  const counts = new Array<number>(symbolCount).fill(0);
  for (let i = first; i < first + users; i++) for (const s of preferencesOf(i, symbolCount, seed).symbols) counts[s]! += 1;
  return counts;
}

/** The key of a bar's closing tick: symbol index and bar end (epoch ms). */
export const closeKey = (symbol: number, barEndMs: number): string => `${symbol}|${barEndMs}`;

/** Latency samples as a client worker sends them: one entry per message received. */
export interface Samples {
  /** The symbol's index. */
  symbol: Int32Array;
  /** The bar's end (detected_at / timestamp of the message), epoch ms. */
  barEnd: Float64Array;
  /** Receive time on the client's clock (comparable across processes), epoch ms. */
  received: Float64Array;
}

// ---- IPC -----------------------------------------------------------------------------

/** `mark`: CPU time now (the window's ends). */
export type GatewayCommand = { type: 'mark' };
export type GatewayEvent = { type: 'ready'; port: number } | { type: 'marked'; at: number; cpuMicros: number; connections: number; rss: number };

export type PipelineCommand = { type: 'begin' } | { type: 'end' };
export type PipelineEvent =
  | { type: 'ready'; tickers: number }
  | { type: 'begun' }
  | {
      type: 'result';
      /** Ticks the feed handed to the broker in the window. */
      ticks: number;
      /** Bars closed in the window, by a tick and by the flush timer (no tick closed them in time). */
      barsClosed: number;
      barsClosedByFlush: number;
      /** Patterns detected (tickstock:patterns:streaming messages) in the window, by name. */
      patterns: Record<string, number>;
      /** Of each of those, ms from its bar's closing tick to the pattern message back from Redis (the pipeline's own subscription). */
      published: Float64Array;
      /** Every bar's closing tick in and around the window: closeKey → the tick's feed timestamp (epoch ms). */
      closingTicks: Map<string, number>;
      /** Broker and pattern library: process CPU over the window, µs. */
      cpuMicros: number;
      windowMs: number;
    };

export type ClientsCommand = { type: 'begin' } | { type: 'end' };
export type ClientsEvent =
  | { type: 'ready'; connected: number; connectMs: number }
  | { type: 'begun' }
  | {
      type: 'result';
      /** Messages received in the window: channel updates (stream or fan-out) and inbox entries. */
      deliveries: number;
      inboxDeliveries: number;
      frames: number;
      windowMs: number;
      disconnects: number;
      errors: number;
      firstError: string | undefined;
      /** Latency mode only: the pattern messages of the stream clients, and the inbox entries. */
      stream: Samples;
      inbox: Samples;
    };

/** The fan-out publisher's messages (bench/lib/paced-publisher.ts). */
export type { PacedCommand as PublisherCommand, PacedEvent as PublisherEvent } from './lib/paced-publisher.ts';
