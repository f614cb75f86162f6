// Picks a feed by name (the --feed option).
import { ConfigError } from '../../core/errors.ts';
import type { MarketDataFeed } from './feed.ts';
import { ReplayFeed } from './replay-feed.ts';
import { SimFeed } from './sim-feed.ts';

import { FEED_NAMES } from './feed-names.ts';

export { FEED_NAMES, type FeedName } from './feed-names.ts';

export interface FeedOptions {
  seed?: number;
  rate?: number;
  file?: string;
  speed?: number | 'max';
  loop?: boolean;
}

/** `env` is the environment the Alpaca feed reads its keys from; the CLI passes those variables of its own (ALPACA_ENV). */
export async function createFeed(name: string, options: FeedOptions, env: NodeJS.ProcessEnv): Promise<MarketDataFeed> {
  switch (name) {
    case 'sim':
      return new SimFeed({ seed: options.seed, ratePerTicker: options.rate });
    case 'replay':
      if (!options.file) throw new ConfigError('The replay feed needs a file: --feed replay --file trades.ndjson (see docs/feeds.md for the format).');
      return new ReplayFeed({ file: options.file, speed: options.speed, loop: options.loop });
    case 'alpaca': {
      // Loaded on demand: only Alpaca users pay for the WebSocket client.
      const { AlpacaFeed, alpacaConfigFromEnv } = await import('./alpaca-feed.ts');
      return new AlpacaFeed(alpacaConfigFromEnv(env));
    }
    default:
      throw new ConfigError(`Unknown feed "${name}": use one of ${FEED_NAMES.join(', ')}.`);
  }
}
