// The options RedisPublisher and RedisSubscriber accept: where Redis is (seed 001's
// host/port/db, or a URL, else REDIS_URL), plus the bus settings that make sense per client.
import type { BusOptions } from '../bus/context.ts';
import type { RedisOptions } from '../core/config.ts';

export type RedisClientOptions = RedisOptions & Pick<BusOptions, 'sender' | 'logger' | 'catalogs' | 'metrics' | 'limits' | 'reconnect' | 'connectTimeoutMs'>;

/** Splits the flat seed options into the bus's nested ones; the transport is always Redis. */
export function toBusOptions(options: RedisClientOptions): BusOptions {
  const { sender, logger, catalogs, metrics, limits, reconnect, connectTimeoutMs, ...redis } = options;
  return { transport: 'redis', redis, sender, logger, catalogs, metrics, limits, reconnect, connectTimeoutMs };
}
