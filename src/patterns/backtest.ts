// A pure backtest (seed 003's backtest job): the live detectors run over historical bars,
// and each signal becomes one simple trade, so a user can see how a pattern would have done
// before trusting its alerts. No I/O: the bars come in, the result (the `results` of
// tickstock.events.backtesting.results) goes out, progress goes to a callback.
//
// The trading rule, per symbol, bar by bar (bars in [start_date, end_date], UTC, by start):
// 1. a signal pending from the previous bar enters at this bar's open: long on a bullish
//    pattern, short on a bearish one (neutral patterns such as Doji are counted, never
//    traded), for initial_capital × position_size of notional; capital does not compound;
// 2. an open position leaves at its stop (entry × (1 ∓ stop_loss)), or at the open when the
//    bar gaps through it; otherwise at the close of its hold_bars-th bar (the entry bar is
//    the first), or at the last bar's close when the data ends;
// 3. the patterns this bar completes are detected; when no position is open, the most
//    confident one (at least min_confidence) becomes the signal for the next bar.
// One position per symbol at a time: a detection while one is open is counted, not traded.
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import type { BacktestJobSchema } from '../catalogs/tickstock.ts';
import { timeframeLabel, type Candle } from './bars.ts';
import { PATTERNS, detectCandlesticks, findPattern, historyNeeded, type CandlestickOptions, type Detection, type PatternName } from './candlesticks.ts';

export type BacktestJob = z.infer<typeof BacktestJobSchema>;

/** One historical bar; `start` in epoch milliseconds. */
export interface HistoricalBar extends Candle {
  start: number;
}

export interface BacktestInput {
  job: Pick<BacktestJob, 'symbols' | 'start_date' | 'end_date' | 'patterns' | 'parameters'>;
  bars: Readonly<Record<string, readonly HistoricalBar[]>>;
  /** The bars' length in seconds, for the result's label. @default 86400 */
  timeframe?: number;
  /** Called with the fraction done, from 0 to 1, never going back. */
  onProgress?: (fraction: number) => void;
  /** Checked between steps: an aborted run throws the signal's reason. */
  signal?: AbortSignal;
  candlesticks?: CandlestickOptions;
}

/** job.parameters: seed 003's two, and the rule's. */
export const BacktestParametersSchema = z.object({
  initial_capital: z.number().positive().default(100_000),
  position_size: z.number().gt(0).max(1).default(0.1),
  hold_bars: z.number().int().min(1).max(10_000).default(5),
  stop_loss: z.number().gt(0).lt(1).default(0.05),
  min_confidence: z.number().min(0).max(1).default(0.5),
  allow_short: z.boolean().default(true),
  max_trades_listed: z.number().int().min(0).max(2_000).default(500),
});
export type BacktestParameters = z.infer<typeof BacktestParametersSchema>;

export type TradeRecord = {
  symbol: string;
  pattern: PatternName;
  side: 'long' | 'short';
  confidence: number;
  entry_time: string;
  entry_price: number;
  exit_time: string;
  exit_price: number;
  exit_reason: 'stop' | 'hold' | 'end_of_data';
  quantity: number;
  pnl: number;
  return_pct: number;
};

export type PatternStats = { detections: number; trades: number; wins: number; losses: number; hit_rate: number; total_pnl: number; avg_return_pct: number };

export type BacktestResult = {
  symbols: string[];
  start_date: string;
  end_date: string;
  timeframe: string;
  patterns: PatternName[];
  parameters: BacktestParameters;
  summary: {
    bars: number;
    detections: number;
    total_trades: number;
    winning_trades: number;
    losing_trades: number;
    hit_rate: number;
    total_pnl: number;
    return_pct: number;
    final_capital: number;
    max_drawdown: number;
    max_drawdown_pct: number;
    avg_trade_return_pct: number;
  };
  by_pattern: Record<string, PatternStats>;
  by_symbol: Record<string, { bars: number; detections: number; trades: number; total_pnl: number }>;
  trades: TradeRecord[];
  trades_truncated: boolean;
  missing_symbols: string[];
  bars_skipped: number;
};

interface Position {
  signal: Detection;
  side: 1 | -1;
  entry: number;
  entryAt: number;
  quantity: number;
  stop: number;
  held: number;
}

const DAY = 86_400_000;
// Rounded for the report; `+ 0` turns -0 (a flat short) into 0, which JSON cannot tell apart anyway.
const money = (x: number): number => Math.round(x * 100) / 100 + 0;
const ratio = (x: number): number => Math.round(x * 10_000) / 10_000 + 0;
const iso = (ms: number): string => new Date(ms).toISOString();

function resolve(job: BacktestInput['job']): { params: BacktestParameters; patterns: PatternName[]; from: number; to: number } {
  const parsed = BacktestParametersSchema.safeParse(job.parameters ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: `parameters.${i.path.join('.')}`, message: i.message }));
    throw new ValidationError(`Invalid backtest parameters: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
  }
  const unknown = job.patterns.filter((p) => findPattern(p) === undefined);
  if (unknown.length > 0) throw new ValidationError(`Unknown patterns: ${unknown.join(', ')} (known: ${PATTERNS.join(', ')})`, unknown.map((p) => ({ path: 'patterns', message: `unknown pattern "${p}"` })));
  const patterns = job.patterns.length === 0 ? [...PATTERNS] : [...new Set(job.patterns.map((p) => findPattern(p) as PatternName))];
  const from = Date.parse(`${job.start_date}T00:00:00Z`);
  const to = Date.parse(`${job.end_date}T00:00:00Z`) + DAY;
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) throw new ValidationError(`Invalid date range ${job.start_date} to ${job.end_date}`, [{ path: 'end_date', message: 'must be on or after start_date' }]);
  return { params: parsed.data, patterns, from, to };
}

const sane = (b: HistoricalBar): boolean =>
  [b.start, b.open, b.high, b.low, b.close, b.volume].every(Number.isFinite) && b.low > 0 && b.high >= Math.max(b.open, b.close) && b.low <= Math.min(b.open, b.close) && b.volume >= 0;

/** The symbol's usable bars in the range, by time; one per start. */
function barsIn(list: readonly HistoricalBar[], from: number, to: number): { bars: HistoricalBar[]; skipped: number } {
  const inRange = list.filter((b) => b.start >= from && b.start < to);
  const good = inRange.filter(sane).sort((a, b) => a.start - b.start);
  const bars = good.filter((b, i) => i === 0 || b.start !== (good[i - 1] as HistoricalBar).start);
  return { bars, skipped: inRange.length - bars.length };
}

/** The exit of an open position on this bar, if it leaves. */
function exitOn(pos: Position, bar: HistoricalBar, holdBars: number): { price: number; reason: TradeRecord['exit_reason'] } | undefined {
  if (pos.side === 1 && bar.low <= pos.stop) return { price: Math.min(bar.open, pos.stop), reason: 'stop' };
  if (pos.side === -1 && bar.high >= pos.stop) return { price: Math.max(bar.open, pos.stop), reason: 'stop' };
  if (pos.held >= holdBars) return { price: bar.close, reason: 'hold' };
  return undefined;
}

export function runBacktest(input: BacktestInput): BacktestResult {
  const { params, patterns, from, to } = resolve(input.job);
  const wanted = new Set(patterns);
  const keep = historyNeeded(input.candlesticks);
  const symbols = [...new Set(input.job.symbols)];
  const series = symbols.map((symbol) => ({ symbol, ...barsIn(input.bars[symbol] ?? [], from, to) }));
  const total = series.reduce((s, x) => s + x.bars.length, 0);
  const byPattern = Object.fromEntries(patterns.map((p) => [p, { detections: 0, trades: 0, wins: 0, losses: 0, pnl: 0, returns: 0 }]));
  const bySymbol: BacktestResult['by_symbol'] = {};
  /** Each trade as listed, with its exit time and unrounded P&L for the totals. */
  const trades: { record: TradeRecord; exitAt: number; pnl: number; ret: number }[] = [];
  let done = 0;
  let reported = -1;
  const progress = (force = false): void => {
    input.signal?.throwIfAborted();
    const fraction = total === 0 ? 1 : done / total;
    if (input.onProgress !== undefined && (force || fraction - reported >= 0.01) && fraction > reported) {
      reported = fraction;
      input.onProgress(fraction);
    }
  };
  progress();

  for (const { symbol, bars } of series) {
    const mine = { bars: bars.length, detections: 0, trades: 0, total_pnl: 0 };
    let pending: Detection | undefined;
    let pos: Position | undefined;
    const close = (bar: HistoricalBar, price: number, reason: TradeRecord['exit_reason']): void => {
      const p = pos as Position;
      const pnl = p.side * p.quantity * (price - p.entry);
      const ret = p.side * (price / p.entry - 1) * 100;
      const stats = byPattern[p.signal.pattern];
      if (stats !== undefined) {
        stats.trades += 1;
        stats.pnl += pnl;
        stats.returns += ret;
        if (pnl > 0) stats.wins += 1;
        else stats.losses += 1;
      }
      mine.trades += 1;
      mine.total_pnl += pnl;
      const record: TradeRecord = {
        symbol,
        pattern: p.signal.pattern,
        side: p.side === 1 ? 'long' : 'short',
        confidence: ratio(p.signal.confidence),
        entry_time: iso(p.entryAt),
        entry_price: p.entry,
        exit_time: iso(bar.start),
        exit_price: price,
        exit_reason: reason,
        quantity: p.quantity,
        pnl: money(pnl),
        return_pct: ratio(ret),
      };
      trades.push({ record, exitAt: bar.start, pnl, ret });
      pos = undefined;
    };
    bars.forEach((bar, i) => {
      if (pending !== undefined) {
        const side = pending.direction === 'bullish' ? 1 : -1;
        pos = { signal: pending, side, entry: bar.open, entryAt: bar.start, quantity: (params.initial_capital * params.position_size) / bar.open, stop: bar.open * (1 - side * params.stop_loss), held: 0 };
        pending = undefined;
      }
      if (pos !== undefined) {
        pos.held += 1;
        const exit = exitOn(pos, bar, params.hold_bars);
        if (exit !== undefined) close(bar, exit.price, exit.reason);
      }
      const found = detectCandlesticks(bars.slice(Math.max(0, i + 1 - keep), i + 1), input.candlesticks).filter((d) => wanted.has(d.pattern));
      for (const d of found) (byPattern[d.pattern] as { detections: number }).detections += 1;
      mine.detections += found.length;
      const tradable = found.filter((d) => d.confidence >= params.min_confidence && (d.direction === 'bullish' || (d.direction === 'bearish' && params.allow_short)));
      if (pos === undefined && i + 1 < bars.length) pending = tradable.reduce<Detection | undefined>((best, d) => (best === undefined || d.confidence > best.confidence ? d : best), undefined);
      done += 1;
      if (done % 1000 === 0) progress();
    });
    const last = bars[bars.length - 1];
    if (pos !== undefined && last !== undefined) close(last, last.close, 'end_of_data');
    bySymbol[symbol] = { ...mine, total_pnl: money(mine.total_pnl) };
    progress();
  }

  // The equity curve of closed trades, in exit order, for the drawdown.
  trades.sort((a, b) => a.exitAt - b.exitAt || (a.record.symbol < b.record.symbol ? -1 : a.record.symbol > b.record.symbol ? 1 : 0));
  let equity = params.initial_capital;
  let peak = equity;
  let drawdown = 0;
  let drawdownPct = 0;
  for (const t of trades) {
    equity += t.pnl;
    peak = Math.max(peak, equity);
    if (peak - equity > drawdown) {
      drawdown = peak - equity;
      drawdownPct = ((peak - equity) / peak) * 100;
    }
  }
  const totalPnl = trades.reduce((s, t) => s + t.pnl, 0);
  const wins = trades.filter((t) => t.pnl > 0).length;
  const result: BacktestResult = {
    symbols,
    start_date: input.job.start_date,
    end_date: input.job.end_date,
    timeframe: timeframeLabel(input.timeframe ?? 86_400),
    patterns,
    parameters: params,
    summary: {
      bars: total,
      detections: Object.values(byPattern).reduce((s, p) => s + p.detections, 0),
      total_trades: trades.length,
      winning_trades: wins,
      losing_trades: trades.length - wins,
      hit_rate: trades.length === 0 ? 0 : ratio(wins / trades.length),
      total_pnl: money(totalPnl),
      return_pct: ratio((totalPnl / params.initial_capital) * 100),
      final_capital: money(params.initial_capital + totalPnl),
      max_drawdown: money(drawdown),
      max_drawdown_pct: ratio(drawdownPct),
      avg_trade_return_pct: trades.length === 0 ? 0 : ratio(trades.reduce((s, t) => s + t.ret, 0) / trades.length),
    },
    by_pattern: Object.fromEntries(
      Object.entries(byPattern).map(([name, p]) => [
        name,
        { detections: p.detections, trades: p.trades, wins: p.wins, losses: p.losses, hit_rate: p.trades === 0 ? 0 : ratio(p.wins / p.trades), total_pnl: money(p.pnl), avg_return_pct: p.trades === 0 ? 0 : ratio(p.returns / p.trades) },
      ]),
    ),
    by_symbol: bySymbol,
    trades: trades.slice(0, params.max_trades_listed).map((t) => t.record),
    trades_truncated: trades.length > params.max_trades_listed,
    missing_symbols: series.filter((s) => s.bars.length === 0).map((s) => s.symbol),
    bars_skipped: series.reduce((s, x) => s + x.skipped, 0),
  };
  progress(true);
  return result;
}
