// CHANNELS from seed 001: the registration channel's name, the ticker channel names, and
// the schema of any channel, all taken from the shipped catalogs so there is one source.
import { BrokerRegistration, TickerUpdates } from '../catalogs/broker.ts';
import { SHIPPED_CATALOGS } from '../catalogs/index.ts';
import { ChannelResolver } from '../core/catalog.ts';
import type { Channel } from '../core/channel.ts';
import { UnknownChannelError } from '../core/errors.ts';
import type { StandardSchemaV1 } from '../core/schema.ts';

const resolver = new ChannelResolver(SHIPPED_CATALOGS);

/** The catalog definition of a concrete channel name, or undefined when no shipped catalog has it. */
export function findChannel(channelName: string): Channel | undefined {
  return resolver.resolve(channelName)?.channel;
}

/** Like findChannel, but an unknown name is an UnknownChannelError. */
export function requireChannel(channelName: string): Channel {
  const channel = findChannel(channelName);
  if (!channel) throw new UnknownChannelError(channelName);
  return channel;
}

export const CHANNELS = Object.freeze({
  BROKER_REGISTRATION: BrokerRegistration.template,

  /**
   * `TICKER_UPDATES_{ticker}`. The ticker is trimmed and upper-cased, then checked against
   * the catalog's allow-list, so a glob character or a space never becomes part of a
   * channel name: a bad ticker is a ChannelParamError.
   */
  getTickerChannel(ticker: string): string {
    return TickerUpdates.name({ ticker });
  },

  /**
   * The Standard Schema of a concrete channel name (`TICKER_UPDATES_AAPL`, not the
   * template). Throws UnknownChannelError for names no shipped catalog defines.
   */
  getSchema(channelName: string): StandardSchemaV1 {
    return requireChannel(channelName).schema;
  },
});
