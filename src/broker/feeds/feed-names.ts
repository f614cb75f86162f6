// The feeds `--feed` can name and their defaults, apart from the feeds themselves so that
// the CLI's help can list them without loading them.
export const FEED_NAMES = ['sim', 'replay', 'alpaca'] as const;
export type FeedName = (typeof FEED_NAMES)[number];

export const FEED_DEFAULTS = Object.freeze({
  feed: 'sim' satisfies FeedName,
  /** The simulated market's seed: same seed and ticker, same prices. */
  simSeed: 42,
  /** Simulated trades per second per ticker: enough to watch, little enough to read. */
  simTradesPerSecond: 2,
  /** Replay at the recorded pace. */
  replaySpeed: 1,
});
