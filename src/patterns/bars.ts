// OHLCV bars from ticks, per symbol and timeframe (seed 002's "OHLCV Aggregation" in
// TickStockPL). Pure: time is the ticks' own timestamps, never a clock, so a replay gives
// the same bars as the live run. Buckets are aligned to the epoch (a 60 s bar starts on a
// whole UTC minute) and a bucket with no tick makes no bar.
import { TICKER } from '../core/channel-param.ts';

/** Seed 002's bare tick (`tickstock:market:ticks`). `timestamp`: Unix seconds (Python's time.time()) or an ISO-8601 string, as the catalog allows. */
export interface Tick {
  symbol: string;
  price: number;
  volume: number;
  timestamp: number | string;
}

/** What a detector needs of a bar. */
export interface Candle {
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface Bar extends Candle {
  symbol: string;
  /** Seconds. */
  timeframe: number;
  /** The bucket, epoch milliseconds: [start, end). */
  start: number;
  end: number;
  /** How many ticks went into the bar. */
  ticks: number;
}

/** Why a tick was not merged. `late`: older than the bar open for its series (or than one already closed). */
export type TickRejection = 'invalid_symbol' | 'invalid_price' | 'invalid_volume' | 'invalid_timestamp' | 'late' | 'symbols_full';

export interface TickOutcome {
  /** Bars this tick closed (its series moved to a later bucket), oldest first. */
  closed: Bar[];
  /** Set when the tick was merged into no bar at all. */
  rejected?: TickRejection;
  /** Timeframes for which the tick came too late (counted, not merged); it may still have been merged into the others. */
  lateFor: number[];
}

export interface BarAggregatorOptions {
  /** Bar lengths in whole seconds, e.g. [5, 60]. */
  timeframes: readonly number[];
  /**
   * Symbols held at once. A new symbol past the limit takes the place of the oldest one with
   * no bar open (losing only its lateness guard); if every symbol has a bar open it is refused.
   * @default 10_000
   */
  maxSymbols?: number;
}

export interface BarStats {
  accepted: number;
  rejected: Record<TickRejection, number>;
  /** Ticks late for one timeframe but merged into another are counted here and in `accepted`. */
  lateMerges: number;
  symbols: number;
  barsClosed: number;
}

/** Numbers above this are not seconds (year 5138): a timestamp in milliseconds sent as seconds, refused. */
const MAX_UNIX_SECONDS = 1e11;

/** Epoch milliseconds of a tick's timestamp, or undefined when it is not a time. */
export function tickTimeMs(timestamp: unknown): number | undefined {
  if (typeof timestamp === 'number') {
    return Number.isFinite(timestamp) && timestamp >= 0 && timestamp < MAX_UNIX_SECONDS ? Math.round(timestamp * 1000) : undefined;
  }
  if (typeof timestamp === 'string' && timestamp.length <= 64) {
    const ms = Date.parse(timestamp);
    return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
  }
  return undefined;
}

/** A timeframe as TickStock names it: 5 → "5s", 60 → "1min", 3600 → "1h", 86400 → "1d". */
export function timeframeLabel(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3_600 === 0) return `${seconds / 3_600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}min`;
  return `${seconds}s`;
}

interface Open {
  bar: Bar;
  /** Times of the ticks that set open and close, so a tick out of order within its bucket cannot move them wrongly. */
  openAt: number;
  closeAt: number;
}

interface Series {
  open: Open | undefined;
  /** End of the last bar closed: a tick before it is late. */
  closedUntil: number;
}

type SymbolState = Map<number, Series>;

function refusal(symbol: unknown, price: unknown, volume: unknown, at: number | undefined): TickRejection | undefined {
  if (typeof symbol !== 'string' || !TICKER.allow.test(symbol)) return 'invalid_symbol';
  // A price of zero passes the catalog, but no listed instrument trades at 0: a feed fault.
  if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) return 'invalid_price';
  if (typeof volume !== 'number' || !Number.isFinite(volume) || volume < 0) return 'invalid_volume';
  if (at === undefined) return 'invalid_timestamp';
  return undefined;
}

export class BarAggregator {
  readonly timeframes: readonly number[];
  readonly #maxSymbols: number;
  readonly #symbols = new Map<string, SymbolState>();
  #accepted = 0;
  #lateMerges = 0;
  #barsClosed = 0;
  readonly #rejected: Record<TickRejection, number> = { invalid_symbol: 0, invalid_price: 0, invalid_volume: 0, invalid_timestamp: 0, late: 0, symbols_full: 0 };

  constructor(options: BarAggregatorOptions) {
    const frames = [...new Set(options.timeframes)].sort((a, b) => a - b);
    if (frames.length === 0 || frames.some((s) => !Number.isInteger(s) || s <= 0)) {
      throw new RangeError(`timeframes must be whole seconds above 0, got [${options.timeframes.join(', ')}]`);
    }
    const max = options.maxSymbols ?? 10_000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxSymbols must be a whole number above 0, got ${max}`);
    this.timeframes = frames;
    this.#maxSymbols = max;
  }

  /** Merges one tick; returns the bars it closed. Malformed input is refused and counted, never thrown. */
  onTick(tick: Tick): TickOutcome {
    const at = tickTimeMs(tick.timestamp);
    const bad = refusal(tick.symbol, tick.price, tick.volume, at);
    if (bad !== undefined || at === undefined) return this.#refuse(bad ?? 'invalid_timestamp');
    const state = this.#stateOf(tick.symbol);
    if (state === undefined) return this.#refuse('symbols_full');
    const closed: Bar[] = [];
    const lateFor: number[] = [];
    for (const tf of this.timeframes) {
      const series = state.get(tf) ?? { open: undefined, closedUntil: 0 };
      state.set(tf, series);
      if (!this.#merge(tick, at, tf, series, closed)) lateFor.push(tf);
    }
    if (lateFor.length === this.timeframes.length) {
      this.#rejected.late += 1;
      return { closed, rejected: 'late', lateFor };
    }
    this.#accepted += 1;
    if (lateFor.length > 0) this.#lateMerges += 1;
    return { closed, lateFor };
  }

  /** Each tick in turn; the closed bars of all of them, in order. */
  onTicks(ticks: Iterable<Tick>): Bar[] {
    const closed: Bar[] = [];
    for (const tick of ticks) closed.push(...this.onTick(tick).closed);
    return closed;
  }

  /** Closes every bar whose bucket ended at or before `nowMs` (no tick came to close it). */
  flush(nowMs: number): Bar[] {
    const closed: Bar[] = [];
    for (const state of this.#symbols.values()) {
      for (const series of state.values()) {
        if (series.open !== undefined && series.open.bar.end <= nowMs) closed.push(this.#close(series));
      }
    }
    return closed.sort((a, b) => a.end - b.end || a.timeframe - b.timeframe || (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
  }

  /** The bar still open for a series, if any (a copy). */
  openBar(symbol: string, timeframe: number): Bar | undefined {
    const open = this.#symbols.get(symbol)?.get(timeframe)?.open;
    return open === undefined ? undefined : { ...open.bar };
  }

  stats(): BarStats {
    return { accepted: this.#accepted, rejected: { ...this.#rejected }, lateMerges: this.#lateMerges, symbols: this.#symbols.size, barsClosed: this.#barsClosed };
  }

  #refuse(reason: TickRejection): TickOutcome {
    this.#rejected[reason] += 1;
    return { closed: [], rejected: reason, lateFor: [] };
  }

  /** Merges into one series; false when the tick is late for it. */
  #merge(tick: Tick, at: number, tf: number, series: Series, closed: Bar[]): boolean {
    const length = tf * 1000;
    const start = Math.floor(at / length) * length;
    if (at < series.closedUntil) return false;
    const open = series.open;
    if (open !== undefined && start < open.bar.start) return false;
    if (open !== undefined && start > open.bar.start) closed.push(this.#close(series));
    const current = series.open;
    if (current === undefined) {
      series.open = {
        bar: { symbol: tick.symbol, timeframe: tf, start, end: start + length, open: tick.price, high: tick.price, low: tick.price, close: tick.price, volume: tick.volume, ticks: 1 },
        openAt: at,
        closeAt: at,
      };
      return true;
    }
    const bar = current.bar;
    if (tick.price > bar.high) bar.high = tick.price;
    if (tick.price < bar.low) bar.low = tick.price;
    bar.volume += tick.volume;
    bar.ticks += 1;
    if (at < current.openAt) {
      current.openAt = at;
      bar.open = tick.price;
    }
    if (at >= current.closeAt) {
      current.closeAt = at;
      bar.close = tick.price;
    }
    return true;
  }

  #close(series: Series): Bar {
    const bar = (series.open as Open).bar;
    series.open = undefined;
    series.closedUntil = bar.end;
    this.#barsClosed += 1;
    return bar;
  }

  #stateOf(symbol: string): SymbolState | undefined {
    const known = this.#symbols.get(symbol);
    if (known !== undefined) return known;
    if (this.#symbols.size >= this.#maxSymbols && !this.#evictIdle()) return undefined;
    const state: SymbolState = new Map();
    this.#symbols.set(symbol, state);
    return state;
  }

  /** Drops the oldest symbol with no bar open; false when there is none. */
  #evictIdle(): boolean {
    for (const [symbol, state] of this.#symbols) {
      if ([...state.values()].every((s) => s.open === undefined)) {
        this.#symbols.delete(symbol);
        return true;
      }
    }
    return false;
  }
}
