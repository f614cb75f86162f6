// The order path: order requests from ORDER_REQUESTS go to the feed's venue, once each
// (BrokerStore.claimOrder) and, in a group, from the broker that streams the ticker; the
// venue's order events (and the refusals of requests that never reached it) go out on the
// ticker's TICKER_UPDATES channel, in the same batches as its prices. Cancels go the same
// way. Each fill also moves the position of the strategy that placed the order (the bot's
// client_id), published as seed 004's positions.updated.
import { preview } from '../core/errors.ts';
import type { OrderCancelMessage, OrderRequestMessage, TickerUpdates } from '../catalogs/broker.ts';
import type { PositionEvent } from '../catalogs/trading-events.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';
import type { BrokerGroup } from './broker-group.ts';
import type { MarketDataFeed, OrderEvent } from './feeds/feed.ts';
import type { UpdateBatcher } from './update-batcher.ts';
import { BrokerNotice, type BrokerNotices } from './broker-notices.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';

type TickerRef = ReturnType<typeof TickerUpdates.of>;

/** The strategy_id of positions moved by orders that named no client_id. */
export const NO_STRATEGY = 'anonymous';

export interface OrderDeskOptions {
  store: BrokerStore;
  feed: MarketDataFeed;
  batcher: UpdateBatcher;
  group: BrokerGroup | undefined;
  metrics: BrokerMetrics;
  notices: BrokerNotices;
  /** A ticker's TICKER_UPDATES channel; throws on an invalid ticker. */
  channelOf: (ticker: string) => TickerRef;
  /** Publishes seed 004's positions.updated (each fill). */
  positionUpdated: (event: PositionEvent) => Promise<unknown>;
}

export class OrderDesk {
  readonly #options: OrderDeskOptions;
  /** client_order_id → the client_id (strategy) that placed it, for its updates and positions; bounded, oldest out first. */
  readonly #owners = new Map<string, string>();

  constructor(options: OrderDeskOptions) {
    this.#options = options;
  }

  #remember(clientOrderId: string, clientId: string | undefined): void {
    if (clientId === undefined) return;
    if (this.#owners.size >= BROKER_DEFAULTS.orderOwners) {
      const oldest = this.#owners.keys().next().value;
      if (oldest !== undefined) this.#owners.delete(oldest);
    }
    this.#owners.set(clientOrderId, clientId);
  }

  /** Asks the venue to cancel an open order; its answer (or the failure to ask) is an order update. */
  async cancel(request: OrderCancelMessage): Promise<void> {
    const { group, metrics } = this.#options;
    if (group && !(await group.routes(request.symbol))) return;
    try {
      await this.#options.feed.cancelOrder(request);
      metrics.orders.labels('cancel_routed').inc();
    } catch (error) {
      metrics.orders.labels('cancel_rejected').inc();
      await this.event({
        event: 'order_cancel_rejected',
        symbol: request.symbol,
        timestamp: new Date().toISOString(),
        order: { client_order_id: request.client_order_id, symbol: request.symbol },
        reason: (error as Error).message,
      });
    }
  }

  /** Routes an order request to the venue, or publishes its refusal. */
  async request(order: OrderRequestMessage): Promise<void> {
    const { group, metrics } = this.#options;
    // In a group every broker hears every order: the one streaming the ticker routes it
    // (or, for a ticker nobody streams, the one the split would give it to).
    if (group && !(await group.routes(order.symbol))) return;
    try {
      // Placed by one broker whichever (or how many) took it: see BrokerStore.claimOrder. A
      // resend to the same broker goes on to its venue, which refuses the duplicate itself.
      const me = group?.memberId ?? 'broker';
      if ((await this.#options.store.claimOrder(order.client_order_id, me)) !== me) {
        metrics.orders.labels('duplicate').inc();
        return;
      }
      this.#remember(order.client_order_id, order.client_id);
      await this.#options.feed.placeOrder(order);
      metrics.orders.labels('routed').inc();
    } catch (error) {
      metrics.orders.labels('rejected').inc();
      await this.event({
        event: 'rejected',
        symbol: order.symbol,
        timestamp: new Date().toISOString(),
        order: { client_order_id: order.client_order_id, symbol: order.symbol, side: order.side, qty: String(order.qty), type: order.type, status: 'rejected' },
        reason: (error as Error).message,
      });
    }
  }

  /** Publishes an order event of the venue on its ticker's channel. */
  event(event: OrderEvent): void | Promise<void> {
    let ref: TickerRef;
    try {
      ref = this.#options.channelOf(event.symbol);
    } catch {
      this.#options.notices.notice(BrokerNotice.InvalidOrder, `The venue reported an order update for an invalid symbol "${preview(event.symbol, BROKER_DEFAULTS.symbolPreviewChars)}".`, {});
      return;
    }
    const clientOrderId = typeof event.order.client_order_id === 'string' ? event.order.client_order_id : undefined;
    const clientId = clientOrderId === undefined ? undefined : this.#owners.get(clientOrderId);
    const order_data = {
      ...event.order,
      ...(clientId === undefined ? {} : { client_id: clientId }),
      event: event.event,
      ...(event.reason === undefined ? {} : { reason: event.reason }),
      ...(event.execution === undefined ? {} : { execution: event.execution }),
    };
    if (event.event === 'fill' || event.event === 'partial_fill') this.#positionMoved(event, ref.params.ticker, clientId ?? NO_STRATEGY);
    return this.#options.batcher.enqueue({ channel: ref, data: { type: 'order' as const, symbol: ref.params.ticker, timestamp: event.timestamp, order_data } }, 'order');
  }

  /**
   * A fill moves its strategy's position: seed 004's positions.updated, whole shares (its
   * qty_change and new_qty are integers), the price as a decimal string. A fill without its
   * own execution (price and qty), or of a fraction of a share, moves nothing and is counted.
   */
  #positionMoved(event: OrderEvent, symbol: string, strategy: string): void {
    const { metrics, store, positionUpdated } = this.#options;
    const qty = Number(event.execution?.qty);
    const price = event.execution?.price;
    const side = event.order.side;
    if (!Number.isSafeInteger(qty) || qty <= 0 || price === undefined || !/^-?\d+(\.\d+)?$/.test(price) || (side !== 'buy' && side !== 'sell')) {
      metrics.positions.labels('skipped').inc();
      return;
    }
    const change = side === 'buy' ? qty : -qty;
    const action = event.event === 'fill' ? 'fill' : 'partial_fill';
    const zoned = Number.isFinite(Date.parse(event.timestamp)) ? new Date(event.timestamp).toISOString() : new Date().toISOString();
    this.#positions = this.#positions
      .then(async () => {
        const newQty = await store.addPosition(strategy, symbol, change);
        await positionUpdated({ event_type: 'positions.updated', timestamp: zoned, symbol, action, qty_change: change, new_qty: newQty, price, strategy_id: strategy });
        metrics.positions.labels('published').inc();
      })
      .catch(() => metrics.positions.labels('failed').inc());
  }

  /** Position updates one after the other, so that each new_qty follows the one before. */
  #positions: Promise<void> = Promise.resolve();
}
