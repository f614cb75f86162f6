// The broker catalog (seeds 000 and 001): bots register tickers on BROKER_REGISTRATION;
// the broker publishes every price and order update of a ticker on TICKER_UPDATES_{ticker},
// told apart by `type`.
import { z } from 'zod';
import { defineChannel } from '../core/channel.ts';
import { defineCatalog } from '../core/catalog.ts';
import { TICKER } from '../core/channel-param.ts';
import { isoTimestamp, metadata, ticker, tickerInput } from './fields.ts';

export const RegistrationSchema = z.object({
  action: z.enum(['subscribe', 'unsubscribe']),
  /** Normalised on read: " aapl " registers AAPL. */
  ticker: tickerInput,
  /** Who holds the lease; registrations without one are anonymous leases. */
  client_id: z.string().min(1).max(128).optional(),
  /** Lease time to live in seconds; 0 keeps it until released. */
  ttl_seconds: z.number().int().nonnegative().optional(),
});

/**
 * A price update. Seed 001 makes only `type` and `timestamp` required; the broker always
 * sends price, volume and symbol, but readers accept sparse messages from other writers.
 */
export const PriceUpdateSchema = z.object({
  type: z.literal('price'),
  timestamp: isoTimestamp,
  price: z.number().nonnegative().optional(),
  volume: z.number().nonnegative().optional(),
  symbol: ticker.optional(),
});

/** An order update: `order_data` is the order as the venue reports it (Alpaca's order object). */
export const OrderUpdateSchema = z.object({
  type: z.literal('order'),
  timestamp: isoTimestamp,
  order_data: metadata.optional(),
  symbol: ticker.optional(),
});

export const TickerUpdateSchema = z.discriminatedUnion('type', [PriceUpdateSchema, OrderUpdateSchema]);

export type Registration = z.output<typeof RegistrationSchema>;

/**
 * Registrations whose client_id starts with this are a gateway's (its clients' rooms): the
 * broker streams at most its gateway share of tickers for them (docs/broker.md).
 */
export const GATEWAY_CLIENT_PREFIX = 'gateway-';
export type PriceUpdate = z.output<typeof PriceUpdateSchema>;
export type OrderUpdate = z.output<typeof OrderUpdateSchema>;
export type TickerUpdate = z.output<typeof TickerUpdateSchema>;

export const BrokerRegistration = defineChannel({
  name: 'BROKER_REGISTRATION',
  schema: RegistrationSchema,
  description: 'Bots ask the broker to start (subscribe) or stop (unsubscribe) streaming a ticker.',
});

export const TickerUpdates = defineChannel({
  name: 'TICKER_UPDATES_{ticker}',
  schema: TickerUpdateSchema,
  params: { ticker: TICKER },
  // A short history per ticker: a bot or a browser that reconnects catches up on what it
  // missed (each message carries its position), and anything older is one last-value read.
  history: { maxLen: 1_000 },
  // On a cluster each ticker's updates stay on the shard that holds its slot (with its
  // history stream and its broker lease), instead of being copied to every node.
  sharded: true,
  description: 'Every price and order update of one ticker, told apart by `type`.',
});

/** An order a bot asks the broker to route to its venue (the simulated one, or Alpaca). */
export const OrderRequestSchema = z
  .object({
    client_order_id: z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, "_", ".", ":" and "-"'),
    symbol: tickerInput,
    side: z.enum(['buy', 'sell']),
    qty: z.number().positive().max(1e9),
    type: z.enum(['market', 'limit']),
    limit_price: z.number().positive().optional(),
    time_in_force: z.enum(['day', 'gtc', 'ioc', 'fok']).default('day'),
    client_id: z.string().min(1).max(128).optional(),
  })
  .refine((o) => o.type !== 'limit' || o.limit_price !== undefined, { message: 'a limit order needs limit_price', path: ['limit_price'] })
  .refine((o) => o.type !== 'market' || o.limit_price === undefined, { message: 'a market order takes no limit_price', path: ['limit_price'] });

/**
 * A request to cancel an open order, by the client_order_id it was placed with. The venue's
 * answer comes on the ticker's channel as an order update: `canceled`, or
 * `order_cancel_rejected` with its reason (Alpaca's trade_updates events).
 */
export const OrderCancelSchema = z.object({
  client_order_id: z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, "_", ".", ":" and "-"'),
  symbol: tickerInput,
  client_id: z.string().min(1).max(128).optional(),
});

/** What the broker refused and why: bad registrations, tickers over the limit, feed failures. */
export const BrokerErrorSchema = z.object({
  code: z.string().min(1).max(64),
  message: z.string().max(2048),
  ticker: z.string().max(64).optional(),
  client_id: z.string().max(128).optional(),
  timestamp: isoTimestamp,
});

export type OrderRequestMessage = z.output<typeof OrderRequestSchema>;
export type OrderCancelMessage = z.output<typeof OrderCancelSchema>;
export type BrokerErrorMessage = z.output<typeof BrokerErrorSchema>;

export const OrderRequests = defineChannel({
  name: 'ORDER_REQUESTS',
  schema: OrderRequestSchema,
  description: "Orders bots ask the broker to place; every resulting update is published on the ticker's channel as an `order` message.",
});

export const OrderCancels = defineChannel({
  name: 'ORDER_CANCELS',
  schema: OrderCancelSchema,
  description: "Open orders bots ask the broker to cancel; the venue's answer (canceled, or order_cancel_rejected with its reason) is published on the ticker's channel.",
});

export const BrokerErrors = defineChannel({
  name: 'BROKER_ERRORS',
  schema: BrokerErrorSchema,
  description: 'Registrations and orders the broker rejected, and feed failures, with the reason.',
});

export const brokerCatalog = defineCatalog('broker', 'Market-data broker channels (seeds 000 and 001).', {
  BrokerRegistration,
  TickerUpdates,
  OrderRequests,
  OrderCancels,
  BrokerErrors,
});
