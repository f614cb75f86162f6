// Types of positions.js (the desk's positions and P&L), for its spec and TypeScript users.
export interface Position {
  qty: number;
  avg: number;
  realised: number;
}
export declare class PositionBook {
  readonly bySymbol: Map<string, Position>;
  apply(symbol: string, side: 'buy' | 'sell', qty: number, price: number): Position;
  get(symbol: string): Position;
  unrealised(symbol: string, last: number | undefined): number;
}
