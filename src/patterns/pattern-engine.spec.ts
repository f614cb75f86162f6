import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Tick } from './bars.ts';
import type { Outgoing } from './messages.ts';
import { PatternEngine } from './pattern-engine.ts';

/** A whole UTC minute, in seconds. */
const M0 = Math.floor(1_700_000_000 / 60) * 60;
const tick = (price: number, seconds: number, symbol = 'AAPL', volume = 10): Tick => ({ symbol, price, volume, timestamp: seconds });
/** Four ticks making one 60 s bar: open, high, low, close. */
const minute = (i: number, o: number, h: number, l: number, c: number): Tick[] => [tick(o, M0 + 60 * i), tick(h, M0 + 60 * i + 10), tick(l, M0 + 60 * i + 20), tick(c, M0 + 60 * i + 50)];
const on = (out: Outgoing[], channel: string) => out.filter((m) => m.channel.template === channel);

function assertValid(out: Outgoing): void {
  const parsed = out.channel.schema.safeParse(out.data);
  assert.ok(parsed.success, `${out.channel.template}: ${JSON.stringify(parsed.error?.issues)}`);
}

describe('PatternEngine', () => {
  it('turns ticks into indicator and pattern messages when a bar closes', () => {
    const engine = new PatternEngine({ indicators: { sma: [2], ema: [], rsi: [], vwap: true } });
    const ticks = [...minute(0, 100, 101, 99, 100.5), ...minute(1, 100, 105, 95, 100)];
    const early = ticks.flatMap((t) => engine.onTick(t));
    assert.deepEqual(on(early, 'tickstock:indicators:streaming').map((m) => m.data), [
      { indicator_name: 'VWAP', symbol: 'AAPL', timeframe: '1min', value: (101 + 99 + 100.5) / 3, calculated_at: M0 + 60, metadata: { session: '2023-11-14', source: 'typical' } },
    ]);
    const closing = engine.onTick(tick(100, M0 + 120));
    const names = closing.map((m) => m.channel.template);
    assert.deepEqual(names, ['tickstock:indicators:streaming', 'tickstock:indicators:streaming', 'tickstock:patterns:streaming', 'tickstock:patterns:detected', 'tickstock.events.patterns']);
    const pattern = on(closing, 'tickstock:patterns:streaming')[0]?.data;
    assert.deepEqual(pattern, {
      pattern_name: 'doji',
      symbol: 'AAPL',
      timeframe: '1min',
      confidence: 100,
      detected_at: M0 + 120,
      bar_count: 1,
      metadata: { open: 100, high: 105, low: 95, close: 100, volume: 40, direction: 'neutral' },
    });
    for (const m of [...early, ...closing]) assertValid(m);
    assert.deepEqual({ ...engine.stats(), rejected: undefined }, { accepted: 9, rejected: undefined, lateMerges: 0, symbols: 1, barsClosed: 2, patternsDetected: 1, indicatorsCalculated: 3, barsProcessed: 2 });
  });

  it('flush(now) closes the bars whose minute is over, with their messages', () => {
    const engine = new PatternEngine({ indicators: { sma: [], ema: [], rsi: [], vwap: false } });
    for (const t of minute(0, 100, 105, 95, 100)) engine.onTick(t);
    assert.deepEqual(engine.flush((M0 + 59) * 1000), []);
    assert.deepEqual(engine.flush((M0 + 60) * 1000).map((m) => m.channel.template), ['tickstock:patterns:streaming', 'tickstock:patterns:detected', 'tickstock.events.patterns']);
  });

  it('looks only for the patterns it is given', () => {
    const engine = new PatternEngine({ patterns: ['Hammer'], indicators: { vwap: false, sma: [], ema: [], rsi: [] } });
    for (const t of minute(0, 100, 105, 95, 100)) engine.onTick(t);
    assert.deepEqual(engine.flush((M0 + 60) * 1000), []);
  });

  it('health: idle before ticks, healthy while they come, degraded when many are refused, uptime from the first tick', () => {
    const engine = new PatternEngine();
    assert.equal(engine.health(M0 * 1000).data.status, 'idle');
    engine.onTick(tick(100, M0));
    const h = engine.health((M0 + 30) * 1000);
    assertValid(h);
    assert.deepEqual(h.data, { status: 'healthy', uptime_seconds: 30, symbols_processed: 0, patterns_detected: 0, indicators_calculated: 0, timestamp: M0 + 30 });
    engine.onTick(tick(Number.NaN, M0 + 31));
    engine.onTick(tick(100, M0 + 32));
    assert.equal(engine.health((M0 + 33) * 1000).data.status, 'degraded', 'one refused of two since the last report');
    engine.onTick(tick(100, M0 + 34));
    assert.equal(engine.health((M0 + 35) * 1000).data.status, 'healthy', 'a new window');
    assert.equal(engine.health((M0 + 200) * 1000).data.status, 'idle', 'no tick for over a minute');
    assert.equal(new PatternEngine({ startedAt: (M0 - 10) * 1000 }).snapshot(M0 * 1000).uptimeSeconds, 10);
  });

  it('says degraded while new symbols are refused for the symbol limit', () => {
    const engine = new PatternEngine({ maxSymbols: 1 });
    engine.onTick(tick(1, M0, 'A'));
    for (let i = 0; i < 100; i++) engine.onTick(tick(1, M0 + 1, 'A'));
    engine.onTick(tick(1, M0 + 2, 'B'));
    assert.equal(engine.health((M0 + 3) * 1000).data.status, 'degraded');
  });

  it('every message passes its catalog schema, :detected carries exactly the streaming detections of 80 and above, and the counters add up', () => {
    const ticks = fc
      .array(fc.record({ symbol: fc.constantFrom('AAPL', 'MSFT'), cents: fc.integer({ min: 9000, max: 11000 }), step: fc.integer({ min: 0, max: 30_000 }) }), { maxLength: 300 })
      .map((rows) => {
        let at = M0 * 1000;
        return rows.map((r) => tick(r.cents / 100, (at += r.step) / 1000, r.symbol));
      });
    fc.assert(
      fc.property(ticks, (list) => {
        const engine = new PatternEngine({ timeframes: [5, 60], indicators: { sma: [3], ema: [3], rsi: [3] } });
        const out = [...list.flatMap((t) => engine.onTick(t)), ...engine.flush(Number.MAX_SAFE_INTEGER)];
        for (const m of out) assertValid(m);
        const streaming = on(out, 'tickstock:patterns:streaming').map((m) => m.data as { confidence: number });
        const detected = on(out, 'tickstock:patterns:detected').map((m) => m.data);
        assert.deepEqual(detected, streaming.filter((d) => d.confidence >= 80));
        const stats = engine.stats();
        assert.equal(streaming.length, stats.patternsDetected);
        assert.equal(on(out, 'tickstock.events.patterns').length, stats.patternsDetected);
        assert.equal(on(out, 'tickstock:indicators:streaming').length, stats.indicatorsCalculated);
        assert.equal(stats.barsProcessed, stats.barsClosed);
      }),
      { numRuns: 50 },
    );
  });
});
