// The order path: order requests from ORDER_REQUESTS go to the feed's venue, once each
// (BrokerStore.claimOrder) and, in a group, from the broker that streams the ticker; the
// venue's order events (and the refusals of requests that never reached it) go out on the
// ticker's TICKER_UPDATES channel, in the same batches as its prices.
import { preview } from '../core/errors.ts';
import type { OrderRequestMessage, TickerUpdates } from '../catalogs/broker.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import type { BrokerStore } from './broker-store.ts';
import type { BrokerGroup } from './broker-group.ts';
import type { MarketDataFeed, OrderEvent } from './feeds/feed.ts';
import type { UpdateBatcher } from './update-batcher.ts';
import { BrokerNotice, type BrokerNotices } from './broker-notices.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';

type TickerRef = ReturnType<typeof TickerUpdates.of>;

export interface OrderDeskOptions {
  store: BrokerStore;
  feed: MarketDataFeed;
  batcher: UpdateBatcher;
  group: BrokerGroup | undefined;
  metrics: BrokerMetrics;
  notices: BrokerNotices;
  /** A ticker's TICKER_UPDATES channel; throws on an invalid ticker. */
  channelOf: (ticker: string) => TickerRef;
}

export class OrderDesk {
  readonly #o: OrderDeskOptions;

  constructor(options: OrderDeskOptions) {
    this.#o = options;
  }

  /** Routes an order request to the venue, or publishes its refusal. */
  async request(order: OrderRequestMessage): Promise<void> {
    const { group, metrics } = this.#o;
    // In a group every broker hears every order: the one streaming the ticker routes it
    // (or, for a ticker nobody streams, the one the split would give it to).
    if (group && !(await group.routes(order.symbol))) return;
    try {
      // Placed by one broker whichever (or how many) took it: see BrokerStore.claimOrder. A
      // resend to the same broker goes on to its venue, which refuses the duplicate itself.
      const me = group?.memberId ?? 'broker';
      if ((await this.#o.store.claimOrder(order.client_order_id, me)) !== me) {
        metrics.orders.labels('duplicate').inc();
        return;
      }
      await this.#o.feed.placeOrder(order);
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
      ref = this.#o.channelOf(event.symbol);
    } catch {
      this.#o.notices.notice(BrokerNotice.InvalidOrder, `The venue reported an order update for an invalid symbol "${preview(event.symbol, BROKER_DEFAULTS.symbolPreviewChars)}".`, {});
      return;
    }
    const order_data = {
      ...event.order,
      event: event.event,
      ...(event.reason === undefined ? {} : { reason: event.reason }),
      ...(event.execution === undefined ? {} : { execution: event.execution }),
    };
    return this.#o.batcher.enqueue({ channel: ref, data: { type: 'order' as const, symbol: ref.params.ticker, timestamp: event.timestamp, order_data } }, 'order');
  }
}
