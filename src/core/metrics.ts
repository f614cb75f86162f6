// Prometheus counters of the bus. Labels are channel *templates* (TICKER_UPDATES_{ticker}),
// never concrete names, so ten thousand tickers make one series, not ten thousand.
import { Counter, Gauge, Registry } from 'prom-client';

const UNKNOWN = 'unknown';

/** A publisher's fallback buffer, as the gauges see it. */
interface TrackedBuffer {
  readonly size: number;
  readonly bytes: number;
  readonly options: { readonly maxMessages: number; readonly maxBytes: number };
}

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
  /** Unread entries of a durable channel's stream for a consumer group (set on each claim round). */
  readonly groupLag: Gauge<'channel' | 'group'>;
  /** The bound of a durable channel's stream, for alerts on a group nearing it. */
  readonly streamMaxLength: Gauge<'channel'>;
  /** When a service's heartbeat last reached Redis, and how often it beats. */
  readonly heartbeatSent: Gauge<'service'>;
  readonly heartbeatInterval: Gauge<'service'>;
  readonly #buffers = new Set<TrackedBuffer>();
  readonly #links = new Map<string, Set<() => boolean | undefined>>();
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
    this.groupLag = new Gauge({
      name: 'tickbus_durable_group_lag',
      help: 'Entries of a durable channel not yet read by a consumer group (entries added minus entries read), by channel template and group; set by the consumers in this process on each claim round, between batches (a handler stuck on a batch holds it at its last value).',
      labelNames: ['channel', 'group'],
      registers,
    });
    this.streamMaxLength = new Gauge({ name: 'tickbus_durable_stream_max_length', help: 'The retention bound (MAXLEN ~) of a durable channel this process consumes, by channel template: a group lagging by more loses messages.', labelNames: ['channel'], registers });
    this.heartbeatSent = new Gauge({ name: 'tickbus_heartbeat_last_sent_timestamp_seconds', help: 'When this service last stored its heartbeat in Redis (Unix time), by service.', labelNames: ['service'], registers });
    this.heartbeatInterval = new Gauge({ name: 'tickbus_heartbeat_interval_seconds', help: 'How often this service beats, by service.', labelNames: ['service'], registers });
    const links = this.#links;
    new Gauge({
      name: 'tickbus_redis_connected',
      help: 'Whether the bus connection of a role (publisher, subscriber) is up: 1, or 0 while it is lost and reconnecting. A connection never opened yet is not reported.',
      labelNames: ['role'],
      registers,
      collect() {
        this.reset();
        // Buses that share these metrics (one process, one registry) report per role together: down if any is.
        for (const [role, probes] of links) {
          const values = [...probes].map((up) => up()).filter((v) => v !== undefined);
          if (values.length > 0) this.labels(role).set(values.every(Boolean) ? 1 : 0);
        }
      },
    });
    const buffers = this.#buffers;
    const total = (name: string, help: string, of: (b: TrackedBuffer) => number) =>
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
    total('tickbus_fallback_buffer_capacity_messages', 'How many messages the fallback buffers hold at most (fallback.maxMessages, summed).', (b) => b.options.maxMessages);
    total('tickbus_fallback_buffer_capacity_bytes', 'How many payload bytes the fallback buffers hold at most (fallback.maxBytes, summed).', (b) => b.options.maxBytes);
  }

  /** Reports a publisher's fallback buffer in the gauges. */
  trackFallback(buffer: TrackedBuffer): void {
    this.#buffers.add(buffer);
  }

  /**
   * Reports a connection's state in tickbus_redis_connected (`up()` is undefined until it first
   * connected) until the returned function is called, when it closes.
   */
  trackConnection(role: string, up: () => boolean | undefined): () => void {
    let probes = this.#links.get(role);
    if (!probes) this.#links.set(role, (probes = new Set()));
    probes.add(up);
    const tracked = probes;
    return () => tracked.delete(up);
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
