import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Candle } from './bars.ts';
import { PATTERNS, detectCandlesticks, findPattern, historyNeeded, patternKey, type Detection, type PatternName } from './candlesticks.ts';

const c = (open: number, high: number, low: number, close: number): Candle => ({ open, high, low, close, volume: 100 });
/** Four closes falling (or rising) before the bar under test. */
const decline = [c(120, 121, 114, 115), c(115, 116, 109, 110), c(110, 111, 104, 105), c(105, 106, 99, 100)];
const rise = [c(80, 86, 79, 85), c(85, 91, 84, 90), c(90, 96, 89, 95), c(95, 101, 94, 100)];
const names = (ds: Detection[]) => ds.map((d) => d.pattern).sort();
const only = (ds: Detection[], name: PatternName) => ds.find((d) => d.pattern === name);

describe('detectCandlesticks', () => {
  it('Doji: open = close is full confidence; a body at the 10 % limit is 0.5; neutral', () => {
    const flat = only(detectCandlesticks([c(100, 105, 95, 100)]), 'Doji');
    assert.deepEqual(flat, { pattern: 'Doji', direction: 'neutral', confidence: 1, implication: 'indecision', bars: 1 });
    assert.equal(only(detectCandlesticks([c(100, 105, 95, 101)]), 'Doji')?.confidence, 0.5);
    assert.equal(only(detectCandlesticks([c(100, 105, 95, 101.5)]), 'Doji'), undefined);
  });

  it('Hammer after a decline, Hanging Man after a rise', () => {
    const hammer = c(100, 102, 90, 101.5); // range 12: body 1.5, lower shadow 10, upper 0.5
    const afterDecline = detectCandlesticks([...decline, hammer]);
    assert.deepEqual(names(afterDecline), ['Hammer']);
    const h = only(afterDecline, 'Hammer');
    assert.equal(h?.direction, 'bullish');
    assert.equal(h?.bars, 5);
    assert.ok(h !== undefined && h.confidence > 0.8, `a clear hammer after four falling closes: ${h?.confidence}`);
    const hang = only(detectCandlesticks([...rise, hammer]), 'Hanging Man');
    assert.equal(hang?.direction, 'bearish');
    assert.deepEqual(detectCandlesticks([hammer]), [], 'no trend before it, no hammer');
  });

  it('Inverted Hammer after a decline, Shooting Star after a rise', () => {
    const star = c(100, 111, 99.8, 101.5); // range 11.2: body 1.5, upper shadow 9.5, lower 0.2
    assert.deepEqual(names(detectCandlesticks([...decline, star])), ['Inverted Hammer']);
    const shooting = only(detectCandlesticks([...rise, star]), 'Shooting Star');
    assert.equal(shooting?.direction, 'bearish');
    assert.equal(only(detectCandlesticks([...rise, c(100, 110, 96, 100.5)]), 'Shooting Star'), undefined, 'a lower shadow of 40 % is too long');
  });

  it('Bullish and Bearish Engulfing: the body covers the previous, opposite body', () => {
    const bull = detectCandlesticks([c(105, 106, 99, 100), c(99, 111, 98, 110)]);
    assert.deepEqual(names(bull), ['Bullish Engulfing']);
    assert.equal(only(bull, 'Bullish Engulfing')?.direction, 'bullish');
    assert.equal(only(bull, 'Bullish Engulfing')?.bars, 2);
    assert.deepEqual(names(detectCandlesticks([c(100, 106, 99, 105), c(106, 107, 94, 95)])), ['Bearish Engulfing']);
    assert.deepEqual(detectCandlesticks([c(105, 106, 99, 100), c(101, 111, 98, 110)]), [], 'opens above the previous close: not engulfing');
    assert.deepEqual(detectCandlesticks([c(100, 106, 99, 105), c(99, 111, 98, 110)]), [], 'both bullish: not engulfing');
  });

  it('matches nothing on a bar with no range or impossible prices', () => {
    assert.deepEqual(detectCandlesticks([c(100, 100, 100, 100)]), []);
    assert.deepEqual(detectCandlesticks([c(100, 99, 95, 100)]), []);
    assert.deepEqual(detectCandlesticks([c(Number.NaN, 101, 95, 100)]), []);
    assert.deepEqual(detectCandlesticks([]), []);
  });

  it('names patterns as the seeds do, in any spelling', () => {
    assert.equal(patternKey('Bullish Engulfing'), 'bullish_engulfing');
    assert.equal(patternKey('Doji'), 'doji');
    assert.equal(findPattern('bullish_engulfing'), 'Bullish Engulfing');
    assert.equal(findPattern(' SHOOTING-star '), 'Shooting Star');
    assert.equal(findPattern('Morning Star'), undefined);
    assert.equal(historyNeeded(), 5);
  });
});

// Integer prices, so the mirror image (p → M − p) is exact.
// A walk: each bar opens near the last close. Shadows are often none or tiny, so the hammer
// family turns up as well as engulfings and dojis.
const shadow = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 300 }));
const chart = fc.array(fc.tuple(fc.integer({ min: -10, max: 10 }), fc.integer({ min: -60, max: 60 }), shadow, shadow), { minLength: 1, maxLength: 6 }).map((rows) => {
  let last = 1000;
  return rows.map(([gap, body, up, down]) => {
    const open = last + gap;
    last = open + body;
    return c(open, Math.max(open, last) + up, Math.min(open, last) - down, last);
  });
});
const MIRROR: Record<PatternName, PatternName> = {
  Doji: 'Doji',
  Hammer: 'Shooting Star',
  'Shooting Star': 'Hammer',
  'Hanging Man': 'Inverted Hammer',
  'Inverted Hammer': 'Hanging Man',
  'Bullish Engulfing': 'Bearish Engulfing',
  'Bearish Engulfing': 'Bullish Engulfing',
};
const FLIP = { bullish: 'bearish', bearish: 'bullish', neutral: 'neutral' } as const;
const mirror = (k: Candle): Candle => c(2000 - k.open, 2000 - k.low, 2000 - k.high, 2000 - k.close);

describe('detectCandlesticks properties', () => {
  it('confidence lies in [0.5, 1] and each pattern is one of PATTERNS', () => {
    fc.assert(
      fc.property(chart, (bars) => {
        for (const d of detectCandlesticks(bars)) {
          assert.ok(d.confidence >= 0.5 && d.confidence <= 1, JSON.stringify(d));
          assert.ok(PATTERNS.includes(d.pattern));
        }
      }),
    );
  });

  it('the mirror image of a chart shows the mirror patterns, with the same confidence', () => {
    const found = new Set<PatternName>();
    fc.assert(
      fc.property(chart, (bars) => {
        const seen = detectCandlesticks(bars).map((d) => ({ ...d, pattern: MIRROR[d.pattern], direction: FLIP[d.direction] }));
        const mirrored = detectCandlesticks(bars.map(mirror));
        const order = (ds: Detection[]) => [...ds].sort((a, b) => (a.pattern < b.pattern ? -1 : 1));
        assert.deepEqual(order(mirrored), order(seen));
        for (const d of seen) found.add(d.pattern);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual([...found].sort(), [...PATTERNS].sort(), 'the runs met every pattern');
  });
});
