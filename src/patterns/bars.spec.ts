import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BarAggregator, tickTimeMs, timeframeLabel, type Bar, type Tick } from './bars.ts';

/** A whole UTC minute (2023-11-14T22:13:00Z), in seconds. */
const MIN0 = Math.floor(1_700_000_000 / 60) * 60;
const tick = (symbol: string, price: number, volume: number, seconds: number): Tick => ({ symbol, price, volume, timestamp: seconds });

describe('BarAggregator', () => {
  it('closes a bar when a tick falls into a later bucket, with open, high, low, close and volume', () => {
    const agg = new BarAggregator({ timeframes: [60] });
    assert.deepEqual(agg.onTick(tick('AAPL', 10, 1, MIN0 + 1)).closed, []);
    agg.onTick(tick('AAPL', 12, 2, MIN0 + 20));
    agg.onTick(tick('AAPL', 9, 3, MIN0 + 40));
    agg.onTick(tick('AAPL', 11, 4, MIN0 + 59.999));
    const { closed } = agg.onTick(tick('AAPL', 20, 5, MIN0 + 60));
    assert.deepEqual(closed, [{ symbol: 'AAPL', timeframe: 60, start: MIN0 * 1000, end: (MIN0 + 60) * 1000, open: 10, high: 12, low: 9, close: 11, volume: 10, ticks: 4 }]);
    assert.equal(agg.openBar('AAPL', 60)?.open, 20);
  });

  it('keeps one series per timeframe, and makes no bar for a bucket without ticks', () => {
    const agg = new BarAggregator({ timeframes: [60, 5] });
    assert.deepEqual(agg.timeframes, [5, 60]);
    agg.onTick(tick('MSFT', 1, 1, MIN0));
    agg.onTick(tick('MSFT', 2, 1, MIN0 + 6));
    const closed = agg.onTick(tick('MSFT', 3, 1, MIN0 + 130)).closed;
    assert.deepEqual(closed.map((b) => [b.timeframe, b.start / 1000 - MIN0]), [[5, 5], [60, 0]]);
  });

  it('flush(now) closes only the bars whose bucket has ended, and a tick into a flushed bucket is late', () => {
    const agg = new BarAggregator({ timeframes: [5, 60] });
    agg.onTick(tick('AAPL', 10, 1, MIN0 + 1));
    agg.onTick(tick('MSFT', 20, 1, MIN0 + 3));
    assert.deepEqual(agg.flush((MIN0 + 4) * 1000), []);
    const flushed = agg.flush((MIN0 + 5) * 1000);
    assert.deepEqual(flushed.map((b) => `${b.symbol}/${b.timeframe}`), ['AAPL/5', 'MSFT/5']);
    const late = agg.onTick(tick('AAPL', 11, 1, MIN0 + 4));
    assert.deepEqual(late.lateFor, [5], 'late for the closed 5 s bar, still merged into the open minute');
    assert.equal(late.rejected, undefined);
    assert.equal(agg.openBar('AAPL', 60)?.volume, 2);
    assert.equal(agg.stats().lateMerges, 1);
  });

  it('counts a tick older than the open bucket as late and merges it nowhere', () => {
    const agg = new BarAggregator({ timeframes: [60] });
    agg.onTick(tick('AAPL', 10, 1, MIN0 + 61));
    const outcome = agg.onTick(tick('AAPL', 99, 1, MIN0 + 10));
    assert.equal(outcome.rejected, 'late');
    assert.equal(agg.openBar('AAPL', 60)?.high, 10);
    assert.equal(agg.stats().rejected.late, 1);
  });

  it('takes a tick out of order within its own bucket without moving open or close wrongly', () => {
    const agg = new BarAggregator({ timeframes: [60] });
    agg.onTick(tick('AAPL', 10, 1, MIN0 + 30));
    agg.onTick(tick('AAPL', 8, 1, MIN0 + 10));
    agg.onTick(tick('AAPL', 12, 1, MIN0 + 50));
    agg.onTick(tick('AAPL', 11, 1, MIN0 + 40));
    const bar = agg.openBar('AAPL', 60);
    assert.deepEqual([bar?.open, bar?.close, bar?.low, bar?.high], [8, 12, 8, 12]);
  });

  it('refuses malformed ticks and counts each reason', () => {
    const agg = new BarAggregator({ timeframes: [60] });
    const bad: [unknown, string][] = [
      [{ symbol: 'aapl', price: 1, volume: 1, timestamp: MIN0 }, 'invalid_symbol'],
      [{ symbol: 'AAPL', price: Number.NaN, volume: 1, timestamp: MIN0 }, 'invalid_price'],
      [{ symbol: 'AAPL', price: -1, volume: 1, timestamp: MIN0 }, 'invalid_price'],
      [{ symbol: 'AAPL', price: 0, volume: 1, timestamp: MIN0 }, 'invalid_price'],
      [{ symbol: 'AAPL', price: '1', volume: 1, timestamp: MIN0 }, 'invalid_price'],
      [{ symbol: 'AAPL', price: 1, volume: -1, timestamp: MIN0 }, 'invalid_volume'],
      [{ symbol: 'AAPL', price: 1, volume: Infinity, timestamp: MIN0 }, 'invalid_volume'],
      [{ symbol: 'AAPL', price: 1, volume: 1, timestamp: 'yesterday' }, 'invalid_timestamp'],
      [{ symbol: 'AAPL', price: 1, volume: 1, timestamp: MIN0 * 1000 }, 'invalid_timestamp'],
      [{ symbol: 'AAPL', price: 1, volume: 1 }, 'invalid_timestamp'],
    ];
    for (const [t, reason] of bad) assert.equal(agg.onTick(t as Tick).rejected, reason, JSON.stringify(t));
    const { rejected, accepted } = agg.stats();
    assert.equal(accepted, 0);
    assert.deepEqual(rejected, { invalid_symbol: 1, invalid_price: 4, invalid_volume: 2, invalid_timestamp: 3, late: 0, symbols_full: 0 });
  });

  it('holds at most maxSymbols: an idle symbol makes room, and a new one is refused while all have bars open', () => {
    const agg = new BarAggregator({ timeframes: [60], maxSymbols: 2 });
    agg.onTick(tick('A', 1, 1, MIN0));
    agg.onTick(tick('B', 1, 1, MIN0));
    assert.equal(agg.onTick(tick('C', 1, 1, MIN0)).rejected, 'symbols_full');
    agg.flush((MIN0 + 60) * 1000);
    assert.equal(agg.onTick(tick('C', 1, 1, MIN0 + 60)).rejected, undefined);
    assert.equal(agg.stats().symbols, 2);
    assert.equal(agg.stats().rejected.symbols_full, 1);
  });

  it('refuses a bad configuration', () => {
    assert.throws(() => new BarAggregator({ timeframes: [] }), RangeError);
    assert.throws(() => new BarAggregator({ timeframes: [1.5] }), RangeError);
    assert.throws(() => new BarAggregator({ timeframes: [60], maxSymbols: 0 }), RangeError);
  });

  it('reads both timestamp forms of the catalog, and names timeframes as TickStock does', () => {
    assert.equal(tickTimeMs(1693123456.789), 1693123456789);
    assert.equal(tickTimeMs('2023-08-27T08:04:16.789Z'), 1693123456789);
    assert.equal(tickTimeMs(-1), undefined);
    assert.deepEqual([5, 60, 300, 3600, 86400].map(timeframeLabel), ['5s', '1min', '5min', '1h', '1d']);
  });
});

// Ticks in time order for a few symbols; prices on a cent grid so sums compare exactly.
const tickStream = fc
  .array(
    fc.record({
      symbol: fc.constantFrom('A', 'B', 'C'),
      cents: fc.integer({ min: 1, max: 100_000 }),
      volume: fc.integer({ min: 0, max: 1000 }),
      step: fc.integer({ min: 0, max: 20_000 }),
    }),
    { maxLength: 200 },
  )
  .map((rows) => {
    let at = MIN0 * 1000;
    return rows.map((r) => {
      at += r.step;
      return { symbol: r.symbol, price: r.cents / 100, volume: r.volume, timestamp: at / 1000 } satisfies Tick;
    });
  });

function runAll(ticks: readonly Tick[], timeframes = [5, 60]): Bar[] {
  const agg = new BarAggregator({ timeframes });
  return [...agg.onTicks(ticks), ...agg.flush(Number.MAX_SAFE_INTEGER)];
}

const key = (b: Bar) => `${b.symbol}/${b.timeframe}/${b.start}`;
const sorted = (bars: Bar[]) => [...bars].sort((a, b) => (key(a) < key(b) ? -1 : 1));

describe('BarAggregator properties', () => {
  it('conserves volume and ticks per timeframe, and high ≥ max(open, close) ≥ min(open, close) ≥ low', () => {
    fc.assert(
      fc.property(tickStream, (ticks) => {
        const bars = runAll(ticks);
        for (const tf of [5, 60]) {
          const mine = bars.filter((b) => b.timeframe === tf);
          assert.equal(mine.reduce((s, b) => s + b.volume, 0), ticks.reduce((s, t) => s + t.volume, 0));
          assert.equal(mine.reduce((s, b) => s + b.ticks, 0), ticks.length);
        }
        for (const b of bars) {
          assert.ok(b.high >= Math.max(b.open, b.close) && Math.min(b.open, b.close) >= b.low, JSON.stringify(b));
          assert.equal(b.end - b.start, b.timeframe * 1000);
        }
      }),
    );
  });

  it('gives the same bars however ticks are chunked, and however symbols interleave', () => {
    fc.assert(
      fc.property(tickStream, fc.array(fc.nat(), { maxLength: 10 }), (ticks, cuts) => {
        const whole = runAll(ticks);
        const agg = new BarAggregator({ timeframes: [5, 60] });
        const points = [...new Set(cuts.map((c) => c % (ticks.length + 1)))].sort((a, b) => a - b);
        const chunked: Bar[] = [];
        let from = 0;
        for (const to of [...points, ticks.length]) {
          chunked.push(...agg.onTicks(ticks.slice(from, to)));
          from = to;
        }
        chunked.push(...agg.flush(Number.MAX_SAFE_INTEGER));
        assert.deepEqual(chunked, whole);
        const bySymbol = ['A', 'B', 'C'].flatMap((s) => ticks.filter((t) => t.symbol === s));
        assert.deepEqual(sorted(runAll(bySymbol)), sorted(whole));
      }),
    );
  });

  it('flushing as time moves forward changes when bars come out, never which', () => {
    fc.assert(
      fc.property(tickStream, fc.array(fc.boolean(), { maxLength: 200 }), (ticks, flushAfter) => {
        const agg = new BarAggregator({ timeframes: [5, 60] });
        const out: Bar[] = [];
        ticks.forEach((t, i) => {
          out.push(...agg.onTick(t).closed);
          if (flushAfter[i] === true) out.push(...agg.flush(tickTimeMs(t.timestamp) ?? 0));
        });
        out.push(...agg.flush(Number.MAX_SAFE_INTEGER));
        assert.deepEqual(sorted(out), sorted(runAll(ticks)));
        assert.equal(agg.stats().rejected.late, 0);
      }),
    );
  });
});
