// Prometheus metrics of the broker, registered on the service's registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class BrokerMetrics {
  readonly updatesPublished: Counter<'type'>;
  readonly publishFailures: Counter<'code'>;
  readonly ticksForwarded: Counter;
  readonly forwardFailures: Counter<'code'>;
  readonly registrations: Counter<'action' | 'outcome'>;
  readonly feedUpdates: Counter<'mode'>;
  readonly feedReconnects: Counter;
  readonly feedProblems: Counter<'code'>;
  readonly orders: Counter<'outcome'>;
  readonly positions: Counter<'outcome'>;
  readonly priceEvents: Counter;
  readonly publishLatency: Histogram;
  readonly tickers: Gauge;
  readonly leases: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.updatesPublished = new Counter({ name: 'tickbus_broker_updates_published_total', help: 'Ticker updates published, by type (price, order).', labelNames: ['type'], registers });
    this.publishFailures = new Counter({ name: 'tickbus_broker_publish_failures_total', help: 'Ticker updates that could not be published, by error code.', labelNames: ['code'], registers });
    this.ticksForwarded = new Counter({ name: 'tickbus_broker_ticks_forwarded_total', help: 'Raw ticks forwarded on tickstock:market:ticks (--forward-ticks).', registers });
    this.forwardFailures = new Counter({ name: 'tickbus_broker_forward_failures_total', help: 'Raw ticks that could not be forwarded, by error code.', labelNames: ['code'], registers });
    this.registrations = new Counter({ name: 'tickbus_broker_registrations_total', help: 'Registrations by action and outcome (accepted, rejected).', labelNames: ['action', 'outcome'], registers });
    this.feedUpdates = new Counter({ name: 'tickbus_broker_feed_updates_total', help: 'Changes of the streamed ticker set applied to the feed, by mode (in_place, restart).', labelNames: ['mode'], registers });
    this.feedReconnects = new Counter({ name: 'tickbus_broker_feed_reconnects_total', help: 'Reconnections of the feed to its upstream.', registers });
    this.feedProblems = new Counter({ name: 'tickbus_broker_feed_problems_total', help: 'Problems reported by the feed, by code.', labelNames: ['code'], registers });
    this.orders = new Counter({ name: 'tickbus_broker_orders_total', help: 'Order requests by outcome (routed, rejected, duplicate: a client_order_id already placed; cancel_routed, cancel_rejected).', labelNames: ['outcome'], registers });
    this.positions = new Counter({ name: 'tickbus_broker_position_events_total', help: "Fills turned into positions.updated, by outcome (published; skipped: no execution or a fraction of a share; failed: Redis refused).", labelNames: ['outcome'], registers });
    this.priceEvents = new Counter({ name: 'tickbus_broker_price_events_total', help: "Seed 004's price.updated.{symbol} events published (--price-events).", registers });
    this.publishLatency = new Histogram({
      name: 'tickbus_broker_publish_latency_seconds',
      help: 'Time from a feed event to its publication in Redis, observed once per batch for its oldest update.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.tickers = new Gauge({ name: 'tickbus_broker_tickers', help: 'Tickers being streamed.', registers });
    this.leases = new Gauge({ name: 'tickbus_broker_leases', help: 'Live registration leases.', registers });
  }
}
