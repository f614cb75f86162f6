// Positions and P&L from fills, by the average-cost method: pure code (no DOM), shared by
// the desk and its spec. A fill that adds to a position moves its average price; one that
// reduces it realises (price − average) per share; one that crosses through zero opens the
// other side at its own price.

export class PositionBook {
  constructor() {
    /** @type {Map<string, { qty: number, avg: number, realised: number }>} */
    this.bySymbol = new Map();
  }

  /**
   * One fill: `qty` shares (positive), bought or sold at `price`.
   * @param {string} symbol @param {'buy' | 'sell'} side @param {number} qty @param {number} price
   */
  apply(symbol, side, qty, price) {
    if (!(qty > 0) || !Number.isFinite(price)) return this.get(symbol);
    const p = this.bySymbol.get(symbol) ?? { qty: 0, avg: 0, realised: 0 };
    const signed = side === 'buy' ? qty : -qty;
    if (p.qty === 0 || Math.sign(p.qty) === Math.sign(signed)) {
      p.avg = (p.avg * Math.abs(p.qty) + price * qty) / (Math.abs(p.qty) + qty);
      p.qty += signed;
    } else {
      const closing = Math.min(qty, Math.abs(p.qty));
      p.realised += closing * (price - p.avg) * Math.sign(p.qty);
      const before = p.qty;
      p.qty += signed;
      if (p.qty === 0) p.avg = 0;
      else if (Math.sign(p.qty) !== Math.sign(before)) p.avg = price;
    }
    this.bySymbol.set(symbol, p);
    return p;
  }

  /** @param {string} symbol */
  get(symbol) {
    return this.bySymbol.get(symbol) ?? { qty: 0, avg: 0, realised: 0 };
  }

  /** Unrealised P&L of a symbol's position at the last price. @param {string} symbol @param {number | undefined} last */
  unrealised(symbol, last) {
    const p = this.get(symbol);
    if (p.qty === 0 || !Number.isFinite(last)) return 0;
    return (last - p.avg) * p.qty;
  }
}
