// The seeds' exact message formats for what the pattern library finds, each paired with its
// catalog channel so a service can hand the list to the publisher as it is
// ({channel, data}, as Publisher.publishBatch takes). Times are the bars' (seconds, as
// Python's time.time()), never a clock. Confidence is a percentage on tickstock:patterns:*
// (seed 002: 85.5) and a fraction on tickstock.events.patterns (seed 003: 0.85).
import type { z } from 'zod';
import {
  IndicatorsStreaming,
  PatternEvents,
  PatternsDetected,
  PatternsStreaming,
  StreamingHealth,
  type IndicatorSchema,
  type PatternEventSchema,
  type StreamingHealthSchema,
  type StreamingPatternSchema,
} from '../catalogs/tickstock.ts';
import { timeframeLabel, type Bar } from './bars.ts';
import { patternKey, type Detection } from './candlesticks.ts';
import type { IndicatorValue } from './indicators.ts';

export type StreamingPattern = z.infer<typeof StreamingPatternSchema>;
export type PatternEvent = z.infer<typeof PatternEventSchema>;
export type IndicatorMessage = z.infer<typeof IndicatorSchema>;
export type HealthMessage = z.infer<typeof StreamingHealthSchema>;

/** One message to publish, in the shape Publisher.publishBatch takes. */
export type Outgoing =
  | { channel: typeof PatternsStreaming; data: StreamingPattern }
  | { channel: typeof PatternsDetected; data: StreamingPattern }
  | { channel: typeof PatternEvents; data: PatternEvent }
  | { channel: typeof IndicatorsStreaming; data: IndicatorMessage }
  | { channel: typeof StreamingHealth; data: HealthMessage };
export type IndicatorOutgoing = Extract<Outgoing, { channel: typeof IndicatorsStreaming }>;
export type HealthOutgoing = Extract<Outgoing, { channel: typeof StreamingHealth }>;

/** A detection on the bar that completed it. */
export interface PatternHit extends Detection {
  bar: Bar;
}

/** What the engine says of itself on tickstock:streaming:health. */
export interface HealthSnapshot {
  status: string;
  uptimeSeconds: number;
  /** Closed bars run through the indicators and detectors (one per symbol and timeframe each). */
  symbolsProcessed: number;
  patternsDetected: number;
  indicatorsCalculated: number;
  /** Epoch milliseconds. */
  at: number;
}

/** Seed 002: tickstock:patterns:detected carries the detections of 80 % and above. */
export const DETECTED_MIN_PERCENT = 80;

const seconds = (ms: number): number => ms / 1000;
/** 0.8567 → 85.7: the percentage the message shows, and the one the 80 % rule is applied to. */
export const percent = (fraction: number): number => Math.round(fraction * 1000) / 10;
const fraction = (x: number): number => Math.round(x * 1000) / 1000;

/** Seed 002's pattern message (tickstock:patterns:streaming and :detected). */
export function streamingPattern(hit: PatternHit): StreamingPattern {
  const { bar } = hit;
  return {
    pattern_name: patternKey(hit.pattern),
    symbol: bar.symbol,
    timeframe: timeframeLabel(bar.timeframe),
    confidence: percent(hit.confidence),
    detected_at: seconds(bar.end),
    bar_count: hit.bars,
    // The seed's four prices, and what else a consumer needs to act on it.
    metadata: { open: bar.open, high: bar.high, low: bar.low, close: bar.close, volume: bar.volume, direction: hit.direction },
  };
}

/**
 * Seed 003's pattern event (tickstock.events.patterns). `direction` is where the pattern
 * points price (bullish, bearish, neutral); the seed's example value, "reversal", is the
 * pattern's implication, which goes to metadata.implication.
 */
export function patternEvent(hit: PatternHit): PatternEvent {
  const { bar } = hit;
  return {
    event_type: 'pattern_detected',
    pattern: hit.pattern,
    symbol: bar.symbol,
    timestamp: seconds(bar.end),
    confidence: fraction(hit.confidence),
    timeframe: timeframeLabel(bar.timeframe),
    direction: hit.direction,
    source: 'tickstock_pl',
    metadata: { price: bar.close, volume: bar.volume, implication: hit.implication },
  };
}

/** Every message one detection makes: streaming and the event always, detected at 80 % and above. */
export function patternMessages(hit: PatternHit, detectedMinPercent = DETECTED_MIN_PERCENT): Outgoing[] {
  const data = streamingPattern(hit);
  const out: Outgoing[] = [{ channel: PatternsStreaming, data }];
  if (data.confidence >= detectedMinPercent) out.push({ channel: PatternsDetected, data });
  out.push({ channel: PatternEvents, data: patternEvent(hit) });
  return out;
}

/** Seed 002's indicator message (tickstock:indicators:streaming). */
export function indicatorMessage(value: IndicatorValue): IndicatorOutgoing {
  return {
    channel: IndicatorsStreaming,
    data: {
      indicator_name: value.name,
      symbol: value.symbol,
      timeframe: timeframeLabel(value.timeframe),
      value: value.value,
      calculated_at: seconds(value.at),
      metadata: { ...value.metadata },
    },
  };
}

/** Seed 002's health message (tickstock:streaming:health). */
export function healthMessage(h: HealthSnapshot): HealthOutgoing {
  return {
    channel: StreamingHealth,
    data: {
      status: h.status,
      uptime_seconds: Math.max(0, Math.round(h.uptimeSeconds * 1000) / 1000),
      symbols_processed: h.symbolsProcessed,
      patterns_detected: h.patternsDetected,
      indicators_calculated: h.indicatorsCalculated,
      timestamp: seconds(h.at),
    },
  };
}
