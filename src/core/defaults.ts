// Every numeric default of the bus, named in one place.

export const DEFAULTS = Object.freeze({
  /** Largest payload accepted on publish and on receive: 1 MiB. */
  maxMessageBytes: 1024 * 1024,
  /** Queued messages per channel per handler before the oldest are dropped. */
  maxPendingPerChannel: 10_000,
  /** First reconnection delay; doubles each attempt, with full jitter. */
  reconnectBaseMs: 50,
  /** Ceiling of the reconnection delay. */
  reconnectMaxMs: 5_000,
  /** How long the first connection may take before `connect()` fails. */
  connectTimeoutMs: 5_000,
  /** Sender name written into envelopes when none is configured. */
  sender: 'tickbus',
  /** Channel names decoded per subscriber whose catalog lookup is cached. */
  channelCacheSize: 10_000,
  /**
   * How long a service (broker, gateway, `up`) waits for Redis when it starts: it then exits
   * with a line that says so, instead of running half-started (a supervisor restarts it).
   * Short, since the whole failed start must end within 2 s; a Redis that answers at all
   * answers a connect in milliseconds (TLS over a WAN in a few hundred).
   */
  serviceConnectTimeoutMs: 500,
  /** Cleaning up after a failed start-up may take this long before the process exits anyway. */
  startupCleanupMs: 800,
  /** A background task that keeps failing (Redis down) logs one line per this many ms. */
  backgroundLogEveryMs: 5_000,
});
