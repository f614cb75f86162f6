// Historical bars for a backtest job: from a replay file (the broker's replay format, bars
// made of its trades), or else from the simulated market's seeded history, so a backtest
// needs no market-data vendor. Pure but for reading the file; no clock.
//
// The simulated history is deterministic: the same seed, symbol and dates give the same bars,
// whatever else the job asks for. Per symbol:
// - a day's opening price follows a slow mean-reverting walk, one step per weekday since
//   1970-01-01, drawn from mulberry32(seed ^ hashString(symbol)), the sim feed's own stream
//   (its first draw is the sim feed's starting price, which is where the walk reverts to);
// - within a day, one session of 1-minute bars, 09:30–16:00 New York time taken as
//   14:30–21:00 UTC all year (390 bars; no daylight saving, no holidays), drawn from
//   mulberry32(seed ^ hashString(`${symbol}|${date}`)), so a day does not depend on the
//   days around it.
// A long range would be slow to backtest minute by minute, so the bars are coarsened: the
// interval is the smallest of 1, 5, 15, 30, 65, 130 and 390 minutes (each divides the
// session) at which no symbol has more than maxBarsPerSymbol bars; each coarse bar is the
// aggregate of its 1-minute bars. A range that needs more bars even at one bar a session
// (about 96 years at the default cap) is refused. Replayed bars are coarsened the same way
// (intervals aligned to the epoch: 1, 5, 15, 30, 60, 240 minutes, one day).
import { readFileSync } from 'node:fs';
import { ConfigError, ValidationError } from '../core/errors.ts';
import { gaussian, hashString, mulberry32 } from '../core/random.ts';
import { tradeLineParser, type TradeLineParser } from '../core/trade-file.ts';
import { BarAggregator } from '../patterns/bars.ts';
import type { HistoricalBar } from '../patterns/backtest.ts';

export const HISTORY_DEFAULTS = Object.freeze({
  /** The sim feed's default seed (SimFeedOptions.seed). */
  seed: 42,
  /** Bars per symbol at most; the interval grows until a range fits. */
  maxBarsPerSymbol: 25_000,
  /** The session, in minutes after 00:00 UTC, and its length. */
  sessionOpenUtcMinutes: 14 * 60 + 30,
  sessionMinutes: 390,
  simIntervalsMinutes: Object.freeze([1, 5, 15, 30, 65, 130, 390]),
  replayIntervalsMinutes: Object.freeze([1, 5, 15, 30, 60, 240, 1440]),
  /** Volatility of the log price per minute (about 2 % a session). */
  minuteVolatility: 0.001,
  /** The daily walk: volatility of the log open, and how fast it reverts to the start price. */
  dailyVolatility: 0.02,
  dailyReversion: 0.01,
});

export interface History {
  bars: Record<string, HistoricalBar[]>;
  /** The bars' length in seconds. */
  timeframe: number;
  /** What the result says about where the bars came from. */
  source: Record<string, unknown>;
}

export interface HistoryRequest {
  symbols: readonly string[];
  start_date: string;
  end_date: string;
}

const DAY = 86_400_000;
const MINUTE = 60_000;
const cents = (x: number): number => Math.max(0.01, Math.round(x * 100) / 100);

function dayRange(job: HistoryRequest): { from: number; to: number } {
  const from = Date.parse(`${job.start_date}T00:00:00Z`);
  const to = Date.parse(`${job.end_date}T00:00:00Z`);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to < from) throw new ValidationError(`Invalid date range ${job.start_date} to ${job.end_date}`, [{ path: 'end_date', message: 'must be on or after start_date' }]);
  return { from, to };
}

const isWeekday = (dayMs: number): boolean => {
  const d = new Date(dayMs).getUTCDay();
  return d !== 0 && d !== 6;
};

/** The weekdays in [from, to] (UTC midnights), from 1970 on. */
function weekdays(from: number, to: number): number[] {
  const days: number[] = [];
  for (let d = Math.max(0, from); d <= to; d += DAY) if (isWeekday(d)) days.push(d);
  return days;
}

/** Merges consecutive bars into buckets of `minutes`, measured from `origin(bar)`. */
function coarsen(bars: readonly HistoricalBar[], minutes: number, origin: (start: number) => number): HistoricalBar[] {
  if (minutes === 1) return bars.slice();
  const out: HistoricalBar[] = [];
  let bucket = Number.NaN;
  for (const b of bars) {
    const base = origin(b.start);
    const start = base + Math.floor((b.start - base) / (minutes * MINUTE)) * minutes * MINUTE;
    const last = out[out.length - 1];
    if (last !== undefined && start === bucket) {
      last.high = Math.max(last.high, b.high);
      last.low = Math.min(last.low, b.low);
      last.close = b.close;
      last.volume += b.volume;
    } else {
      bucket = start;
      out.push({ start, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume });
    }
  }
  return out;
}

function pickInterval(barsAtOneMinute: number, intervals: readonly number[], perBucket: (minutes: number) => number, max: number, what: string): number {
  for (const minutes of intervals) if (Math.ceil(barsAtOneMinute / perBucket(minutes)) <= max) return minutes;
  throw new ValidationError(`${what} is too long to backtest: more than ${max} bars per symbol even at one bar per ${intervals[intervals.length - 1]} minutes; ask for a shorter range.`, [{ path: 'end_date', message: 'range too long' }]);
}

/** The daily opening prices of a symbol's simulated walk, for weekdays since 1970 up to `last` (UTC midnight). */
function dailyOpens(symbol: string, seed: number, last: number): Map<number, number> {
  const random = mulberry32(seed ^ hashString(symbol));
  const base = Math.round((10 + random() * 500) * 100) / 100;
  const logBase = Math.log(base);
  let log = logBase;
  const opens = new Map<number, number>();
  for (let d = 0; d <= last; d += DAY) {
    if (!isWeekday(d)) continue;
    opens.set(d, Math.exp(log));
    log += HISTORY_DEFAULTS.dailyReversion * (logBase - log) + HISTORY_DEFAULTS.dailyVolatility * gaussian(random);
  }
  return opens;
}

/** One session of 1-minute bars of a symbol on one day. */
function sessionBars(symbol: string, seed: number, day: number, open: number): HistoricalBar[] {
  const random = mulberry32(seed ^ hashString(`${symbol}|${new Date(day).toISOString().slice(0, 10)}`));
  const sigma = HISTORY_DEFAULTS.minuteVolatility;
  const bars: HistoricalBar[] = [];
  let price = cents(open);
  const first = day + HISTORY_DEFAULTS.sessionOpenUtcMinutes * MINUTE;
  for (let m = 0; m < HISTORY_DEFAULTS.sessionMinutes; m++) {
    const o = price;
    const c = cents(o * Math.exp(sigma * gaussian(random)));
    const high = Math.max(o, c, cents(Math.max(o, c) * Math.exp(Math.abs(gaussian(random)) * sigma * 0.5)));
    const low = Math.min(o, c, cents(Math.min(o, c) * Math.exp(-Math.abs(gaussian(random)) * sigma * 0.5)));
    // Log-normal, around 100 trades of 100 shares a minute.
    const volume = Math.max(1, Math.round(Math.exp(Math.log(10_000) + 0.8 * gaussian(random))));
    bars.push({ start: first + m * MINUTE, open: o, high, low, close: c, volume });
    price = c;
  }
  return bars;
}

export interface SimulatedHistoryOptions {
  /** @default HISTORY_DEFAULTS.seed (the sim feed's) */
  seed?: number;
  /** @default HISTORY_DEFAULTS.maxBarsPerSymbol */
  maxBarsPerSymbol?: number;
}

/** The simulated market's bars for the job's symbols and dates (see the top of this file). */
export function simulatedHistory(job: HistoryRequest, options: SimulatedHistoryOptions = {}): History {
  const seed = options.seed ?? HISTORY_DEFAULTS.seed;
  const max = options.maxBarsPerSymbol ?? HISTORY_DEFAULTS.maxBarsPerSymbol;
  const { from, to } = dayRange(job);
  const days = weekdays(from, to);
  const session = HISTORY_DEFAULTS.sessionMinutes;
  const minutes = pickInterval(days.length * session, HISTORY_DEFAULTS.simIntervalsMinutes, (m) => m, max, `${job.start_date} to ${job.end_date}`);
  const sessionOpen = (start: number): number => Math.floor(start / DAY) * DAY + HISTORY_DEFAULTS.sessionOpenUtcMinutes * MINUTE;
  const bars: Record<string, HistoricalBar[]> = {};
  for (const symbol of new Set(job.symbols)) {
    const opens = days.length === 0 ? new Map<number, number>() : dailyOpens(symbol, seed, days[days.length - 1] as number);
    const list: HistoricalBar[] = [];
    for (const day of days) for (const bar of coarsen(sessionBars(symbol, seed, day, opens.get(day) as number), minutes, sessionOpen)) list.push(bar);
    bars[symbol] = list;
  }
  return { bars, timeframe: minutes * 60, source: { source: 'simulated', seed, bar_minutes: minutes, session: '14:30-21:00 UTC, weekdays', sessions: days.length } };
}

export interface ReplayHistoryOptions {
  /** @default HISTORY_DEFAULTS.maxBarsPerSymbol */
  maxBarsPerSymbol?: number;
}

/** Bars of the job's symbols from a replay file's trades (1-minute bars, coarsened to fit). */
export function replayHistory(file: string, job: HistoryRequest, options: ReplayHistoryOptions = {}): History {
  const max = options.maxBarsPerSymbol ?? HISTORY_DEFAULTS.maxBarsPerSymbol;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read replay file ${file}: ${(error as Error).message}`, { cause: error });
  }
  const wanted = new Set(job.symbols);
  const { from, to } = dayRange(job);
  const aggregator = new BarAggregator({ timeframes: [60], maxSymbols: Math.max(1, wanted.size) });
  const oneMinute: Record<string, HistoricalBar[]> = Object.fromEntries([...wanted].map((s) => [s, []]));
  const stats = { trades: 0, used: 0, malformed: 0 };
  const keep = (closed: Array<HistoricalBar & { symbol: string }>): void => {
    for (const b of closed) oneMinute[b.symbol]?.push({ start: b.start, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume });
  };
  let parser: TradeLineParser | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (parser === undefined) {
      const picked = tradeLineParser(line);
      parser = picked.parser;
      if (picked.firstIsHeader) continue;
    }
    let trades;
    try {
      trades = parser(line);
    } catch {
      stats.malformed++;
      continue;
    }
    for (const trade of trades) {
      stats.trades++;
      const at = Date.parse(trade.timestamp);
      if (!wanted.has(trade.symbol) || !(at >= from && at < to + DAY)) continue;
      stats.used++;
      keep(aggregator.onTick(trade).closed);
    }
  }
  keep(aggregator.flush(Number.MAX_SAFE_INTEGER));
  // Replayed data has gaps: coarsen, then count (the bound used for the simulated days would not hold).
  for (const minutes of HISTORY_DEFAULTS.replayIntervalsMinutes) {
    const bars = Object.fromEntries(Object.entries(oneMinute).map(([s, list]) => [s, coarsen(list, minutes, () => 0)]));
    if (Object.values(bars).every((b) => b.length <= max)) return { bars, timeframe: minutes * 60, source: { source: 'replay', file, bar_minutes: minutes, ...stats } };
  }
  throw new ValidationError(`The replay of ${file} over ${job.start_date} to ${job.end_date} is too long to backtest: more than ${max} daily bars per symbol; ask for a shorter range.`, [{ path: 'end_date', message: 'range too long' }]);
}
