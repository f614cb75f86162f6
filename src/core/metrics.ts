// Prometheus counters of the bus. Labels are channel *templates* (TICKER_UPDATES_{ticker}),
// never concrete names, so ten thousand tickers make one series, not ten thousand.
import { Counter, Registry } from 'prom-client';

const UNKNOWN = 'unknown';

export class BusMetrics {
  readonly registry: Registry;
  readonly published: Counter<'channel'>;
  readonly publishFailed: Counter<'channel' | 'code'>;
  readonly received: Counter<'channel'>;
  readonly rejected: Counter<'channel' | 'code'>;
  readonly handlerFailed: Counter<'channel'>;
  readonly handlerDropped: Counter<'channel'>;
  readonly connection: Counter<'role' | 'event'>;
  readonly #publishedChild = new Map<string, { inc(): void }>();
  readonly #receivedChild = new Map<string, { inc(): void }>();

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.published = new Counter({ name: 'tickbus_messages_published_total', help: 'Messages published, by channel template.', labelNames: ['channel'], registers });
    this.publishFailed = new Counter({ name: 'tickbus_publish_failures_total', help: 'Publishes refused or failed, by channel template and error code.', labelNames: ['channel', 'code'], registers });
    this.received = new Counter({ name: 'tickbus_messages_received_total', help: 'Messages received and validated, by channel template.', labelNames: ['channel'], registers });
    this.rejected = new Counter({ name: 'tickbus_messages_rejected_total', help: 'Received messages rejected (bad JSON, envelope, schema, size), by error code.', labelNames: ['channel', 'code'], registers });
    this.handlerFailed = new Counter({ name: 'tickbus_handler_failures_total', help: 'Handler calls that threw or rejected.', labelNames: ['channel'], registers });
    this.handlerDropped = new Counter({ name: 'tickbus_handler_dropped_total', help: 'Messages dropped because a handler fell too far behind on one channel.', labelNames: ['channel'], registers });
    this.connection = new Counter({ name: 'tickbus_connection_events_total', help: 'Connection events (disconnected, reconnected), by role.', labelNames: ['role', 'event'], registers });
  }

  // Hot path: cached label children avoid hashing the label set per message.
  countPublished(template: string | undefined): void {
    child(this.#publishedChild, this.published, template ?? UNKNOWN).inc();
  }
  countReceived(template: string | undefined): void {
    child(this.#receivedChild, this.received, template ?? UNKNOWN).inc();
  }
  countRejected(template: string | undefined, code: string): void {
    this.rejected.labels(template ?? UNKNOWN, code).inc();
  }
  countPublishFailed(template: string | undefined, code: string): void {
    this.publishFailed.labels(template ?? UNKNOWN, code).inc();
  }
}

function child(cache: Map<string, { inc(): void }>, counter: Counter<'channel'>, template: string): { inc(): void } {
  let c = cache.get(template);
  if (!c) cache.set(template, (c = counter.labels(template)));
  return c;
}
