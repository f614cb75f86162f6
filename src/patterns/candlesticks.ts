// Candlestick patterns on closed bars, the textbook definitions (trading-signals has no
// pattern detection). Each detection carries a confidence in [0, 1]: 0.5 when the bar only
// just meets the definition, rising to 1 as it meets it more strongly (the body/range
// ratios below), so a consumer can keep only the clear cases (seed 002's ≥ 80 %).
//
// Terms, for one bar: range = high − low, body = |close − open|, upper shadow =
// high − max(open, close), lower shadow = min(open, close) − low. A bar with no range
// (one price all along) carries no information and matches nothing.
import type { Candle } from './bars.ts';

export const PATTERNS = ['Doji', 'Hammer', 'Hanging Man', 'Inverted Hammer', 'Shooting Star', 'Bullish Engulfing', 'Bearish Engulfing'] as const;
export type PatternName = (typeof PATTERNS)[number];
export type Direction = 'bullish' | 'bearish' | 'neutral';

export interface Detection {
  pattern: PatternName;
  /** Which way the pattern points price. */
  direction: Direction;
  /** [0, 1]; 0.5 at the edge of the definition. */
  confidence: number;
  /** Seed 003's "pattern implication". */
  implication: 'reversal' | 'indecision';
  /** How many bars, the newest last, the definition looked at. */
  bars: number;
}

export interface CandlestickOptions {
  /** Doji: body at most this share of the range. @default 0.1 */
  dojiBody?: number;
  /** Hammer family: the closes before the bar that make its trend (a net move, and the share of steps that went that way). @default 3 */
  trendBars?: number;
}

/** A pattern's name as seed 002 writes it ("doji", "bullish_engulfing"). */
export function patternKey(name: string): string {
  return name.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

/** The pattern a user names, in any spelling: "Bullish Engulfing", "bullish_engulfing", "BULLISH-ENGULFING". */
export function findPattern(name: string): PatternName | undefined {
  const key = patternKey(name).replace(/_/g, '');
  return PATTERNS.find((p) => patternKey(p).replace(/_/g, '') === key);
}

/** Bars of history detectCandlesticks can use (the newest included). */
export function historyNeeded(options: CandlestickOptions = {}): number {
  return (options.trendBars ?? 3) + 2;
}

interface Shape {
  range: number;
  body: number;
  upper: number;
  lower: number;
  bullish: boolean;
  bearish: boolean;
}

function shape(c: Candle): Shape | undefined {
  const values = [c.open, c.high, c.low, c.close];
  if (values.some((v) => !Number.isFinite(v))) return undefined;
  const top = Math.max(c.open, c.close);
  const bottom = Math.min(c.open, c.close);
  if (c.high < top || c.low > bottom || c.high <= c.low) return undefined;
  return { range: c.high - c.low, body: top - bottom, upper: c.high - top, lower: bottom - c.low, bullish: c.close > c.open, bearish: c.close < c.open };
}

const clamp01 = (x: number): number => (x <= 0 ? 0 : x >= 1 ? 1 : x);
/** 0.5 at the edge of a definition, 1 at its strongest; each score in [0, 1]. */
const confidenceOf = (...scores: number[]): number => 0.5 + (0.5 * scores.reduce((s, x) => s + clamp01(x), 0)) / scores.length;

/** The trend of the closes before the newest bar: its sign, and the share of steps that went that way. */
function trendBefore(history: readonly Candle[], bars: number): { sign: -1 | 0 | 1; share: number } {
  const closes = history.slice(-bars - 2, -1).map((c) => c.close);
  if (closes.length < bars + 1) return { sign: 0, share: 0 };
  const first = closes[0] as number;
  const last = closes[closes.length - 1] as number;
  const sign = last > first ? 1 : last < first ? -1 : 0;
  let along = 0;
  for (let i = 1; i < closes.length; i++) {
    const step = (closes[i] as number) - (closes[i - 1] as number);
    if (Math.sign(step) === sign && sign !== 0) along += 1;
  }
  return { sign, share: along / bars };
}

/**
 * Doji: body ≤ dojiBody × range; open and close (nearly) equal, indecision. Confidence
 * falls from 1 (no body) to 0.5 (body at the limit).
 */
function doji(s: Shape, limit: number): Detection | undefined {
  if (s.body > limit * s.range) return undefined;
  return { pattern: 'Doji', direction: 'neutral', confidence: confidenceOf(1 - s.body / (limit * s.range)), implication: 'indecision', bars: 1 };
}

/**
 * The hammer family: a long shadow on one side (≥ 2 × body, and together with the body at
 * least 60 % of the range) and almost none on the other (≤ 10 % of the range). What it is
 * called depends on the trend before it:
 * - long lower shadow after a decline: Hammer (bullish); after a rise: Hanging Man (bearish);
 * - long upper shadow after a decline: Inverted Hammer (bullish); after a rise: Shooting Star (bearish).
 * Confidence: the long shadow's share of the range (60 % → 0, 90 % → 1), how small the other
 * shadow is, and the share of the trend's steps that went its way.
 */
function hammerFamily(s: Shape, history: readonly Candle[], trendBars: number): Detection | undefined {
  const trend = trendBefore(history, trendBars);
  if (trend.sign === 0) return undefined;
  const lowerLong = s.lower >= 2 * s.body && s.lower >= 0.6 * s.range && s.upper <= 0.1 * s.range;
  const upperLong = s.upper >= 2 * s.body && s.upper >= 0.6 * s.range && s.lower <= 0.1 * s.range;
  if (lowerLong === upperLong) return undefined;
  const long = lowerLong ? s.lower : s.upper;
  const short = lowerLong ? s.upper : s.lower;
  const confidence = confidenceOf((long / s.range - 0.6) / 0.3, 1 - short / (0.1 * s.range), trend.share);
  const afterDecline = trend.sign < 0;
  const pattern: PatternName = lowerLong ? (afterDecline ? 'Hammer' : 'Hanging Man') : afterDecline ? 'Inverted Hammer' : 'Shooting Star';
  return { pattern, direction: afterDecline ? 'bullish' : 'bearish', confidence, implication: 'reversal', bars: trendBars + 2 };
}

/**
 * Engulfing: the bar's body covers the previous bar's body, which went the other way
 * (bullish: previous closed down, this one opens at or below its close and closes at or
 * above its open, with a larger body; bearish: the mirror). Confidence: how much larger the
 * body is (1× → 0, 3× → 1) and how much of its own range the body fills.
 */
function engulfing(s: Shape, cur: Candle, prev: Candle): Detection | undefined {
  const p = shape(prev);
  if (p === undefined || s.body <= p.body) return undefined;
  const confidence = confidenceOf((s.body / p.body - 1) / 2, s.body / s.range);
  if (p.bearish && s.bullish && cur.open <= prev.close && cur.close >= prev.open) {
    return { pattern: 'Bullish Engulfing', direction: 'bullish', confidence, implication: 'reversal', bars: 2 };
  }
  if (p.bullish && s.bearish && cur.open >= prev.close && cur.close <= prev.open) {
    return { pattern: 'Bearish Engulfing', direction: 'bearish', confidence, implication: 'reversal', bars: 2 };
  }
  return undefined;
}

/** The patterns the newest bar of `history` (oldest first) completes. */
export function detectCandlesticks(history: readonly Candle[], options: CandlestickOptions = {}): Detection[] {
  const cur = history[history.length - 1];
  const s = cur === undefined ? undefined : shape(cur);
  if (cur === undefined || s === undefined) return [];
  const trendBars = options.trendBars ?? 3;
  const out: Detection[] = [];
  const found = [doji(s, options.dojiBody ?? 0.1), hammerFamily(s, history, trendBars)];
  const prev = history[history.length - 2];
  if (prev !== undefined) found.push(engulfing(s, cur, prev));
  for (const d of found) if (d !== undefined) out.push(d);
  return out;
}
