// The Redis transport, on node-redis. Publishers and subscribers get connections of their
// own (a subscribed connection can run nothing but pub/sub commands). node-redis
// re-subscribes every channel and pattern after a reconnection; this layer turns its
// socket events into the bus's disconnected / reconnected events and its errors into
// typed ones. Here: the subscriptions, and the assembly of the links; the publish path is
// redis-publish-link.ts (its scripts and batching beside it), streams redis-stream-link.ts.
import type { RedisConfig } from '../../core/config.ts';
import type { MessageSink, PublishLink, StreamLink, SubscribeLink, Transport } from '../transport.ts';
import { RedisLink, type RedisTransportOptions } from './redis-link.ts';
import { RedisStreamLink } from './redis-stream-link.ts';
import { RedisPublishLink } from './redis-publish-link.ts';

export type { RedisTransportOptions };

class RedisSubscribeLink extends RedisLink implements SubscribeLink {
  readonly #sink: MessageSink;
  readonly #exact = (message: string, channel: string) => this.#sink(channel, message, undefined);
  readonly #patternListeners = new Map<string, (message: string, channel: string) => void>();
  readonly #isSharded: (channel: string) => boolean;

  constructor(options: RedisTransportOptions, sink: MessageSink) {
    super(options, 'sub');
    this.#sink = sink;
    this.#isSharded = this.clustered && options.isSharded ? options.isSharded : () => false;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    try {
      // One call a channel: on a cluster each sharded channel goes to its own shard.
      await Promise.all(channels.map((c) => this.conn.subscribe(c, this.#exact, this.#isSharded(c))));
    } catch (error) {
      throw this.translate(error);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    try {
      await Promise.all(channels.map((c) => this.conn.unsubscribe(c, this.#exact, this.#isSharded(c))));
    } catch (error) {
      throw this.translate(error);
    }
  }

  async psubscribe(patterns: readonly string[]): Promise<void> {
    try {
      for (const pattern of patterns) {
        if (this.#patternListeners.has(pattern)) continue;
        // node-redis does not pass the pattern to the listener: bind it here.
        const listener = (message: string, channel: string) => this.#sink(channel, message, pattern);
        this.#patternListeners.set(pattern, listener);
        await this.conn.pSubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }

  async punsubscribe(patterns: readonly string[]): Promise<void> {
    try {
      for (const pattern of patterns) {
        const listener = this.#patternListeners.get(pattern);
        if (!listener) continue;
        this.#patternListeners.delete(pattern);
        await this.conn.pUnsubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }
}

export class RedisTransport implements Transport {
  readonly kind = 'redis';
  readonly target: string;
  readonly shardedPubSub: boolean;
  readonly redis: RedisConfig;
  readonly options: RedisTransportOptions;

  constructor(options: RedisTransportOptions) {
    this.options = options;
    this.target = options.redis.display;
    this.shardedPubSub = options.redis.cluster !== undefined;
    this.redis = options.redis;
  }

  createPublishLink(): PublishLink {
    return new RedisPublishLink(this.options);
  }

  createSubscribeLink(sink: MessageSink): SubscribeLink {
    return new RedisSubscribeLink(this.options, sink);
  }

  createStreamLink(): StreamLink {
    return new RedisStreamLink(this.options);
  }
}
