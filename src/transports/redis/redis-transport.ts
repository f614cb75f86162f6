// The Redis transport, on node-redis. Publishers and subscribers get connections of their
// own (a subscribed connection can run nothing but pub/sub commands). node-redis
// re-subscribes every channel and pattern after a reconnection; this layer turns its
// socket events into the bus's disconnected / reconnected events and its errors into
// typed ones.
import { createClient, type RedisClientType } from 'redis';
import { TypedEmitter } from '../../core/typed-emitter.ts';
import { ErrorCode, NotConnectedError, TransportError } from '../../core/errors.ts';
import { backoffDelay, resolveReconnect, type ReconnectOptions, type RedisConfig } from '../../core/config.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import type { LinkEvents, MessageSink, PublishLink, SubscribeLink, Transport } from '../transport.ts';

export interface RedisTransportOptions {
  redis: RedisConfig;
  reconnect?: ReconnectOptions;
  /** How long connect() waits for the first connection. @default 5000 */
  connectTimeoutMs?: number;
  /** Client name shown by CLIENT LIST. @default 'tickbus' */
  clientName?: string;
  /**
   * Send the publishes of one event-loop turn as one Lua-scripted command. Falls back to
   * one PUBLISH each when Redis refuses scripts. @default true
   */
  coalescePublishes?: boolean;
}

type Client = RedisClientType;

abstract class RedisLink extends TypedEmitter<LinkEvents> {
  protected readonly client: Client;
  #everConnected = false;
  #down = false;
  #closing = false;
  /** A first connection attempt that timed out: stop its retries, but allow connect() again. */
  #abandoned = false;
  readonly #options: RedisTransportOptions;

  constructor(options: RedisTransportOptions, role: 'pub' | 'sub') {
    super();
    this.#options = options;
    const reconnect = resolveReconnect(options.reconnect);
    const cfg = options.redis;
    this.client = createClient({
      socket: {
        host: cfg.host,
        port: cfg.port,
        tls: cfg.tls,
        connectTimeout: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        reconnectStrategy: (retries: number) => (this.#closing || this.#abandoned ? false : backoffDelay(retries, reconnect)),
      } as never,
      database: cfg.db,
      username: cfg.username,
      password: cfg.password,
      name: `${options.clientName ?? 'tickbus'}:${role}`,
      // Fail fast while disconnected instead of queueing without bound (the delivery
      // layer's fallback buffer decides what to keep).
      disableOfflineQueue: true,
      // node-redis's default per-command timeout makes each publish about 4x slower.
      commandOptions: { timeout: 0 },
    });
    this.client.on('error', (err: Error) => {
      // Before the first connection, connect() reports the failure once, with advice.
      if (!this.#closing && this.#everConnected) this.emit('error', new TransportError(ErrorCode.Transport, `Redis (${cfg.display}): ${err.message}`, { cause: err }));
    });
    this.client.on('reconnecting', () => {
      if (this.#closing || !this.#everConnected || this.#down) return;
      this.#down = true;
      this.emit('disconnected', new NotConnectedError(ErrorCode.NotConnected, `Lost the connection to Redis at ${cfg.display}; reconnecting.`));
    });
    this.client.on('ready', () => {
      if (!this.#everConnected) {
        this.#everConnected = true;
        this.emit('connected');
      } else if (this.#down) {
        this.#down = false;
        this.emit('reconnected');
      }
    });
  }

  get isConnected(): boolean {
    return this.client.isReady;
  }

  async connect(): Promise<void> {
    if (this.client.isOpen) return;
    this.#abandoned = false;
    const cfg = this.#options.redis;
    const timeoutMs = this.#options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let lastError: Error | undefined;
    const onError = (err: Error) => (lastError = err);
    this.client.on('error', onError);
    try {
      await Promise.race([
        this.client.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.#abandoned = true;
            this.client.destroy();
            const why = lastError ? `${lastError.message}` : 'no answer';
            reject(
              new NotConnectedError(
                ErrorCode.NotConnected,
                `Could not connect to Redis at ${cfg.display} within ${timeoutMs} ms (${why}). Start redis-server there, or point REDIS_URL at a running one.`,
                { cause: lastError },
              ),
            );
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.client.off('error', onError);
    }
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.client.isReady) {
      try {
        await this.client.close();
        return;
      } catch {
        // fall through: the socket is already gone, destroy what is left
      }
    }
    if (this.client.isOpen) this.client.destroy();
  }

  /** Maps node-redis's offline and closed errors to the bus's typed ones. */
  protected translate(error: unknown, channel?: string): Error {
    const err = error as Error;
    const name = err?.constructor?.name ?? '';
    if (name === 'ClientOfflineError' || name === 'ClientClosedError' || name === 'SocketClosedUnexpectedlyError' || name === 'DisconnectsClientError') {
      return new NotConnectedError(
        ErrorCode.NotConnected,
        `Redis at ${this.#options.redis.display} is not connected (${err.message}); the message was not published.`,
        { cause: err, channel },
      );
    }
    if (err instanceof Error && 'code' in err && typeof (err as { code: unknown }).code === 'string' && String((err as { code: string }).code).startsWith('TB_ERR')) return err;
    return new TransportError(ErrorCode.Transport, `Redis (${this.#options.redis.display}): ${err?.message ?? String(error)}`, { cause: err, channel });
  }
}

/**
 * Publishes several messages in one command: a Lua script that PUBLISHes each pair of its
 * arguments and returns the receiver counts. node-redis's cost per command (a promise, a
 * queue entry, a reply to parse) is most of what a publish costs the client; publishes
 * issued in the same turn of the event loop share one command instead. EVAL (not EVALSHA)
 * keeps it stateless: nothing to reload after SCRIPT FLUSH or a restart.
 */
// pcall, not call: a refused PUBLISH (an ACL on one channel) must not abort the rest of the
// batch half-way, since a script has no rollback; its error comes back in its place.
const PUBLISH_MANY =
  "local n = {} for i = 1, #ARGV, 2 do local r = redis.pcall('PUBLISH', ARGV[i], ARGV[i + 1]) if type(r) == 'table' then n[#n + 1] = tostring(r.err) else n[#n + 1] = r end end return n";

/**
 * Below this many commands in flight a publish is sent on its own, at once: an unloaded
 * publisher pays no batching delay. Above it, publishes queue and go out together.
 */
const DIRECT_IN_FLIGHT = 8;

/** Messages per script call, and characters of payload per call, at most. */
const CHUNK_MESSAGES = 256;
const CHUNK_CHARS = 1 << 20;

interface PendingPublish {
  readonly channel: string;
  readonly payload: string;
  readonly resolve: (receivers: number) => void;
  readonly reject: (error: Error) => void;
}

class RedisPublishLink extends RedisLink implements PublishLink {
  #pending: PendingPublish[] = [];
  #scheduled = false;
  /** Commands sent and not yet answered (resends included). */
  #inFlight = 0;
  /** Scripted batches not yet answered: while any is, nothing may overtake it. */
  #scriptsInFlight = 0;
  #idle: Array<() => void> = [];
  /** 'script' coalesces; 'plain' sends one PUBLISH per message (scripts off, or not allowed). */
  #mode: 'script' | 'plain';

  constructor(options: RedisTransportOptions) {
    super(options, 'pub');
    this.#mode = options.coalescePublishes === false ? 'plain' : 'script';
  }

  readonly #rethrow = (error: unknown): never => {
    const translated = this.translate(error);
    this.emit('publishFailed', translated);
    throw translated;
  };

  readonly #sentOne = (receivers: number): number => {
    this.#answered();
    return receivers;
  };
  readonly #failedOne = (error: unknown): never => {
    this.#answered();
    return this.#rethrow(error);
  };

  /** Decides once whether scripts may run, before any message depends on it. */
  override async connect(): Promise<void> {
    await super.connect();
    if (this.#mode !== 'script') return;
    try {
      await this.client.sendCommand(['EVAL', 'return 1', '0']);
    } catch (error) {
      if (isErrorReply(error)) this.#mode = 'plain'; // NOPERM, scripting disabled, a proxy
    }
  }

  publish(channel: string, payload: string): Promise<number> {
    if (this.#mode === 'plain') return this.client.publish(channel, payload).catch(this.#rethrow);
    // Nothing queued or scripted ahead of it (order holds) and the connection is not busy.
    if (this.#pending.length === 0 && this.#scriptsInFlight === 0 && this.#inFlight < DIRECT_IN_FLIGHT) {
      this.#inFlight++;
      return this.client.publish(channel, payload).then(this.#sentOne, this.#failedOne);
    }
    return new Promise<number>((resolve, reject) => {
      this.#pending.push({ channel, payload, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /** Through the same queue as publish(), so the two keep their relative order. */
  publishBatch(messages: readonly (readonly [string, string])[]): Promise<number[]> {
    return Promise.all(messages.map(([channel, payload]) => this.publish(channel, payload)));
  }

  /** Sends what is queued and waits for every answer (resends included) before closing. */
  override async close(): Promise<void> {
    this.#flush();
    if (this.#inFlight > 0 && this.client.isReady) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await super.close();
  }

  #answered(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = [];
    let start = 0;
    while (start < all.length) {
      let end = start;
      let chars = 0;
      while (end < all.length && end - start < CHUNK_MESSAGES && (end === start || chars < CHUNK_CHARS)) {
        chars += (all[end] as PendingPublish).payload.length;
        end++;
      }
      this.#send(all.slice(start, end));
      start = end;
    }
  };

  #send(chunk: PendingPublish[]): void {
    if (chunk.length === 1 || this.#mode === 'plain') {
      for (const p of chunk) {
        this.#inFlight++;
        this.client.publish(p.channel, p.payload).then(
          (receivers) => {
            this.#answered();
            p.resolve(receivers);
          },
          (error: unknown) => {
            this.#answered();
            this.#fail(p, error);
          },
        );
      }
      return;
    }
    const args = ['EVAL', PUBLISH_MANY, '0'];
    for (const p of chunk) args.push(p.channel, p.payload);
    this.#inFlight++;
    this.#scriptsInFlight++;
    this.client.sendCommand<Array<number | string>>(args).then(
      (replies) => {
        this.#scriptsInFlight--;
        for (let i = 0; i < chunk.length; i++) {
          const p = chunk[i] as PendingPublish;
          const reply = replies[i];
          if (typeof reply === 'number') p.resolve(reply);
          else this.#fail(p, new Error(String(reply)));
        }
        this.#answered();
      },
      (error: unknown) => {
        this.#scriptsInFlight--;
        if (isErrorReply(error)) {
          // The script did not run (scripts became unavailable after connect): publish one
          // by one from now on, starting with this chunk, in its place in the order.
          this.#mode = 'plain';
          this.#send(chunk);
        } else {
          for (const p of chunk) this.#fail(p, error);
        }
        this.#answered();
      },
    );
  }

  #fail(p: PendingPublish, error: unknown): void {
    const translated = this.translate(error);
    this.emit('publishFailed', translated);
    p.reject(translated);
  }
}

/** An error Redis answered with (as opposed to a connection failure). */
function isErrorReply(error: unknown): boolean {
  const name = (error as Error | undefined)?.constructor?.name ?? '';
  return name === 'ErrorReply' || name === 'SimpleError' || name === 'BlobError';
}

class RedisSubscribeLink extends RedisLink implements SubscribeLink {
  readonly #sink: MessageSink;
  readonly #exact = (message: string, channel: string) => this.#sink(channel, message, undefined);
  readonly #patternListeners = new Map<string, (message: string, channel: string) => void>();

  constructor(options: RedisTransportOptions, sink: MessageSink) {
    super(options, 'sub');
    this.#sink = sink;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    try {
      await this.client.subscribe([...channels], this.#exact);
    } catch (error) {
      throw this.translate(error);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    try {
      await this.client.unsubscribe([...channels], this.#exact);
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
        await this.client.pSubscribe(pattern, listener);
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
        await this.client.pUnsubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }
}

export class RedisTransport implements Transport {
  readonly kind = 'redis';
  readonly target: string;
  readonly options: RedisTransportOptions;

  constructor(options: RedisTransportOptions) {
    this.options = options;
    this.target = options.redis.display;
  }

  createPublishLink(): PublishLink {
    return new RedisPublishLink(this.options);
  }

  createSubscribeLink(sink: MessageSink): SubscribeLink {
    return new RedisSubscribeLink(this.options, sink);
  }
}
