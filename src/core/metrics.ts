// Prometheus counters of the bus. Labels are channel *templates* (TICKER_UPDATES_{ticker}),
// never concrete names, so ten thousand tickers make one series, not ten thousand.
import { Counter, Gauge, Registry } from 'prom-client';

const UNKNOWN = 'unknown';

/**
 * Per-message counts kept as plain numbers and handed to prom-client when it is scraped:
 * prom-client hashes its label set on every inc(), which costs more than the rest of a
 * publish's bookkeeping together.
 */
class Tally {
  readonly #cells = new Map<string, { n: number }>();

  cell(label: string): { n: number } {
    let c = this.#cells.get(label);
    if (!c) this.#cells.set(label, (c = { n: 0 }));
    return c;
  }

  flushInto(counter: Counter<'channel'>): void {
    for (const [label, c] of this.#cells) {
      if (c.n > 0) {
        counter.labels(label).inc(c.n);
        c.n = 0;
      }
    }
  }
}

export class BusMetrics {
  readonly registry: Registry;
  readonly published: Counter<'channel'>;
  readonly publishFailed: Counter<'channel' | 'code'>;
  readonly received: Counter<'channel'>;
  readonly rejected: Counter<'channel' | 'code'>;
  readonly handlerFailed: Counter<'channel'>;
  readonly handlerDropped: Counter<'channel'>;
  readonly connection: Counter<'role' | 'event'>;
  readonly durable: Counter<'channel' | 'group' | 'event'>;
  readonly replayed: Counter<'channel'>;
  readonly untrustedPositions: Counter<'channel' | 'reason'>;
  readonly fallbackBuffered: Counter;
  readonly fallbackReplayed: Counter;
  readonly fallbackDropped: Counter<'reason'>;
  readonly backgroundFailures: Counter<'task' | 'code'>;
  readonly #buffers = new Set<{ readonly size: number; readonly bytes: number }>();
  readonly #published = new Tally();
  readonly #received = new Tally();

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    const published = this.#published;
    const received = this.#received;
    this.published = new Counter({
      name: 'tickbus_messages_published_total',
      help: 'Messages handed to the transport, by channel template.',
      labelNames: ['channel'],
      registers,
      collect() {
        published.flushInto(this);
      },
    });
    this.publishFailed = new Counter({ name: 'tickbus_publish_failures_total', help: 'Publishes refused or failed, by channel template and error code.', labelNames: ['channel', 'code'], registers });
    this.received = new Counter({
      name: 'tickbus_messages_received_total',
      help: 'Messages received and validated, by channel template.',
      labelNames: ['channel'],
      registers,
      collect() {
        received.flushInto(this);
      },
    });
    this.rejected = new Counter({ name: 'tickbus_messages_rejected_total', help: 'Received messages rejected (bad JSON, envelope, schema, size), by error code.', labelNames: ['channel', 'code'], registers });
    this.handlerFailed = new Counter({ name: 'tickbus_handler_failures_total', help: 'Handler calls that threw or rejected.', labelNames: ['channel'], registers });
    this.handlerDropped = new Counter({ name: 'tickbus_handler_dropped_total', help: 'Messages dropped because a handler fell too far behind on one channel.', labelNames: ['channel'], registers });
    this.connection = new Counter({ name: 'tickbus_connection_events_total', help: 'Connection events (disconnected, reconnected), by role.', labelNames: ['role', 'event'], registers });
    this.durable = new Counter({
      name: 'tickbus_durable_messages_total',
      help: 'Durable-channel consumer events: acked (handled), retried, claimed (from a consumer that held them too long), dead_lettered.',
      labelNames: ['channel', 'group', 'event'],
      registers,
    });
    this.replayed = new Counter({ name: 'tickbus_history_replayed_total', help: 'Messages replayed from history to resuming subscribers.', labelNames: ['channel'], registers });
    this.untrustedPositions = new Counter({
      name: 'tickbus_untrusted_positions_total',
      help: 'Live messages whose position history does not vouch for, delivered without it: ahead_of_clock (refused at once), not_in_history (checked), unverified (a check was already under way or failed).',
      labelNames: ['channel', 'reason'],
      registers,
    });
    this.fallbackBuffered = new Counter({ name: 'tickbus_fallback_buffered_total', help: 'Messages kept in the fallback buffer while Redis was unreachable.', registers });
    this.fallbackReplayed = new Counter({ name: 'tickbus_fallback_replayed_total', help: 'Buffered messages sent once Redis was back.', registers });
    this.fallbackDropped = new Counter({ name: 'tickbus_fallback_dropped_total', help: 'Messages the fallback buffer gave up: oldest or newest (full), rejected (full, policy reject), refused (by Redis on replay).', labelNames: ['reason'], registers });
    this.backgroundFailures = new Counter({
      name: 'tickbus_background_failures_total',
      help: 'Failed rounds of background work (timers, reactions to events: lease renewals, sweeps, heartbeats, resubscriptions), by task and error code. Each is retried.',
      labelNames: ['task', 'code'],
      registers,
    });
    const buffers = this.#buffers;
    const total = (name: string, help: string, of: (b: { size: number; bytes: number }) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          let n = 0;
          for (const b of buffers) n += of(b);
          this.set(n);
        },
      });
    total('tickbus_fallback_buffer_messages', 'Messages waiting in fallback buffers.', (b) => b.size);
    total('tickbus_fallback_buffer_bytes', 'Payload size of the messages waiting in fallback buffers.', (b) => b.bytes);
  }

  /** Reports a publisher's fallback buffer in the gauges. */
  trackFallback(buffer: { readonly size: number; readonly bytes: number }): void {
    this.#buffers.add(buffer);
  }

  /** The hot-path cell that counts publishes of one channel template (`cell.n++`). */
  publishedCell(template: string | undefined): { n: number } {
    return this.#published.cell(template ?? UNKNOWN);
  }
  receivedCell(template: string | undefined): { n: number } {
    return this.#received.cell(template ?? UNKNOWN);
  }
  countRejected(template: string | undefined, code: string): void {
    this.rejected.labels(template ?? UNKNOWN, code).inc();
  }
  countPublishFailed(template: string | undefined, code: string): void {
    this.publishFailed.labels(template ?? UNKNOWN, code).inc();
  }
}
