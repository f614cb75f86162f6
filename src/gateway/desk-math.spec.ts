// The desk's pure parts (public/candles.js, public/positions.js): candles from trades by
// their own time, and positions with average cost and realised/unrealised P&L.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CandleSeries, candlesOf, TIMEFRAMES } from './public/candles.js';
import { PositionBook } from './public/positions.js';

const at = (s: number) => Date.UTC(2026, 0, 2, 14, 30, 0) + s * 1000;

describe('candles', () => {
  it('builds OHLC and volume per bucket of the trade time', () => {
    const s = new CandleSeries(TIMEFRAMES['5s']);
    s.add(at(0), 10, 100);
    s.add(at(1), 12, 50);
    s.add(at(4.9), 9, 10);
    s.add(at(5), 11, 1);
    assert.deepEqual(s.candles, [
      { time: at(0) / 1000, open: 10, high: 12, low: 9, close: 9, volume: 160 },
      { time: at(5) / 1000, open: 11, high: 11, low: 11, close: 11, volume: 1 },
    ]);
  });

  it('ignores trades older than the last candle, so a chart only grows at its end', () => {
    const s = new CandleSeries(60);
    s.add(at(120), 10);
    assert.equal(s.add(at(0), 99), undefined);
    assert.equal(s.candles.length, 1);
    assert.equal(s.add(Number.NaN, 1), undefined);
  });

  it('sorts trades from several reads, and keeps the newest when trimmed', () => {
    const s = candlesOf([{ t: at(61), price: 2, volume: 1 }, { t: at(0), price: 1, volume: 1 }, { t: at(125), price: 3, volume: 1 }], 60);
    assert.deepEqual(s.candles.map((c) => c.close), [1, 2, 3]);
    s.trim(2);
    assert.deepEqual(s.candles.map((c) => c.close), [2, 3]);
    assert.throws(() => new CandleSeries(0), RangeError);
  });
});

describe('positions', () => {
  it('averages the cost of buys, realises P&L on sales, and values the rest at the last price', () => {
    const book = new PositionBook();
    book.apply('AAPL', 'buy', 10, 100);
    book.apply('AAPL', 'buy', 10, 110);
    assert.deepEqual(book.get('AAPL'), { qty: 20, avg: 105, realised: 0 });
    assert.equal(book.unrealised('AAPL', 106), 20);
    book.apply('AAPL', 'sell', 5, 115);
    assert.deepEqual(book.get('AAPL'), { qty: 15, avg: 105, realised: 50 });
    book.apply('AAPL', 'sell', 15, 100);
    assert.deepEqual(book.get('AAPL'), { qty: 0, avg: 0, realised: -25 });
    assert.equal(book.unrealised('AAPL', 200), 0);
  });

  it('opens the other side at its own price when a fill crosses through zero (short P&L has the opposite sign)', () => {
    const book = new PositionBook();
    book.apply('MSFT', 'buy', 5, 10);
    book.apply('MSFT', 'sell', 8, 12);
    assert.deepEqual(book.get('MSFT'), { qty: -3, avg: 12, realised: 10 });
    assert.equal(book.unrealised('MSFT', 11), 3);
    book.apply('MSFT', 'buy', 3, 13);
    assert.deepEqual(book.get('MSFT'), { qty: 0, avg: 0, realised: 7 });
  });
});
