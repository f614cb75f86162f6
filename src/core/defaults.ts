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
  /**
   * How far ahead of this process's clock a live message's position (Redis's clock when it
   * wrote the entry) may be and still be taken on trust: hosts kept by NTP differ by far less.
   */
  positionSkewMs: 1_000,
  /**
   * Beyond this, a live position is refused without asking Redis: no clock is that wrong.
   * In between, the stream is asked (once at a time per channel) whether it holds it.
   */
  positionMaxAheadMs: 10 * 60_000,
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

/** A durable channel's consumer (consume(), docs/delivery.md, "Durable channels"): each option's default. */
export const CONSUMER_DEFAULTS = Object.freeze({
  /** Handler attempts before a message is dead-lettered. */
  maxAttempts: 5,
  /** First back-off between attempts; doubles each attempt, with jitter. */
  retryBaseMs: 100,
  /** Ceiling of the back-off; must stay below claimIdleMs, or a message waiting for its retry looks idle. */
  retryMaxMs: 5_000,
  /** A message held this long by a consumer without an acknowledgement is claimed by another. */
  claimIdleMs: 30_000,
  /** How often a consumer looks for such messages. */
  claimIntervalMs: 5_000,
  /** Messages read per round trip. */
  batchSize: 100,
  /** How long one read waits for new messages (close() does not wait for it). */
  blockMs: 5_000,
  /** Entries the dead-letter stream keeps. */
  deadLetterMaxLen: 10_000,
});

/** The gateway's limits on what its clients may cost (docs/gateway.md, "Limits"). */
export const GATEWAY_DEFAULTS = Object.freeze({
  /** Subscriptions per connection. */
  maxSubscriptions: 200,
  /**
   * Rooms open in the gateway at once. Each is a Redis subscription and, for a ticker, a
   * broker lease: kept at or under the broker's share for gateways (maxGatewayTickers).
   */
  maxRooms: 500,
  /** Rooms a connection may be the owner of (it opened them, or was left the last in them). */
  maxRoomsPerConnection: 100,
  /** Rooms the connections of one user (the JWT's `sub`) may own together. */
  maxRoomsPerUser: 200,
});
