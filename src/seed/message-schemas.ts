// MESSAGE_SCHEMAS from seed 001: the two broker schemas by name, as the catalog defines them.
import { BrokerRegistration, TickerUpdates } from '../catalogs/broker.ts';
import type { StandardSchemaV1 } from '../core/schema.ts';
import { findChannel } from './channels.ts';

const byName: Readonly<Record<string, StandardSchemaV1>> = Object.freeze({
  BROKER_REGISTRATION: BrokerRegistration.schema,
  TICKER_UPDATES: TickerUpdates.schema,
});

export const MESSAGE_SCHEMAS = Object.freeze({
  BROKER_REGISTRATION: BrokerRegistration.schema,
  TICKER_UPDATES: TickerUpdates.schema,

  /**
   * The schema for a schema name (`TICKER_UPDATES`) or a concrete channel name
   * (`TICKER_UPDATES_AAPL`); undefined when neither is known, like the seed's dict lookup.
   * CHANNELS.getSchema is the variant that throws.
   */
  get(channelName: string): StandardSchemaV1 | undefined {
    return Object.hasOwn(byName, channelName) ? byName[channelName] : findChannel(channelName)?.schema;
  },
});
