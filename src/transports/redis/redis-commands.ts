// A plain command connection for the parts that keep state in Redis beside the bus (the
// broker's leases and last values, job records, the CLI's checks): one Redis or a cluster,
// chosen by the config, commands routed by their key. Not for pub/sub or blocking reads.
import { NotConnectedError } from '../../core/errors.ts';
import type { RedisConfig } from '../../core/config.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import { openConn, type RedisConn } from './redis-conn.ts';
import { translateRedisError } from './redis-link.ts';

export interface RedisCommandsOptions {
  /** CLIENT SETNAME. */
  name: string;
  /** How long connect() waits. @default 5000 */
  connectTimeoutMs?: number;
  /** Keep reconnecting after a lost connection (false: fail once, for one-shot CLI checks). @default true */
  reconnect?: boolean;
  onError?: (error: Error) => void;
}

export class RedisCommands {
  readonly #conn: RedisConn;
  readonly redis: RedisConfig;
  #closed = false;

  private constructor(redis: RedisConfig, options: RedisCommandsOptions) {
    this.redis = redis;
    const once = options.reconnect === false;
    this.#conn = openConn(
      { redis, connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, name: options.name, giveUp: () => this.#closed || once },
      { down: () => undefined, up: () => undefined, ready: () => undefined, error: (e) => options.onError?.(e) },
    );
  }

  static async connect(redis: RedisConfig, options: RedisCommandsOptions): Promise<RedisCommands> {
    const commands = new RedisCommands(redis, options);
    try {
      await commands.#conn.connect();
    } catch (error) {
      commands.#closed = true;
      if (commands.#conn.isOpen) commands.#conn.destroy();
      throw new NotConnectedError(`Could not connect to Redis at ${redis.display} (${(error as Error).message}). Start it, or point REDIS_URL / --redis-url at a running one.`, { cause: error });
    }
    return commands;
  }

  /** One command, routed by `key` on a cluster (undefined: any node); a failure comes back as the bus's typed error. */
  send<T>(args: string[], key: string | undefined): Promise<T> {
    return this.#conn.send<T>(args, key).catch((error: unknown) => {
      throw translateRedisError(error, this.redis);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#conn.isReady) {
      try {
        await this.#conn.close();
        return;
      } catch {
        // the socket is gone already
      }
    }
    if (this.#conn.isOpen) this.#conn.destroy();
  }
}

/** A hash as HGETALL answers it: a flat field, value list (RESP2) or a map (RESP3). */
export function hashReply(reply: unknown): Record<string, string> {
  if (Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  }
  if (reply instanceof Map) return Object.fromEntries([...(reply as Map<unknown, unknown>)].map(([k, v]) => [String(k), String(v)]));
  return (reply ?? {}) as Record<string, string>;
}
