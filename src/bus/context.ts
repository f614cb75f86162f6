// What a publisher and a subscriber share: the transport, the catalogs that resolve
// channel names, the sender name, limits, metrics and the logger. Built once from the
// options by the config loader's rules, then frozen.
import type { Catalog } from '../core/catalog.ts';
import { ChannelResolver } from '../core/catalog.ts';
import { resolveLimits, resolveRedisConfig, resolveSender, type BusLimits, type ReconnectOptions, type RedisOptions, type ResolvedLimits } from '../core/config.ts';
import { BusMetrics } from '../core/metrics.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { Registry } from 'prom-client';
import { Background } from '../core/background.ts';
import type { Transport } from '../transports/transport.ts';
import { MemoryTransport } from '../transports/memory/memory-transport.ts';
import { RedisTransport } from '../transports/redis/redis-transport.ts';
import { ConfigError } from '../core/errors.ts';
import { resolveFallback, type FallbackOptions, type ResolvedFallback } from './fallback-buffer.ts';

export interface BusOptions {
  /**
   * Where messages travel: 'redis' (the default), 'memory' (in-process), or a Transport.
   * @default 'redis'
   */
  transport?: Transport | 'redis' | 'memory';
  /** Redis connection; falls back to REDIS_URL, then redis://127.0.0.1:6379. */
  redis?: RedisOptions;
  /** Catalogs that resolve channel names for validation. @default every shipped catalog */
  catalogs?: readonly Catalog[];
  /** Name written into each envelope's `sender`. @default TICKBUS_SENDER or 'tickbus' */
  sender?: string;
  limits?: BusLimits;
  reconnect?: ReconnectOptions;
  /** How long connect() waits for the first connection. @default 5000 */
  connectTimeoutMs?: number;
  /** A prom-client registry (shared with the rest of a service) or BusMetrics. @default a registry of its own */
  metrics?: Registry | BusMetrics;
  logger?: Logger;
  /**
   * The publisher's fallback buffer (seed 004): while Redis is unreachable, keep messages
   * (bounded) and send them in order once it is back, instead of failing the publish.
   * `true` for the defaults. @default off
   */
  fallback?: boolean | FallbackOptions;
}

export interface BusContext {
  readonly transport: Transport;
  readonly resolver: ChannelResolver;
  readonly sender: string;
  readonly limits: ResolvedLimits;
  readonly metrics: BusMetrics;
  readonly logger: Logger;
  readonly reconnect: ReconnectOptions | undefined;
  readonly fallback: ResolvedFallback | undefined;
  /** Where fire-and-forget work reports a failed round (counted, logged, retried): every part of a service shares it. */
  readonly background: Background;
}

export function createContext(options: BusOptions, defaultCatalogs: readonly Catalog[]): BusContext {
  const resolver = new ChannelResolver(options.catalogs ?? defaultCatalogs);
  const transport = pickTransport(options, resolver);
  const metrics = options.metrics instanceof BusMetrics ? options.metrics : new BusMetrics(options.metrics);
  const logger = options.logger ?? createLogger('tickbus');
  return Object.freeze({
    transport,
    resolver,
    sender: resolveSender(options.sender),
    limits: resolveLimits(options.limits),
    metrics,
    logger,
    reconnect: options.reconnect,
    fallback: resolveFallback(options.fallback),
    background: new Background(logger, metrics.backgroundFailures),
  });
}

function pickTransport(options: BusOptions, resolver: ChannelResolver): Transport {
  const t = options.transport ?? 'redis';
  if (typeof t === 'object') return t;
  if (t === 'memory') return new MemoryTransport();
  if (t === 'redis') {
    return new RedisTransport({ redis: resolveRedisConfig(options.redis), reconnect: options.reconnect, connectTimeoutMs: options.connectTimeoutMs, isSharded: shardedBy(resolver) });
  }
  throw new ConfigError(`Unknown transport "${String(t)}": use 'redis', 'memory' or a Transport object.`);
}

/** Which concrete channels are sharded, from the catalogs (the resolver caches its answers). */
function shardedBy(resolver: ChannelResolver): (channel: string) => boolean {
  return (channel) => resolver.resolve(channel)?.channel.sharded ?? false;
}
