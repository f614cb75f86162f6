// The broker's defaults, apart from the service so that the CLI's help can show them
// without loading the broker.
export const BROKER_DEFAULTS = Object.freeze({
  maxTickers: 1000,
  /**
   * The share of maxTickers that tickers held by gateways alone may take (when
   * maxGatewayTickers is not given): the rest stays for bots and other registrants, however
   * many browsers ask a gateway for made-up symbols.
   */
  gatewayTickerShare: 0.5,
  /** Anonymous leases last a day unless renewed (0 would mean for ever). */
  anonymousLeaseTtlSeconds: 86_400,
  /** Leases of named clients must be renewed within a minute (the bot SDK renews them). */
  clientLeaseTtlSeconds: 60,
  sweepIntervalMs: 1000,
  /** A burst of registrations is applied to the feed once it has been quiet this long… */
  coalesceMs: 20,
  /** …or at the latest this long after it began. */
  maxCoalesceMs: 250,
  /** Notices published on BROKER_ERRORS per second; the rest are only counted. */
  noticesPerSecond: 50,
  /** After a failed attempt to settle the ticker split (Redis away), wait this long before the next. */
  settleRetryMs: 500,
  /** Tickers listed in the broker's health report, at most (the count is always whole). */
  healthTickerList: 100,
  /**
   * Channel refs kept for the tickers seen; past this many the cache starts again, so that
   * a venue reporting ever new symbols cannot grow it without bound.
   */
  tickerRefCache: 10_000,
  /** Characters of a notice's message in its log line (the whole message goes on BROKER_ERRORS)… */
  noticeLogChars: 200,
  /** …and on BROKER_ERRORS, at most. */
  noticeMessageChars: 2000,
  /** Characters of an invalid symbol quoted in a notice. */
  symbolPreviewChars: 20,
  /**
   * Broker group (`--failover-ms`): how long a lease and a membership last without renewal;
   * a dead broker's tickers move after about this long, plus one round.
   */
  groupLeaseMs: 3000,
  /** Rounds (renewals and a check of the split) per lease: a lease survives a missed round or two. */
  groupRoundsPerLease: 3,
  /** The shortest round, whatever the lease. */
  groupMinRoundMs: 50,
  /** Random bytes (hex) that end a generated member id, so that two brokers in one pid namespace differ. */
  groupMemberIdRandomBytes: 3,
  /** Orders whose client_id (strategy) the order desk remembers, for their updates and positions; oldest out first. */
  orderOwners: 10_000,
});
