// Indicators per symbol and timeframe, updated once per closed bar: SMA, EMA and RSI of the
// close, and VWAP of the session. The maths is trading-signals' (a maintained, typed, ESM
// library); this module only keeps one set of them per series and says when a value is
// ready. An indicator reports nothing until it has seen enough bars (its warm-up).
import { EMA, RSI, SMA, VWAP } from 'trading-signals';
import type { Bar } from './bars.ts';

export type IndicatorName = 'SMA' | 'EMA' | 'RSI' | 'VWAP';

export interface IndicatorValue {
  name: IndicatorName;
  symbol: string;
  /** Seconds, as the bar's. */
  timeframe: number;
  value: number;
  /** Epoch milliseconds: the end of the bar it was computed on. */
  at: number;
  /** Seed 002's metadata: `{period, source}` for the averages and RSI, `{session, source}` for VWAP. */
  metadata: Record<string, string | number>;
}

export interface IndicatorOptions {
  /** @default [20] */
  sma?: readonly number[];
  /** @default [20] */
  ema?: readonly number[];
  /** @default [14] */
  rsi?: readonly number[];
  /** @default true */
  vwap?: boolean;
  /**
   * The session a bar belongs to, from its start (epoch ms): VWAP starts over when it changes.
   * @default the UTC day, "YYYY-MM-DD"
   */
  sessionOf?: (startMs: number) => string;
  /**
   * Series (symbol × timeframe) held at once; past it the least recently updated is dropped
   * and warms up again if it comes back.
   * @default 20_000
   */
  maxSeries?: number;
}

interface Periodic {
  name: 'SMA' | 'EMA' | 'RSI';
  period: number;
  indicator: SMA | EMA | RSI;
}

interface SeriesIndicators {
  periodic: Periodic[];
  vwap: { session: string; indicator: VWAP } | undefined;
}

const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

function periods(name: string, list: readonly number[] | undefined, fallback: number): number[] {
  const out = [...new Set(list ?? [fallback])];
  for (const p of out) {
    if (!Number.isInteger(p) || p < 1 || p > 10_000) throw new RangeError(`${name} periods must be whole numbers from 1 to 10000, got ${p}`);
  }
  return out;
}

export class IndicatorBook {
  readonly #sma: number[];
  readonly #ema: number[];
  readonly #rsi: number[];
  readonly #vwap: boolean;
  readonly #sessionOf: (startMs: number) => string;
  readonly #maxSeries: number;
  readonly #series = new Map<string, SeriesIndicators>();

  constructor(options: IndicatorOptions = {}) {
    this.#sma = periods('SMA', options.sma, 20);
    this.#ema = periods('EMA', options.ema, 20);
    this.#rsi = periods('RSI', options.rsi, 14);
    this.#vwap = options.vwap ?? true;
    this.#sessionOf = options.sessionOf ?? utcDay;
    this.#maxSeries = options.maxSeries ?? 20_000;
    if (!Number.isInteger(this.#maxSeries) || this.#maxSeries < 1) throw new RangeError(`maxSeries must be a whole number above 0, got ${this.#maxSeries}`);
  }

  /** Feeds one closed bar to its series; returns the values that are ready (past warm-up). */
  onBar(bar: Bar): IndicatorValue[] {
    const series = this.#seriesOf(`${bar.symbol}\u0000${bar.timeframe}`);
    const out: IndicatorValue[] = [];
    const emit = (name: IndicatorName, value: number | null, metadata: Record<string, string | number>): void => {
      if (value !== null && Number.isFinite(value)) out.push({ name, symbol: bar.symbol, timeframe: bar.timeframe, value, at: bar.end, metadata });
    };
    for (const { name, period, indicator } of series.periodic) {
      indicator.add(bar.close);
      emit(name, indicator.isStable ? indicator.getResult() : null, { period, source: 'close' });
    }
    if (this.#vwap) {
      const session = this.#sessionOf(bar.start);
      if (series.vwap === undefined || series.vwap.session !== session) series.vwap = { session, indicator: new VWAP() };
      // trading-signals skips a bar with no volume; the session's VWAP so far still stands.
      series.vwap.indicator.add({ high: bar.high, low: bar.low, close: bar.close, volume: bar.volume });
      emit('VWAP', series.vwap.indicator.getResult(), { session, source: 'typical' });
    }
    return out;
  }

  /** Forgets a symbol's series (every timeframe). */
  drop(symbol: string): void {
    for (const key of [...this.#series.keys()]) if (key.startsWith(`${symbol}\u0000`)) this.#series.delete(key);
  }

  get size(): number {
    return this.#series.size;
  }

  #seriesOf(key: string): SeriesIndicators {
    const known = this.#series.get(key);
    if (known !== undefined) {
      // Map order is the order of last use: re-inserting moves it to the back.
      this.#series.delete(key);
      this.#series.set(key, known);
      return known;
    }
    if (this.#series.size >= this.#maxSeries) {
      const oldest = this.#series.keys().next();
      if (oldest.done !== true) this.#series.delete(oldest.value);
    }
    const series: SeriesIndicators = {
      periodic: [
        ...this.#sma.map((period): Periodic => ({ name: 'SMA', period, indicator: new SMA(period) })),
        ...this.#ema.map((period): Periodic => ({ name: 'EMA', period, indicator: new EMA(period) })),
        ...this.#rsi.map((period): Periodic => ({ name: 'RSI', period, indicator: new RSI(period) })),
      ],
      vwap: undefined,
    };
    this.#series.set(key, series);
    return series;
  }
}
