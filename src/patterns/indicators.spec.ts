import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Bar } from './bars.ts';
import { IndicatorBook, type IndicatorValue } from './indicators.ts';

const DAY = 86_400_000;
const D0 = Date.UTC(2024, 0, 2);

function bar(i: number, close: number, extra: Partial<Bar> = {}): Bar {
  return { symbol: 'AAPL', timeframe: 60, start: D0 + i * 60_000, end: D0 + (i + 1) * 60_000, open: close, high: close + 1, low: close - 1, close, volume: 100, ticks: 1, ...extra };
}

const pick = (values: IndicatorValue[], name: string) => values.find((v) => v.name === name);
const near = (a: number | undefined, b: number, what: string) => assert.ok(a !== undefined && Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

describe('IndicatorBook', () => {
  it('reports SMA and EMA once warmed up, with the seed-002 metadata', () => {
    const book = new IndicatorBook({ sma: [3], ema: [3], rsi: [], vwap: false });
    assert.deepEqual(book.onBar(bar(0, 1)), []);
    assert.deepEqual(book.onBar(bar(1, 2)), []);
    const third = book.onBar(bar(2, 3));
    near(pick(third, 'SMA')?.value, 2, 'SMA(3) of 1,2,3');
    assert.deepEqual(pick(third, 'SMA')?.metadata, { period: 3, source: 'close' });
    assert.equal(pick(third, 'SMA')?.at, bar(2, 3).end);
    // trading-signals seeds the EMA with the first close: 1, then 1.5, then 2.25 (k = 2/(3+1)).
    near(pick(third, 'EMA')?.value, 2.25, 'EMA(3)');
    near(pick(book.onBar(bar(3, 4)), 'SMA')?.value, 3, 'SMA(3) of 2,3,4');
  });

  it('RSI is 100 on a steady rise and lies in [0, 100]', () => {
    const book = new IndicatorBook({ sma: [], ema: [], rsi: [5], vwap: false });
    let last: IndicatorValue[] = [];
    for (let i = 0; i < 8; i++) last = book.onBar(bar(i, 10 + i));
    assert.equal(pick(last, 'RSI')?.value, 100);
    assert.deepEqual(pick(last, 'RSI')?.metadata, { period: 5, source: 'close' });
  });

  it('VWAP is Σ(typical price × volume) / Σ volume over the session, and starts over with the next UTC day', () => {
    const book = new IndicatorBook({ sma: [], ema: [], rsi: [] });
    book.onBar(bar(0, 10, { high: 12, low: 9, volume: 100 })); // typical 31/3
    const second = pick(book.onBar(bar(1, 20, { high: 21, low: 19, volume: 300 })), 'VWAP');
    near(second?.value, ((31 / 3) * 100 + 20 * 300) / 400, 'VWAP');
    assert.deepEqual(second?.metadata, { session: '2024-01-02', source: 'typical' });
    const nextDay = pick(book.onBar(bar(DAY / 60_000, 50, { high: 50, low: 50, volume: 10 })), 'VWAP');
    assert.equal(nextDay?.value, 50);
    assert.equal(nextDay?.metadata.session, '2024-01-03');
  });

  it('keeps series apart per symbol and timeframe, and holds at most maxSeries', () => {
    const book = new IndicatorBook({ sma: [2], ema: [], rsi: [], vwap: false, maxSeries: 2 });
    book.onBar(bar(0, 1));
    book.onBar(bar(0, 100, { timeframe: 5 }));
    const a = book.onBar(bar(1, 3));
    near(pick(a, 'SMA')?.value, 2, 'AAPL 1min');
    book.onBar(bar(0, 7, { symbol: 'MSFT' }));
    assert.equal(book.size, 2, 'the AAPL 5 s series, least recently used, was dropped');
    assert.deepEqual(book.onBar(bar(1, 100, { timeframe: 5 })), [], 'and warms up again');
    book.drop('AAPL');
    assert.equal(book.size, 1);
  });

  it('refuses bad periods', () => {
    assert.throws(() => new IndicatorBook({ sma: [0] }), RangeError);
    assert.throws(() => new IndicatorBook({ rsi: [2.5] }), RangeError);
  });

  it('SMA(n) is the mean of the last n closes; RSI stays in [0, 100]; VWAP stays within the session low and high', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 10 }), (cents, n) => {
        const book = new IndicatorBook({ sma: [n], ema: [n], rsi: [n] });
        const closes = cents.map((c) => c / 100);
        closes.forEach((close, i) => {
          const out = book.onBar(bar(i, close, { high: close + 0.5, low: close - 0.5 }));
          const sma = pick(out, 'SMA');
          if (i + 1 >= n) {
            const window = closes.slice(i + 1 - n, i + 1);
            assert.ok(sma !== undefined && Math.abs(sma.value - window.reduce((s, c) => s + c, 0) / n) < 1e-9);
          } else assert.equal(sma, undefined);
          const rsi = pick(out, 'RSI');
          if (rsi !== undefined) assert.ok(rsi.value >= 0 && rsi.value <= 100);
          const vwap = pick(out, 'VWAP')?.value ?? Number.NaN;
          const seen = closes.slice(0, i + 1);
          assert.ok(vwap >= Math.min(...seen) - 0.5 - 1e-9 && vwap <= Math.max(...seen) + 0.5 + 1e-9);
        });
      }),
    );
  });
});
