import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BacktestResultSchema } from '../catalogs/tickstock.ts';
import { ValidationError } from '../core/errors.ts';
import { runBacktest, type BacktestInput, type HistoricalBar } from './backtest.ts';
import { PatternEngine } from './pattern-engine.ts';

const DAY = 86_400_000;
const D0 = Date.UTC(2024, 0, 1);
type Row = [number, number, number, number];
const daily = (rows: Row[], firstDay = 0): HistoricalBar[] => rows.map(([open, high, low, close], i) => ({ start: D0 + (firstDay + i) * DAY, open, high, low, close, volume: 1000 }));
const DECLINE: Row[] = [[120, 121, 114, 115], [115, 116, 109, 110], [110, 111, 104, 105], [105, 106, 99, 100]];
const RISE: Row[] = [[80, 86, 79, 85], [85, 91, 84, 90], [90, 96, 89, 95], [95, 101, 94, 100]];
const HAMMER: Row = [100, 102, 90, 101.5];
const STAR: Row = [100, 111, 99.8, 101.5];
const job = (parameters: Record<string, unknown> = {}, patterns: string[] = []): BacktestInput['job'] => ({ symbols: ['AAPL'], start_date: '2024-01-01', end_date: '2024-12-31', patterns, parameters });
const run = (rows: Row[], parameters: Record<string, unknown> = {}, patterns: string[] = []) => runBacktest({ job: job(parameters, patterns), bars: { AAPL: daily(rows) } });

describe('runBacktest', () => {
  it('enters at the next open in the pattern direction and leaves at the close of its hold_bars-th bar', () => {
    const r = run([...DECLINE, HAMMER, [102, 104, 101, 103], [103, 106, 102, 105], [105, 106, 104, 105.5]], { hold_bars: 2 });
    const qty = (100_000 * 0.1) / 102;
    assert.equal(r.trades.length, 1);
    assert.deepEqual(r.trades[0], {
      symbol: 'AAPL',
      pattern: 'Hammer',
      side: 'long',
      confidence: r.trades[0]?.confidence,
      entry_time: '2024-01-06T00:00:00.000Z',
      entry_price: 102,
      exit_time: '2024-01-07T00:00:00.000Z',
      exit_price: 105,
      exit_reason: 'hold',
      quantity: qty,
      pnl: Math.round(qty * 3 * 100) / 100,
      return_pct: Math.round((3 / 102) * 100 * 10_000) / 10_000,
    });
    assert.equal(r.summary.total_pnl, 294.12);
    assert.equal(r.summary.final_capital, 100_294.12);
    assert.equal(r.summary.hit_rate, 1);
    assert.deepEqual(r.by_pattern.Hammer, { detections: 1, trades: 1, wins: 1, losses: 0, hit_rate: 1, total_pnl: 294.12, avg_return_pct: 2.9412 });
    assert.deepEqual(r.by_symbol.AAPL, { bars: 8, detections: 1, trades: 1, total_pnl: 294.12 });
  });

  it('leaves at the stop, or at the open when the bar gaps through it', () => {
    const atStop = run([...DECLINE, HAMMER, [102, 103, 95, 96]], { stop_loss: 0.05 });
    assert.deepEqual([atStop.trades[0]?.exit_reason, atStop.trades[0]?.exit_price], ['stop', 102 * 0.95]);
    assert.equal(atStop.summary.total_pnl, -500);
    assert.equal(atStop.summary.max_drawdown, 500);
    assert.equal(atStop.summary.max_drawdown_pct, 0.5);
    const gap = run([...DECLINE, HAMMER, [102, 103, 100, 101], [95, 96, 93, 94]], { hold_bars: 3 });
    assert.deepEqual([gap.trades[0]?.exit_reason, gap.trades[0]?.exit_price], ['stop', 95]);
    const end = run([...DECLINE, HAMMER, [102, 103, 100, 101]], { hold_bars: 10 });
    assert.deepEqual([end.trades[0]?.exit_reason, end.trades[0]?.exit_price], ['end_of_data', 101]);
  });

  it('sells short on a bearish pattern unless allow_short is false; neutral ones are counted, never traded', () => {
    const rows: Row[] = [...RISE, STAR, [101, 102, 97, 98], [98, 99, 96, 97]];
    const short = run(rows, { hold_bars: 1 });
    assert.deepEqual([short.trades[0]?.pattern, short.trades[0]?.side, short.trades[0]?.exit_price], ['Shooting Star', 'short', 98]);
    assert.ok((short.trades[0]?.pnl ?? 0) > 0);
    assert.equal(run(rows, { allow_short: false }).summary.total_trades, 0);
    const doji = run([[100, 105, 95, 100], [100, 101, 99, 100.5]]);
    assert.deepEqual([doji.summary.detections, doji.summary.total_trades, doji.by_pattern.Doji?.detections], [1, 0, 1]);
  });

  it('trades only the patterns the job names, above min_confidence', () => {
    const rows: Row[] = [...DECLINE, HAMMER, [102, 104, 101, 103], [103, 106, 102, 105]];
    const dojiOnly = run(rows, {}, ['doji']);
    assert.deepEqual(dojiOnly.patterns, ['Doji']);
    assert.equal(dojiOnly.summary.total_trades, 0);
    assert.equal(run(rows, { min_confidence: 0.99 }, ['Hammer']).summary.total_trades, 0);
  });

  it('keeps to the date range, skips bad bars, and lists symbols without data', () => {
    const bars = [...daily(DECLINE, -10), ...daily([...DECLINE, HAMMER, [102, 104, 101, 103]]), { start: D0 + 20 * DAY, open: 1, high: 0.5, low: 1, close: 1, volume: 1 }];
    const r = runBacktest({ job: { ...job(), symbols: ['AAPL', 'MSFT'] }, bars: { AAPL: [...bars].reverse() } });
    assert.equal(r.summary.bars, 6);
    assert.equal(r.bars_skipped, 1);
    assert.deepEqual(r.missing_symbols, ['MSFT']);
    assert.equal(r.summary.total_trades, 1);
    assert.equal(runBacktest({ job: { ...job(), end_date: '2024-01-03' }, bars: { AAPL: bars } }).summary.bars, 3);
  });

  it('refuses unknown patterns, bad parameters and a backward date range', () => {
    assert.throws(() => run([], {}, ['Morning Star']), ValidationError);
    assert.throws(() => run([], { position_size: 2 }), (e: unknown) => e instanceof ValidationError && /parameters.position_size/.test(e.message));
    assert.throws(() => runBacktest({ job: { ...job(), start_date: '2024-02-01', end_date: '2024-01-01' }, bars: {} }), ValidationError);
  });

  it('reports progress from 0 to 1 without going back, and stops when aborted', () => {
    const seen: number[] = [];
    const rows: Row[] = Array.from({ length: 3000 }, (_, i) => [100 + (i % 7), 110, 90, 100 + (i % 5)]);
    runBacktest({ job: { ...job(), symbols: ['A', 'B'] }, bars: { A: daily(rows), B: daily(rows) }, onProgress: (f) => seen.push(f) });
    assert.equal(seen[0], 0);
    assert.equal(seen.at(-1), 1);
    assert.ok(seen.every((f, i) => i === 0 || f > (seen[i - 1] as number)));
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    assert.throws(() => runBacktest({ job: job(), bars: {}, signal: controller.signal }), /cancelled/);
  });
});

// Daily bars as a walk in cents; shadows often none or short, so every pattern turns up.
const shadow = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 300 }));
const walk = fc.array(fc.tuple(fc.integer({ min: -100, max: 100 }), fc.integer({ min: -400, max: 400 }), shadow, shadow), { minLength: 20, maxLength: 120 }).map((steps) => {
  let last = 10_000;
  return steps.map(([gap, body, up, down], i): HistoricalBar => {
    const open = Math.max(1000, last + gap);
    last = Math.max(1000, open + body);
    return { start: D0 + i * DAY, open: open / 100, high: (Math.max(open, last) + up) / 100, low: Math.max(1, Math.min(open, last) - down) / 100, close: last / 100, volume: 100 };
  });
});

describe('runBacktest properties', () => {
  it('totals agree with the trades, the result is JSON-safe and fits the results channel, and a run repeats exactly', () => {
    fc.assert(
      fc.property(walk, walk, fc.record({ hold_bars: fc.integer({ min: 1, max: 8 }), stop_loss: fc.double({ min: 0.01, max: 0.5, noNaN: true }), allow_short: fc.boolean() }), (a, b, parameters) => {
        const input: BacktestInput = { job: { ...job(parameters), symbols: ['A', 'B'] }, bars: { A: a, B: b } };
        const r = runBacktest(input);
        assert.deepEqual(runBacktest(input), r);
        const s = r.summary;
        assert.equal(s.total_trades, r.trades.length);
        assert.equal(s.winning_trades + s.losing_trades, s.total_trades);
        assert.ok(s.hit_rate >= 0 && s.hit_rate <= 1);
        assert.equal(Object.values(r.by_pattern).reduce((n, p) => n + p.trades, 0), s.total_trades);
        assert.equal(Object.values(r.by_pattern).reduce((n, p) => n + p.detections, 0), s.detections);
        assert.ok(Math.abs(r.trades.reduce((n, t) => n + t.pnl, 0) - s.total_pnl) < 0.01 * (r.trades.length + 1));
        assert.ok(Math.abs(s.final_capital - 100_000 - s.total_pnl) < 0.011);
        assert.ok(s.max_drawdown >= 0);
        for (const t of r.trades) assert.ok(t.entry_time <= t.exit_time && t.quantity > 0);
        assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
        assert.ok(BacktestResultSchema.safeParse({ job_id: 'bt_1', status: 'completed', results: r, timestamp: 1 }).success);
      }),
      { numRuns: 60 },
    );
  });

  it('finds what the live engine finds on the same bars', () => {
    fc.assert(
      fc.property(walk, (bars) => {
        const engine = new PatternEngine({ timeframes: [86_400], indicators: { sma: [], ema: [], rsi: [], vwap: false } });
        for (const b of bars) engine.onBar({ ...b, symbol: 'A', timeframe: 86_400, end: b.start + DAY, ticks: 1 });
        const r = runBacktest({ job: { ...job(), symbols: ['A'] }, bars: { A: bars } });
        assert.equal(r.summary.detections, engine.stats().patternsDetected);
      }),
      { numRuns: 60 },
    );
  });
});
