// tickbus/seed: seed 001's Python API (RedisPublisher, RedisSubscriber, CHANNELS, the
// message functions) with TypeScript names, as a thin layer over the typed bus.
export { RedisConnection, type RedisConnectionOptions } from './redis-connection.ts';
export { RedisPublisher } from './redis-publisher.ts';
export { RedisSubscriber, type SeedMessage, type SeedMessageHandler } from './redis-subscriber.ts';
export type { RedisClientOptions } from './client-options.ts';
export { CHANNELS } from './channels.ts';
export { MESSAGE_SCHEMAS } from './message-schemas.ts';
export { validateMessage, createMessage, formatForChannel, parseMessage, extractData, MessageValidationError } from './messages.ts';
export { BusError, ChannelParamError, ClosedError, DecodeError, ErrorCode, NotConnectedError, UnknownChannelError, ValidationError } from '../core/errors.ts';
export type { Envelope } from '../core/envelope.ts';
export type { Registration, TickerUpdate, PriceUpdate, OrderUpdate } from '../catalogs/broker.ts';
