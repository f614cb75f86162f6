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
});
