// The simulated execution venue: fills market orders at the current simulated price and
// rests limit orders until the price crosses them. Order objects and events follow
// Alpaca's shapes (amounts as strings), so bots see the same thing as with the real venue.
import { randomUUID } from 'node:crypto';
import type { CancelRequest, OrderEvent, OrderRequest } from './feed.ts';

interface RestingOrder {
  readonly request: OrderRequest;
  readonly order: Record<string, unknown>;
}

export class SimVenue {
  readonly #resting = new Map<string, RestingOrder[]>();
  readonly #clientIds = new Set<string>();

  private readonly emit: (event: OrderEvent) => void | Promise<void>;

  constructor(emit: (event: OrderEvent) => void | Promise<void>) {
    this.emit = emit;
  }

  /** Accepts an order; `price` is the symbol's current simulated price. */
  async place(request: OrderRequest, price: number): Promise<void> {
    const now = new Date().toISOString();
    const order: Record<string, unknown> = {
      id: randomUUID(),
      client_order_id: request.client_order_id,
      symbol: request.symbol,
      asset_class: 'us_equity',
      side: request.side,
      qty: String(request.qty),
      filled_qty: '0',
      filled_avg_price: null,
      type: request.type,
      order_type: request.type,
      time_in_force: request.time_in_force,
      limit_price: request.limit_price === undefined ? null : String(request.limit_price),
      status: 'new',
      created_at: now,
      updated_at: now,
      submitted_at: now,
      filled_at: null,
      canceled_at: null,
    };
    if (this.#clientIds.has(request.client_order_id)) {
      await this.#event('rejected', { ...order, status: 'rejected' }, 'client_order_id must be unique');
      return;
    }
    this.#clientIds.add(request.client_order_id);
    await this.#event('new', order);
    if (this.#crosses(request, price)) {
      await this.#fill(order, price);
      return;
    }
    if (request.time_in_force === 'ioc' || request.time_in_force === 'fok') {
      await this.#event('canceled', { ...order, status: 'canceled', canceled_at: new Date().toISOString() }, 'not immediately fillable');
      return;
    }
    const list = this.#resting.get(request.symbol) ?? [];
    list.push({ request, order });
    this.#resting.set(request.symbol, list);
  }

  /**
   * Cancels a resting order: `canceled`; one that is not resting (filled, canceled, never
   * placed here) gets `order_cancel_rejected` with the reason, as Alpaca answers.
   */
  async cancel(request: CancelRequest): Promise<void> {
    const list = this.#resting.get(request.symbol) ?? [];
    const at = list.findIndex((r) => r.request.client_order_id === request.client_order_id);
    const resting = list[at];
    if (!resting) {
      const known = this.#clientIds.has(request.client_order_id);
      const order = { client_order_id: request.client_order_id, symbol: request.symbol, status: known ? 'closed' : 'unknown' };
      await this.#event('order_cancel_rejected', order, known ? 'the order is not open (filled or canceled already)' : 'no such order at this venue');
      return;
    }
    list.splice(at, 1);
    if (list.length === 0) this.#resting.delete(request.symbol);
    const now = new Date().toISOString();
    await this.#event('canceled', { ...resting.order, status: 'canceled', canceled_at: now, updated_at: now });
  }

  /** Fills the resting orders of `symbol` the price crosses; undefined (no promise, no wait) when none rest. */
  onPrice(symbol: string, price: number): Promise<void> | undefined {
    const list = this.#resting.get(symbol);
    return list ? this.#cross(symbol, list, price) : undefined;
  }

  async #cross(symbol: string, list: RestingOrder[], price: number): Promise<void> {
    const keep: RestingOrder[] = [];
    for (const resting of list) {
      if (this.#crosses(resting.request, price)) await this.#fill(resting.order, resting.request.limit_price ?? price);
      else keep.push(resting);
    }
    if (keep.length) this.#resting.set(symbol, keep);
    else this.#resting.delete(symbol);
  }

  /** Orders still resting, for health output. */
  get openOrders(): number {
    let n = 0;
    for (const list of this.#resting.values()) n += list.length;
    return n;
  }

  #crosses(request: OrderRequest, price: number): boolean {
    if (request.type === 'market') return true;
    const limit = request.limit_price ?? 0;
    return request.side === 'buy' ? price <= limit : price >= limit;
  }

  async #fill(order: Record<string, unknown>, price: number): Promise<void> {
    const now = new Date().toISOString();
    const filled = { ...order, status: 'filled', filled_qty: order.qty, filled_avg_price: price.toFixed(2), filled_at: now, updated_at: now };
    await this.#event('fill', filled, undefined, { price: price.toFixed(2), qty: String(order.qty) });
  }

  #event(event: string, order: Record<string, unknown>, reason?: string, execution?: { price: string; qty: string }): void | Promise<void> {
    return this.emit({
      event,
      symbol: String(order.symbol),
      timestamp: new Date().toISOString(),
      order,
      ...(reason === undefined ? {} : { reason }),
      ...(execution === undefined ? {} : { execution }),
    });
  }
}
