// OHLC candles with volume, built from trades: pure code (no DOM), shared by the desk and
// its spec. A trade falls in the bucket of its own time (the feed's timestamp), so candles
// built from history and from live trades agree.

/** The timeframes the desk offers: label → seconds. */
export const TIMEFRAMES = Object.freeze({ '5s': 5, '1m': 60, '5m': 300 });

/**
 * Candles of one timeframe, oldest first. `time` is the bucket's start in Unix seconds (what
 * lightweight-charts takes).
 */
export class CandleSeries {
  /** @param {number} seconds */
  constructor(seconds) {
    if (!(Number.isInteger(seconds) && seconds > 0)) throw new RangeError(`a timeframe is a whole number of seconds, got ${seconds}`);
    this.seconds = seconds;
    /** @type {{ time: number, open: number, high: number, low: number, close: number, volume: number }[]} */
    this.candles = [];
  }

  /**
   * Adds a trade. Returns the candle it changed (a new one, or the last one updated), or
   * undefined for a trade older than the last candle (a late or replayed duplicate): candles
   * only grow at their end, as a chart's update() requires.
   * @param {number} timeMs @param {number} price @param {number} [volume]
   */
  add(timeMs, price, volume = 0) {
    if (!Number.isFinite(timeMs) || !Number.isFinite(price)) return undefined;
    const time = Math.floor(timeMs / 1000 / this.seconds) * this.seconds;
    const last = this.candles[this.candles.length - 1];
    if (last && time < last.time) return undefined;
    const size = Number.isFinite(volume) && volume > 0 ? volume : 0;
    if (last && time === last.time) {
      last.high = Math.max(last.high, price);
      last.low = Math.min(last.low, price);
      last.close = price;
      last.volume += size;
      return last;
    }
    const candle = { time, open: price, high: price, low: price, close: price, volume: size };
    this.candles.push(candle);
    return candle;
  }

  /** Keeps the newest `max` candles. @param {number} max */
  trim(max) {
    if (this.candles.length > max) this.candles.splice(0, this.candles.length - max);
  }
}

/**
 * Candles of trades given in any order (history arrives oldest first, but a page may hold
 * trades from several reads).
 * @param {{ t: number, price: number, volume: number }[]} trades @param {number} seconds
 */
export function candlesOf(trades, seconds) {
  const series = new CandleSeries(seconds);
  for (const trade of [...trades].sort((a, b) => a.t - b.t)) series.add(trade.t, trade.price, trade.volume);
  return series;
}
