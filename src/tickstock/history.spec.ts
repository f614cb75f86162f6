// The backtest worker's bars: the simulated history is the same for the same seed, symbol
// and day whatever range asks for it, coarsens to stay under the cap, and a replay file's
// trades become bars of the job's symbols and dates only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HISTORY_DEFAULTS, replayHistory, simulatedHistory } from './history.ts';

const job = (start_date: string, end_date: string, symbols = ['AAPL']) => ({ symbols, start_date, end_date });

describe('simulatedHistory', () => {
  it('gives one session of 1-minute bars per weekday, 14:30 to 21:00 UTC', () => {
    const h = simulatedHistory(job('2024-01-05', '2024-01-08')); // Friday to Monday
    const bars = h.bars.AAPL ?? [];
    assert.equal(h.timeframe, 60);
    assert.equal(bars.length, 2 * HISTORY_DEFAULTS.sessionMinutes);
    assert.equal(new Date(bars[0]!.start).toISOString(), '2024-01-05T14:30:00.000Z');
    assert.equal(new Date(bars.at(-1)!.start).toISOString(), '2024-01-08T20:59:00.000Z');
    for (const b of bars) assert.ok(b.low > 0 && b.low <= Math.min(b.open, b.close) && b.high >= Math.max(b.open, b.close) && b.volume > 0);
  });

  it('is deterministic: same seed, symbol and day give the same bars, whatever the range or the other symbols', () => {
    const wide = simulatedHistory(job('2024-01-01', '2024-01-31', ['AAPL', 'MSFT']));
    const day = simulatedHistory(job('2024-01-10', '2024-01-10'));
    const start = Date.parse('2024-01-10T00:00:00Z');
    assert.deepEqual(day.bars.AAPL, wide.bars.AAPL?.filter((b) => b.start >= start && b.start < start + 86_400_000));
    assert.notDeepEqual(wide.bars.AAPL?.slice(0, 10), wide.bars.MSFT?.slice(0, 10));
    assert.notDeepEqual(simulatedHistory(job('2024-01-10', '2024-01-10'), { seed: 7 }).bars.AAPL, day.bars.AAPL);
  });

  it('coarsens a long range to stay under the cap; each coarse bar aggregates its minutes', () => {
    const year = simulatedHistory(job('2024-01-01', '2024-12-31'));
    assert.equal(year.timeframe, 5 * 60);
    assert.ok((year.bars.AAPL?.length ?? 0) <= HISTORY_DEFAULTS.maxBarsPerSymbol);
    const minutes = simulatedHistory(job('2024-03-04', '2024-03-04')).bars.AAPL ?? [];
    const coarse = simulatedHistory(job('2024-03-04', '2024-03-04'), { maxBarsPerSymbol: 13 }).bars.AAPL ?? [];
    assert.equal(coarse.length, 390 / 30);
    const first = minutes.slice(0, 30);
    assert.deepEqual(coarse[0], { start: first[0]!.start, open: first[0]!.open, close: first[29]!.close, high: Math.max(...first.map((b) => b.high)), low: Math.min(...first.map((b) => b.low)), volume: first.reduce((s, b) => s + b.volume, 0) });
    assert.throws(() => simulatedHistory(job('2000-01-01', '2024-12-31'), { maxBarsPerSymbol: 100 }), /too long/);
  });
});

describe('replayHistory', () => {
  it("makes 1-minute bars of the file's trades, for the job's symbols and dates", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickbus-history-'));
    try {
      const file = join(dir, 'trades.csv');
      const lines = ['timestamp,symbol,price,volume', '2024-01-02T14:30:05Z,AAPL,100,10', '2024-01-02T14:30:40Z,AAPL,101,5', '2024-01-02T14:31:10Z,AAPL,99.5,7', '2024-01-02T14:31:20Z,MSFT,300,1', 'garbage', '2024-01-09T14:30:00Z,AAPL,120,1'];
      writeFileSync(file, `${lines.join('\n')}\n`);
      const h = replayHistory(file, job('2024-01-02', '2024-01-03'));
      assert.equal(h.timeframe, 60);
      assert.deepEqual(h.bars.AAPL, [
        { start: Date.parse('2024-01-02T14:30:00Z'), open: 100, high: 101, low: 100, close: 101, volume: 15 },
        { start: Date.parse('2024-01-02T14:31:00Z'), open: 99.5, high: 99.5, low: 99.5, close: 99.5, volume: 7 },
      ]);
      assert.deepEqual(h.source, { source: 'replay', file, bar_minutes: 1, trades: 5, used: 3, malformed: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
