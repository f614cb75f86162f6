// The gateway's Prometheus metrics (tickbus_gateway_*), in the bus's registry. Deliveries are
// counted in a plain number and handed to prom-client on scrape: they happen per update.
import { Counter, Gauge, type Registry } from 'prom-client';

export class GatewayMetrics {
  readonly connections: Gauge;
  readonly rooms: Gauge;
  readonly delivered: Counter;
  readonly dropped: Counter<'reason'>;
  readonly closed: Counter<'code'>;
  readonly errors: Counter<'code'>;
  readonly resumes: Counter<'result'>;
  readonly alertsRouted: Counter<'kind'>;
  readonly inboxAppended: Counter<'kind'>;
  readonly inboxDelivered: Counter;
  readonly filtered: Counter;
  readonly #registry: Registry;
  static readonly NAMES = ['tickbus_gateway_connections', 'tickbus_gateway_rooms', 'tickbus_gateway_updates_delivered_total', 'tickbus_gateway_updates_dropped_total', 'tickbus_gateway_closed_total', 'tickbus_gateway_errors_total', 'tickbus_gateway_resumes_total', 'tickbus_gateway_alerts_routed_total', 'tickbus_gateway_inbox_appended_total', 'tickbus_gateway_inbox_delivered_total', 'tickbus_gateway_updates_filtered_total'];
  /** Per-delivery counts, handed to prom-client on scrape (its inc() is costly per call). */
  readonly pending = { delivered: 0, filtered: 0 };

  constructor(registry: Registry, sessions: () => number, rooms: () => number) {
    // A gateway restarted in the same process (a test, an embedding app) takes the names over.
    for (const name of GatewayMetrics.NAMES) registry.removeSingleMetric(name);
    this.#registry = registry;
    const registers = [registry];
    const pending = this.pending;
    this.connections = new Gauge({ name: 'tickbus_gateway_connections', help: 'Open WebSocket connections.', registers, collect() { this.set(sessions()); } });
    this.rooms = new Gauge({ name: 'tickbus_gateway_rooms', help: 'Symbols and channels with at least one client (one Redis subscription each).', registers, collect() { this.set(rooms()); } });
    this.delivered = new Counter({
      name: 'tickbus_gateway_updates_delivered_total',
      help: 'Updates handed to client sockets.',
      registers,
      collect() {
        if (pending.delivered > 0) this.inc(pending.delivered);
        pending.delivered = 0;
      },
    });
    this.dropped = new Counter({ name: 'tickbus_gateway_updates_dropped_total', help: 'Updates not sent to a slow client: conflated (a newer price replaced it) or dropped.', labelNames: ['reason'], registers });
    this.closed = new Counter({ name: 'tickbus_gateway_closed_total', help: 'Connections closed, by close code.', labelNames: ['code'], registers });
    this.errors = new Counter({ name: 'tickbus_gateway_errors_total', help: 'Error replies sent to clients, by code.', labelNames: ['code'], registers });
    this.resumes = new Counter({ name: 'tickbus_gateway_resumes_total', help: 'Subscriptions answered with history (replayed), a snapshot, or live only.', labelNames: ['result'], registers });
    this.alertsRouted = new Counter({ name: 'tickbus_gateway_alerts_routed_total', help: 'Pattern events (alert) and job results (job_result) this gateway claimed and routed to inboxes.', labelNames: ['kind'], registers });
    this.inboxAppended = new Counter({ name: 'tickbus_gateway_inbox_appended_total', help: 'Entries this gateway appended to users\' inboxes, by kind.', labelNames: ['kind'], registers });
    this.inboxDelivered = new Counter({ name: 'tickbus_gateway_inbox_delivered_total', help: 'Inbox entries sent to connections (read back or live).', registers });
    this.filtered = new Counter({
      name: 'tickbus_gateway_updates_filtered_total',
      help: 'Messages of a symbol-keyed channel not sent to a member of its room, whose filter left that symbol out.',
      registers,
      collect() {
        if (pending.filtered > 0) this.inc(pending.filtered);
        pending.filtered = 0;
      },
    });
  }

  unregister(): void {
    for (const name of GatewayMetrics.NAMES) this.#registry.removeSingleMetric(name);
  }
}
