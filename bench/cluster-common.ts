// What the cluster benchmark's parent (bench/cluster.ts) and its workers share: the tickers
// (spread evenly over the 16384 hash slots), who publishes and who subscribes which, the
// price messages (the send time rides in `timestamp`, to the microsecond; `volume` is the
// ticker's sequence number), the worker options and the IPC protocol.
import { keySlot } from '../test/harness/redis-cluster.ts';
import { intOption, parseCli, type OptionSpec } from './lib/cli.ts';
import { microIso } from './gateway-common.ts';

export { makeMicroIsoReader, microIso } from './gateway-common.ts';

/** The channel of a ticker: TickerUpdates' name, so the slot is the one tickbus routes by. */
export function tickerChannel(ticker: string): string {
  return `TICKER_UPDATES_${ticker}`;
}

/** The stream holding the ticker's history (same slot as the channel: the hash tag is its name). */
export function historyKey(ticker: string): string {
  return `tickbus:{${tickerChannel(ticker)}}:stream`;
}

/** TickerUpdates' history bound (`history: { maxLen: 1_000 }`). */
export const HISTORY_MAX_LEN = 1_000;

const SLOTS = 16_384;

/**
 * `count` valid tickers (C1, C2, ... as found) whose channels' hash slots are spread evenly:
 * the i-th lies in the i-th of `count` equal stretches of the slot space, in slot order. So
 * any cluster whose shards hold contiguous ranges of slots (as redis-cli --cluster create
 * makes them) gets a share of tickers in proportion to its share of slots.
 */
export function spreadTickers(count: number): string[] {
  if (count > SLOTS) throw new Error(`At most ${SLOTS} tickers (one a slot), not ${count}.`);
  const picked = new Array<string | undefined>(count).fill(undefined);
  let missing = count;
  for (let k = 1; missing > 0; k++) {
    const name = `C${k}`;
    const stretch = Math.floor((keySlot(tickerChannel(name)) * count) / SLOTS);
    if (picked[stretch] === undefined) {
      picked[stretch] = name;
      missing--;
    }
  }
  return picked as string[];
}

/** The tickers worker `index` of `workers` takes: every `workers`-th, so each gets a share of every shard. */
export function shareOf<T>(items: readonly T[], index: number, workers: number): T[] {
  return items.filter((_, i) => i % workers === index);
}

/** A price update of the ticker; `volume` is its sequence number in the run (gaps and reordering show). */
export function priceUpdate(ticker: string, seq: number, now: number): { type: 'price'; timestamp: string; price: number; volume: number; symbol: string } {
  return { type: 'price', timestamp: microIso(now), price: 100 + (seq % 1000) / 100, volume: seq, symbol: ticker };
}

// ---- worker options ------------------------------------------------------------------

const WORKER_OPTIONS = {
  url: { type: 'string', value: 'url', description: 'The cluster: redis-cluster://host:port,...' },
  tickers: { type: 'string', value: 'list', description: 'This worker\'s tickers, comma-separated.' },
  window: { type: 'string', value: 'N', default: '512', description: 'Publisher, flood mode: publishes in flight at most.' },
} as const satisfies Record<string, OptionSpec>;

export interface WorkerConfig {
  url: string;
  tickers: string[];
  window: number;
}

export function workerArgs(c: WorkerConfig): string[] {
  return ['--url', c.url, '--tickers', c.tickers.join(','), '--window', String(c.window)];
}

export function parseWorkerConfig(role: 'publisher' | 'subscriber'): WorkerConfig {
  const v = parseCli(`node --import tsx bench/cluster-${role}.ts [options]`, `The ${role} worker of bench/cluster.ts (started by it).`, WORKER_OPTIONS);
  if (v.url === undefined || v.tickers === undefined) throw new Error('--url and --tickers are required.');
  return { url: v.url, tickers: v.tickers.split(','), window: intOption(v.window, 'window') };
}

// ---- IPC -----------------------------------------------------------------------------

/** A worker's counters at a moment (the ends of a measured window). */
export interface Marked {
  type: 'marked';
  /** epochMs of the reading. */
  at: number;
  /** Publisher: publishes acknowledged; subscriber: updates handed to its handlers. */
  count: number;
  /** process.cpuUsage() user + system since the process started, µs. */
  cpuMicros: number;
}

export type PublisherCommand =
  /** flood: as fast as the window allows; paced: `rate` a second (1 ms ticks). */
  | { type: 'start'; mode: 'flood' | 'paced'; rate: number }
  | { type: 'mark' }
  /** Stop publishing and wait for every publish in flight to be answered. */
  | { type: 'stop' };

export interface PublisherStopped {
  type: 'stopped';
  /** Publishes acknowledged so far in the run, per ticker (the worker's tickers, in order). */
  sent: number[];
  /** Publishes that failed. */
  errors: number;
  /** Publishes acknowledged with 0 receivers: SPUBLISH found no subscriber on the shard. */
  unheard: number;
  firstError: string | undefined;
}

export type PublisherEvent = { type: 'ready' } | Marked | PublisherStopped;

export type SubscriberCommand =
  | { type: 'mark' }
  /** Start or stop keeping each update's latency (send time in `timestamp` to the handler). */
  | { type: 'sample'; on: boolean }
  /** Wait (up to `waitMs`) until every ticker has `expected` updates, then report what is missing. */
  | { type: 'check'; expected: Record<string, number>; waitMs: number };

export interface SubscriberChecked {
  type: 'checked';
  /** Updates handed to the handlers so far in the run. */
  received: number;
  /** Expected updates that never arrived (per ticker: expected minus received, when positive). */
  missing: number;
  /** Updates beyond the expected (per ticker). */
  extra: number;
  /** Updates whose sequence number was not the one after the previous one of their ticker. */
  outOfOrder: number;
  /** Handler calls for updates replayed from history (a resume after a reconnection). */
  replayed: number;
  /** Bus errors (rejected messages, transport failures) and unexpected updates. */
  errors: number;
  firstError: string | undefined;
  /** Connection losses the bus reported. */
  disconnects: number;
}

export type SubscriberEvent =
  | { type: 'ready'; subscribeMs: number }
  | Marked
  /** The latencies kept since sampling was turned on, ms. */
  | { type: 'samples'; samples: Float64Array }
  | SubscriberChecked;
