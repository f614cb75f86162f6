// Types of candles.js (the desk's candle building), for its spec and TypeScript users.
export declare const TIMEFRAMES: Readonly<Record<'5s' | '1m' | '5m', number>>;
export interface Candle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}
export declare class CandleSeries {
  constructor(seconds: number);
  readonly seconds: number;
  readonly candles: Candle[];
  add(timeMs: number, price: number, volume?: number): Candle | undefined;
  trim(max: number): void;
}
export declare function candlesOf(trades: { t: number; price: number; volume: number }[], seconds: number): CandleSeries;
