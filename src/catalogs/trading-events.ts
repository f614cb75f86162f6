// The trading-events catalog (seed 004): signal, order, position and price events with
// time-zone-aware timestamps and decimals written as strings, as the pydantic models of
// that seed serialise them (bare JSON, no envelope).
import { z } from 'zod';
import { defineChannel } from '../core/channel.ts';
import { defineCatalog } from '../core/catalog.ts';
import { TICKER } from '../core/channel-param.ts';
import { decimalString, nonNegativeInt, ticker, zonedTimestamp } from './fields.ts';

export const SignalEventSchema = z.object({
  event_type: z.literal('signals.generated'),
  timestamp: zonedTimestamp,
  strategy_id: z.string().min(1).max(128),
  symbols: z.array(ticker).min(1),
  num_signals: nonNegativeInt,
  as_of_date: z.iso.date(),
});

export const OrderEventSchema = z.object({
  event_type: z.literal('orders.executed'),
  timestamp: zonedTimestamp,
  run_id: z.uuid(),
  strategy_id: z.string().min(1).max(128),
  num_orders: nonNegativeInt,
  num_accepted: nonNegativeInt,
  num_rejected: nonNegativeInt,
});

export const PositionEventSchema = z.object({
  event_type: z.literal('positions.updated'),
  timestamp: zonedTimestamp,
  symbol: ticker,
  action: z.enum(['buy', 'sell', 'fill', 'partial_fill']),
  qty_change: z.number().int(),
  new_qty: z.number().int(),
  price: decimalString,
  strategy_id: z.string().min(1).max(128),
});

export const PriceUpdateEventSchema = z.object({
  event_type: z.literal('price.updated'),
  symbol: ticker,
  price: decimalString,
  timestamp: z.iso.datetime({ offset: true, local: true }),
});

export type SignalEvent = z.output<typeof SignalEventSchema>;
export type OrderEvent = z.output<typeof OrderEventSchema>;
export type PositionEvent = z.output<typeof PositionEventSchema>;
export type PriceUpdateEvent = z.output<typeof PriceUpdateEventSchema>;

const bare = 'bare' as const;

export const SignalsGenerated = defineChannel({ name: 'signals.generated', schema: SignalEventSchema, wire: bare, description: 'A strategy generated signals.' });
export const OrdersExecuted = defineChannel({ name: 'orders.executed', schema: OrderEventSchema, wire: bare, description: 'A run of orders was executed.' });
export const PositionsUpdated = defineChannel({ name: 'positions.updated', schema: PositionEventSchema, wire: bare, description: 'A position changed.' });
export const PriceUpdated = defineChannel({
  name: 'price.updated.{symbol}',
  schema: PriceUpdateEventSchema,
  params: { symbol: TICKER },
  wire: bare,
  description: 'Mid price of one symbol, from quotes.',
});

export const tradingEventsCatalog = defineCatalog('trading-events', 'Signal, order, position and price events (seed 004).', {
  SignalsGenerated,
  OrdersExecuted,
  PositionsUpdated,
  PriceUpdated,
});
