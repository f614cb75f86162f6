import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PatternEventSchema, StreamingPatternSchema } from '../catalogs/tickstock.ts';
import type { Bar } from './bars.ts';
import { PATTERNS } from './candlesticks.ts';
import { healthMessage, indicatorMessage, patternEvent, patternMessages, percent, streamingPattern, type Outgoing, type PatternHit } from './messages.ts';

const bar: Bar = { symbol: 'AAPL', timeframe: 60, start: 1234567830_000, end: 1234567890_000, open: 150, high: 151, low: 149.5, close: 150.2, volume: 1000, ticks: 12 };
const doji = (confidence: number): PatternHit => ({ pattern: 'Doji', direction: 'neutral', confidence, implication: 'indecision', bars: 1, bar });

/** Each message passes its own channel's catalog schema, and the schema changes nothing in it. */
function assertValid(out: Outgoing): void {
  const parsed = out.channel.schema.safeParse(out.data);
  assert.ok(parsed.success, `${out.channel.template}: ${JSON.stringify(parsed.error?.issues)}`);
  assert.deepEqual(parsed.data, out.data, `${out.channel.template}: the schema keeps every field`);
}

describe('pattern messages', () => {
  it("seed 002's pattern message: percentage, snake_case name, the bar's time and prices", () => {
    const msg = streamingPattern(doji(0.855));
    assert.deepEqual(msg, {
      pattern_name: 'doji',
      symbol: 'AAPL',
      timeframe: '1min',
      confidence: 85.5,
      detected_at: 1234567890,
      bar_count: 1,
      metadata: { open: 150, high: 151, low: 149.5, close: 150.2, volume: 1000, direction: 'neutral' },
    });
    assert.ok(StreamingPatternSchema.safeParse(msg).success);
  });

  it("seed 003's event: a fraction, the pattern's own name, a direction, source tickstock_pl", () => {
    const event = patternEvent({ ...doji(0.85), pattern: 'Bullish Engulfing', direction: 'bullish', implication: 'reversal', bars: 2 });
    assert.deepEqual(event, {
      event_type: 'pattern_detected',
      pattern: 'Bullish Engulfing',
      symbol: 'AAPL',
      timestamp: 1234567890,
      confidence: 0.85,
      timeframe: '1min',
      direction: 'bullish',
      source: 'tickstock_pl',
      metadata: { price: 150.2, volume: 1000, implication: 'reversal' },
    });
    assert.ok(PatternEventSchema.safeParse(event).success);
  });

  it('sends a detection to :detected only at 80 % and above, as the message shows it', () => {
    const channels = (c: number) => patternMessages(doji(c)).map((m) => m.channel.template);
    assert.deepEqual(channels(0.79), ['tickstock:patterns:streaming', 'tickstock.events.patterns']);
    assert.deepEqual(channels(0.8), ['tickstock:patterns:streaming', 'tickstock:patterns:detected', 'tickstock.events.patterns']);
    assert.equal(percent(0.79951), 80, 'rounds to 80.0 on the wire, so it counts as 80');
    assert.deepEqual(channels(0.79951).length, 3);
    assert.deepEqual(patternMessages(doji(0.9), 95).length, 2, 'the threshold is configurable');
  });

  it('indicator and health messages follow seed 002', () => {
    const ind = indicatorMessage({ name: 'RSI', symbol: 'AAPL', timeframe: 60, value: 68.5, at: 1234567890_123, metadata: { period: 14, source: 'close' } });
    assert.equal(ind.channel.template, 'tickstock:indicators:streaming');
    assert.deepEqual(ind.data, { indicator_name: 'RSI', symbol: 'AAPL', timeframe: '1min', value: 68.5, calculated_at: 1234567890.123, metadata: { period: 14, source: 'close' } });
    assertValid(ind);
    const health = healthMessage({ status: 'healthy', uptimeSeconds: 3600, symbolsProcessed: 4200, patternsDetected: 156, indicatorsCalculated: 8400, at: 1234567890_123 });
    assert.equal(health.channel.template, 'tickstock:streaming:health');
    assert.deepEqual(health.data, { status: 'healthy', uptime_seconds: 3600, symbols_processed: 4200, patterns_detected: 156, indicators_calculated: 8400, timestamp: 1234567890.123 });
    assertValid(health);
  });

  it('every message built from any detection or indicator passes its catalog schema', () => {
    const hit = fc.record({
      pattern: fc.constantFrom(...PATTERNS),
      direction: fc.constantFrom('bullish' as const, 'bearish' as const, 'neutral' as const),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
      implication: fc.constantFrom('reversal' as const, 'indecision' as const),
      bars: fc.integer({ min: 1, max: 10 }),
      bar: fc.record({
        symbol: fc.stringMatching(/^[A-Z0-9./-]{1,15}$/),
        timeframe: fc.constantFrom(1, 5, 60, 300, 3600, 86400, 7),
        start: fc.constant(0),
        end: fc.integer({ min: 0, max: 4_000_000_000_000 }),
        open: fc.double({ min: 0.01, max: 1e6, noNaN: true }),
        high: fc.double({ min: 0.01, max: 1e6, noNaN: true }),
        low: fc.double({ min: 0.01, max: 1e6, noNaN: true }),
        close: fc.double({ min: 0.01, max: 1e6, noNaN: true }),
        volume: fc.double({ min: 0, max: 1e12, noNaN: true }),
        ticks: fc.nat(),
      }),
    });
    fc.assert(
      fc.property(hit, (h) => {
        for (const out of patternMessages(h)) assertValid(out);
        assertValid(indicatorMessage({ name: 'VWAP', symbol: h.bar.symbol, timeframe: h.bar.timeframe, value: h.bar.close, at: h.bar.end, metadata: { session: '2024-01-02', source: 'typical' } }));
      }),
    );
  });
});
