// tickbus: typed, schema-validated channels over Redis for trading systems.
export * from './core/errors.ts';
export { CONSUMER_DEFAULTS, DEFAULTS } from './core/defaults.ts';
export {
  defineChannel,
  escapeGlob,
  type Channel,
  type ChannelRef,
  type ChannelParams,
  type ChannelSpec,
  type DataOf,
  type DeliveryMode,
  type ParamNames,
  type Retention,
  type WireFormat,
} from './core/channel.ts';
export { streamKey, deadLetterKey } from './core/keys.ts';
export { defineParam, checkParam, TICKER, IDENTIFIER, type ChannelParam, type ChannelParamOptions } from './core/channel-param.ts';
export { defineCatalog, catalogJsonSchema, ChannelResolver, type Catalog, type ResolvedChannel } from './core/catalog.ts';
export { catalogsAsyncApi, type AsyncApiOptions, type AsyncApiDelivery } from './core/asyncapi.ts';
export { createEnvelope, decodePayload, encodePayload, type Envelope } from './core/envelope.ts';
export { validate, validateSync, toJsonSchema, type InferInput, type InferOutput, type StandardSchemaV1 } from './core/schema.ts';
export { resolveRedisConfig, parseRedisUrl, backoffDelay, DEFAULT_REDIS_URL, type RedisOptions, type RedisConfig, type ReconnectOptions, type BusLimits } from './core/config.ts';
export { BusMetrics } from './core/metrics.ts';
export { createLogger, type Logger } from './core/logger.ts';
export type { Transport, PublishLink, SubscribeLink, StreamLink, StreamEntry, StreamInfo, StreamWrite, PublishReceipt, Outbound, MessageSink, LinkEvents } from './transports/transport.ts';
export { MemoryTransport, MemoryHub } from './transports/memory/memory-transport.ts';
export { globMatch } from './transports/memory/glob.ts';
export { RedisTransport, type RedisTransportOptions } from './transports/redis/redis-transport.ts';
export { Publisher, type BatchItem, type PublisherEvents } from './bus/publisher.ts';
export { createConsumer } from './bus/consume.ts';
export { Consumer, type ConsumeOptions, type ConsumerEvents, type ConsumerStats, type DeadLetter, type DurableContext, type DurableHandler } from './bus/consumer.ts';
export type { FallbackOptions, OverflowPolicy } from './bus/fallback-buffer.ts';
export { Subscriber, type ResumeResult, type MessageContext, type MessageHandler, type Subscription, type SubscribeOptions, type SubscriberEvents } from './bus/subscriber.ts';
export type { BusOptions, BusContext } from './bus/context.ts';
export { TickBus, createBus, createPublisher, createSubscriber, type BusEvents, type Role } from './bus/tick-bus.ts';
export * from './catalogs/index.ts';
export * as broker from './catalogs/broker.ts';
export * as tickstock from './catalogs/tickstock.ts';
export * as tradingEvents from './catalogs/trading-events.ts';
export {
  BrokerRegistration,
  TickerUpdates,
  RegistrationSchema,
  TickerUpdateSchema,
  PriceUpdateSchema,
  OrderUpdateSchema,
  type Registration,
  type PriceUpdate,
  type OrderUpdate,
  type TickerUpdate,
} from './catalogs/broker.ts';
export { BotClient, OrderTicket, createBotClient, type BotClientOptions, type TickerHandlers, type OrderInput } from './client/bot-client.ts';
export { ServiceHealth, HeartbeatSchema, type Heartbeat } from './catalogs/system.ts';
