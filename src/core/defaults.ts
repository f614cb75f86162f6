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

/**
 * The gateway's defaults: its HTTP address, batching and slow-reader handling, and the
 * limits on what its clients may cost (docs/gateway.md, "Limits"). The CLI's options take
 * their default values (and the numbers in their help) from here.
 */
export const GATEWAY_DEFAULTS = Object.freeze({
  /** HTTP port of the dashboard, the WebSocket (/ws), /health and /metrics. */
  port: 8090,
  /** HTTP address: this host only, unless told otherwise. */
  host: '127.0.0.1',
  /**
   * Batching: with adaptive timing, the longest a busy client's updates wait to be joined into
   * one frame (a quiet gateway sends at once); with interval timing, the flush period. 0: each
   * update is its own frame. 50 ms keeps the seeds' 100 ms from Redis to the browser with room
   * for the network: at 250 the adaptive gap reached the cap in one run of the batched
   * benchmark (p99 98 ms), and at 50 the CPU per delivery was the same (4.8 µs, 2026-12-05).
   */
  batchMs: 50,
  /** How flushes are timed: 'adaptive' (at once when quiet, coalesced under load) or 'interval'. */
  batchTiming: 'adaptive',
  /**
   * Adaptive timing: flushes may take this share of the time (in CPU); the next flush waits
   * until they have. Lower trades latency for CPU: at 0.2, 50,000 deliveries/s to 1,000
   * clients on the 2-core benchmark machine ran at p50 7 to 8 ms, p99 14 to 25 ms and about
   * 0.49x Socket.IO's CPU per delivery, against 134 / 250 ms and 0.24x with a 250 ms
   * interval (docs/benchmarks.md, 2026-12-05).
   */
  flushBudget: 0.2,
  /** A client's send buffer above which its updates are conflated (only the latest price per symbol): 1 MiB. */
  highWaterBytes: 1024 * 1024,
  /** Over this many times the high-water mark, a client's updates are dropped (it is told once it drains). */
  dropAtHighWater: 2,
  /** Over this many times the high-water mark, a client is closed (4008) at once. */
  closeAtHighWater: 4,
  /** A slow client is healthy again once its buffer is down to this fraction of the high-water mark. */
  recoverAtHighWater: 0.5,
  /** A client still over the drop mark after this many ms is closed (4008). */
  slowClientCloseMs: 5_000,
  /** Requests per second per connection. */
  ratePerSecond: 20,
  /** A connection may send a burst of this many seconds' worth of requests (the token bucket's size). */
  requestBurstSeconds: 2,
  /** A connection refused this many seconds' worth of requests in a row is closed (4029). */
  rateAbuseSeconds: 5,
  /** Largest frame a client may send: 64 KiB (WebSocket close 1009 above). */
  maxFrameBytes: 64 * 1024,
  /** Messages read from history per resume at most; a bigger gap gets a snapshot. */
  maxReplay: 1000,
  /** Lifetime of the gateway's broker leases; renewed well before they lapse. */
  leaseTtlSeconds: 60,
  /** Leases are renewed this many times per lifetime, so that one failed renewal does not let them lapse. */
  leaseRenewalsPerTtl: 3,
  /** Lease renewals are at least this many ms apart, however short the lifetime. */
  leaseRenewMinMs: 1_000,
  /** Every connection is pinged this often; one that did not answer the last ping is cut off. */
  pingIntervalMs: 30_000,
  /** A client that does not answer the close handshake within this many ms is cut off. */
  closeHandshakeMs: 2_000,
  /** Job owners (job id to user) remembered by the job relay before the cache starts over. */
  jobOwnerCacheSize: 10_000,
  /**
   * WebSocket connections held at once, when the process's open-file limit cannot be read;
   * where it can, the default is that limit less `reservedFiles`. Past it an upgrade is
   * answered 503 with Retry-After (TB_ERR_GATEWAY_FULL) instead of dropped by the kernel.
   */
  maxConnections: 10_000,
  /** Open files kept back from WebSocket connections: Redis links, the dashboard's files, logs, HTTP scrapes. */
  reservedFiles: 256,
  /** Seconds a client refused for a full gateway is told to wait (Retry-After). */
  fullRetryAfterSeconds: 5,
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
  /** Symbols one `filter` of a channel subscription may name. */
  maxFilterSymbols: 1000,
  /** Entries a user's inbox (user_messages:<user>) keeps at most (`MAXLEN ~`). */
  inboxMaxLen: 1000,
  /** A user's inbox expires this long after its last entry: seed 003's 7 days. */
  inboxTtlSeconds: 7 * 24 * 3600,
  /** How long the claim on a routed pattern event or job result holds (one gateway routes it). */
  alertClaimTtlSeconds: 3600,
  /** Inbox entries read per round trip while catching a client up. */
  inboxReadCount: 200,
  /** How long a browser's client_order_id stays claimed: a resend within a day is not placed again. */
  webOrderClaimTtlSeconds: 24 * 3600,
  /** Ticker updates a `history` request reads at most (newest first; the ticker's history keeps about 1,000). */
  maxHistory: 1000,
  /** Shares one order from a browser may ask for at most. */
  maxOrderQty: 1_000_000,
  /** Symbols one backtest from a browser may name. */
  maxBacktestSymbols: 50,
  /** A gateway without Redis remembers this many browser order ids (newest) against resends. */
  memoryOrderClaims: 10_000,
  /** Without JWT: the users one connection may act for at once (it sees their orders); the oldest go. */
  usersPerConnection: 8,
});

/** Operator endpoints (/health, /metrics) of the services. */
export const OPS_DEFAULTS = Object.freeze({
  /** Loopback: metrics and health are for the operator's scraper, not the internet. */
  host: '127.0.0.1',
  /** The broker's port (Prometheus's registry of default ports has 9464 for this kind of exporter). */
  brokerPort: 9464,
});

/**
 * A beat outlives its interval this many times. Readers call a service stale after two
 * missed intervals and gone after five; one interval later its beat is removed.
 */
export const HEARTBEAT_TTL_INTERVALS = 6;

export const HEARTBEAT_DEFAULTS = Object.freeze({
  /** How often a service beats (`--heartbeat-ms`); a beat lives HEARTBEAT_TTL_INTERVALS of these. */
  intervalMs: 5000,
});
