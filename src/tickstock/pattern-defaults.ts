// The reference pattern library service's defaults, apart from the service so that the
// CLI's help can show them without loading it (nor the pattern engine, nor the bus).
export const PATTERN_DEFAULTS = Object.freeze({
  /** Bar lengths in seconds: 5 s bars so a demo shows patterns within seconds, 1 min as seed 002's examples. */
  timeframes: Object.freeze<number[]>([5, 60]),
  /** How often the health message goes out on tickstock:streaming:health. */
  healthEveryMs: 5000,
  /** How often bars whose time is over are closed without waiting for the next tick of their symbol. */
  flushEveryMs: 1000,
  /** Interval of the heartbeat on tickbus.health (`tickbus health`). */
  heartbeatMs: 5000,
  /** Invalid ticks logged per second; the rest are only counted. */
  rejectLogsPerSecond: 5,
  /** The sender written into the heartbeat (the TickStock channels are bare: no sender). */
  sender: 'tickstock_pl',
  /**
   * Closing ticks whose messages may be on their way at once before the tick lane waits:
   * more than one boundary's worth of symbols, so a normal close never waits, and few
   * enough that a slow Redis slows the ticks instead of growing memory.
   */
  maxPublishesInFlight: 1024,
});
