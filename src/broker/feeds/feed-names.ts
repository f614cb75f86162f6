// The feeds `--feed` can name, apart from the feeds themselves so that the CLI's help can
// list them without loading them.
export const FEED_NAMES = ['sim', 'replay', 'alpaca'] as const;
export type FeedName = (typeof FEED_NAMES)[number];
