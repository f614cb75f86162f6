// RedisConnection from seed 001: one plain node-redis client for commands the bus does not
// cover (GET, SET, HSET...), configured by the same rules as the bus.
import { createClient, type RedisClientType } from 'redis';
import type { BusOptions } from '../bus/context.ts';
import { backoffDelay, resolveReconnect, resolveRedisConfig, tlsFailureAdvice, type RedisConfig, type RedisOptions, type ResolvedTls } from '../core/config.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { ConfigError, NotConnectedError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';

/** The TLS settings node-redis passes on to tls.connect, only those set. */
function tlsSocketOptions(tls: ResolvedTls): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = { tls: true };
  for (const [name, value] of [['ca', tls.ca], ['cert', tls.cert], ['key', tls.key], ['servername', tls.servername]] as const) if (value !== undefined) out[name] = value;
  return out;
}

export type RedisConnectionOptions = RedisOptions & Pick<BusOptions, 'logger' | 'reconnect' | 'connectTimeoutMs'>;

export class RedisConnection {
  /** Where the client points; `config.display` masks the password. */
  readonly config: RedisConfig;
  readonly #client: RedisClientType;
  readonly #logger: Logger;
  #everConnected = false;
  #closing = false;

  /** Resolves the address now (options, then REDIS_URL, then the default); connect() opens it. */
  constructor(options: RedisConnectionOptions = {}) {
    const { logger, reconnect, connectTimeoutMs, ...redis } = options;
    this.config = resolveRedisConfig(redis);
    this.#logger = logger ?? createLogger('tickbus');
    const delays = resolveReconnect(reconnect);
    this.#client = createClient({
      url: this.config.url,
      name: 'tickbus:seed',
      socket: {
        connectTimeout: connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        // Before the first connection, give up at once so connect() rejects instead of
        // retrying forever; afterwards, reconnect with back-off like the bus does.
        reconnectStrategy: (retries: number) => (this.#everConnected && !this.#closing ? backoffDelay(retries, delays) : false),
        ...(this.config.tlsOptions ? tlsSocketOptions(this.config.tlsOptions) : {}),
      } as never,
    });
    this.#client.on('ready', () => {
      this.#everConnected = true;
    });
    // node-redis emits an 'error' per failed attempt, and an EventEmitter without an 'error'
    // listener crashes the process; before the first connection, connect() reports it instead.
    this.#client.on('error', (err: Error) => {
      if (this.#everConnected && !this.#closing) this.#logger.warn({ err, target: this.config.display }, 'redis connection error');
    });
  }

  /** The node-redis client. Commands need connect() first (JavaScript cannot connect synchronously). */
  get connection(): RedisClientType {
    return this.#client;
  }

  get isConnected(): boolean {
    return this.#client.isReady;
  }

  /** Opens the connection; rejects with NotConnectedError when Redis cannot be reached. */
  async connect(): Promise<this> {
    if (this.#client.isOpen) return this;
    this.#closing = false;
    try {
      await this.#client.connect();
    } catch (cause) {
      const why = cause instanceof Error ? cause.message : String(cause);
      const advice = cause instanceof Error && this.config.tls ? tlsFailureAdvice(cause, this.config) : undefined;
      if (advice) throw new ConfigError(`Could not connect to Redis at ${this.config.display} over TLS: ${advice}`, { cause });
      throw new NotConnectedError(
        `Could not connect to Redis at ${this.config.display} (${why}). Start redis-server there, or point REDIS_URL at a running one.`,
        { cause },
      );
    }
    return this;
  }

  /** Closes the connection after pending commands finish; safe to call twice or before connect(). */
  async disconnect(): Promise<void> {
    this.#closing = true;
    if (this.#client.isReady) {
      try {
        await this.#client.close();
        return;
      } catch {
        // the socket is already gone: destroy what is left below
      }
    }
    if (this.#client.isOpen) this.#client.destroy();
  }
}
