// One node-redis connection with the bus's manners: bounded reconnection with back-off,
// no offline queue, no per-command timeout, and its socket events turned into the bus's
// connected / disconnected / reconnected events and typed errors.
import { TypedEmitter } from '../../core/typed-emitter.ts';
import { ConfigError, MissingGroupError, NotConnectedError, PermissionError, TransportError, type BusError } from '../../core/errors.ts';
import { tlsFailureAdvice, type ReconnectOptions, type RedisConfig } from '../../core/config.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import type { LinkEvents } from '../transport.ts';
import { openConn, type RedisConn } from './redis-conn.ts';

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
  /**
   * On a cluster, the channels that travel by sharded pub/sub (SPUBLISH / SSUBSCRIBE):
   * the bus answers from its catalogs. On one Redis every channel is classic pub/sub.
   */
  isSharded?: (channel: string) => boolean;
}

// MASTERDOWN, CLUSTERDOWN, TRYAGAIN: a cluster shard between a lost master and its promoted
// replica; LOADING, BUSY: a Redis reading its data or running a long script.
const NOT_READY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/;
// NOGROUP: also inside a script's error (the dead-letter script moves an entry of the group).
const NO_GROUP = /\bNOGROUP\b/;

const SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

export abstract class RedisLink extends TypedEmitter<LinkEvents> {
  protected readonly conn: RedisConn;
  #closing = false;
  /** A first connection attempt that timed out: stop its retries, but allow connect() again. */
  #abandoned = false;
  #everConnected = false;
  /** Collects the reason a first connection attempt fails, for connect()'s message. */
  #lastError: ((err: Error) => void) | undefined;
  readonly #options: RedisTransportOptions;

  constructor(options: RedisTransportOptions, role: string) {
    super();
    this.#options = options;
    const cfg = options.redis;
    this.conn = openConn(
      {
        redis: cfg,
        reconnect: options.reconnect,
        connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        name: `${options.clientName ?? 'tickbus'}:${role}`,
        giveUp: () => this.#closing || this.#abandoned,
      },
      {
        // Before the first connection, connect() reports the failure once, with advice.
        error: (err) => {
          this.#lastError?.(err);
          if (!this.#closing && this.#everConnected) this.emit('error', new TransportError(`Redis (${cfg.display}): ${err.message}`, { cause: err }));
        },
        down: (cause) => {
          if (this.#closing || !this.#everConnected) return;
          this.emit('disconnected', new NotConnectedError(`Lost the connection to Redis at ${cfg.display} (${cause.message}); reconnecting.`));
        },
        up: () => {
          if (!this.#closing) this.emit('reconnected');
        },
        ready: () => {
          if (this.#everConnected) return;
          this.#everConnected = true;
          this.emit('connected');
        },
      },
    );
  }

  /** True on a Redis Cluster. */
  protected get clustered(): boolean {
    return this.conn.kind === 'cluster';
  }

  get isConnected(): boolean {
    return this.conn.isReady;
  }

  async connect(): Promise<void> {
    if (this.conn.isOpen) return;
    this.#abandoned = false;
    const cfg = this.#options.redis;
    const timeoutMs = this.#options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let lastError: Error | undefined;
    let refused: ((error: BusError) => void) | undefined;
    this.#lastError = (err: Error) => {
      lastError = err;
      // A certificate problem does not go away by retrying: say at once what to set.
      const advice = cfg.tls ? tlsFailureAdvice(err, cfg) : undefined;
      if (advice) refused?.(new ConfigError(`Could not connect to Redis at ${cfg.display} over TLS: ${advice}`, { cause: err }));
    };
    try {
      await Promise.race([
        new Promise<never>((_, reject) => {
          refused = (error) => {
            refused = undefined; // once: the retries' later errors say the same
            this.#abandoned = true;
            this.conn.destroy();
            reject(error);
          };
        }),
        this.conn.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.#abandoned = true;
            this.conn.destroy();
            const why = lastError ? `${lastError.message}` : 'no answer';
            // A plain Redis port that is sent a TLS handshake neither answers nor closes.
            const advice = cfg.tls && !lastError ? `If Redis runs there without TLS on this port, use redis:// (or the port of its tls-port); else start redis-server there, or point REDIS_URL at a running one.` : 'Start redis-server there, or point REDIS_URL at a running one.';
            reject(
              new NotConnectedError(
                `Could not connect to Redis at ${cfg.display} within ${timeoutMs} ms (${why}). ${advice}`,
                { cause: lastError },
              ),
            );
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.#lastError = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.conn.isReady) {
      try {
        await this.conn.close();
        return;
      } catch {
        // fall through: the socket is already gone, destroy what is left
      }
    }
    if (this.conn.isOpen) this.conn.destroy();
  }

  /** Maps node-redis's offline and closed errors to the bus's typed ones (translateRedisError). */
  protected translate(error: unknown, channel?: string): Error {
    return translateRedisError(error, this.#options.redis, channel);
  }
}

/**
 * A node-redis failure as the bus's typed error: offline and closed sockets and a Redis not
 * serving yet are NotConnectedError (retryable), an ACL refusal PermissionError, NOGROUP
 * MissingGroupError, any other reply TransportError. Every link and the command connection use it.
 */
export function translateRedisError(error: unknown, redis: RedisConfig, channel?: string): Error {
  const err = error as Error;
  const name = err?.constructor?.name ?? '';
  // A command in flight when the socket broke is rejected with the socket's own error.
  const socketCode = (err as { code?: unknown } | undefined)?.code;
  if (
    name === 'ClientOfflineError' ||
    name === 'ClientClosedError' ||
    name === 'SocketClosedUnexpectedlyError' ||
    name === 'DisconnectsClientError' ||
    (typeof socketCode === 'string' && SOCKET_ERRORS.has(socketCode))
  ) {
    return new NotConnectedError(
      `Redis at ${redis.display} is not connected (${err.message}); the command did not complete.`,
      { cause: err, channel },
    );
  }
  // Connected, but not serving yet (loading its data after a restart, busy with a script):
  // as good as unreachable for now, and worth trying again, not giving up on.
  if (isErrorReply(err) && NOT_READY.test(String(err.message))) {
    return new NotConnectedError(`Redis at ${redis.display} is not ready (${err.message}); try again shortly.`, { cause: err, channel });
  }
  if (err instanceof Error && 'code' in err && typeof (err as { code: unknown }).code === 'string' && String((err as { code: string }).code).startsWith('TB_ERR')) return err;
  if (isErrorReply(err) && String(err.message).startsWith('NOPERM')) return new PermissionError(refusedByAcl(String(err.message), redis, channel), { cause: err, channel });
  // The stream or its group is gone: a consumer makes it again (the one Redis reply a caller acts on).
  if (isErrorReply(err) && NO_GROUP.test(String(err.message))) return new MissingGroupError(`Redis (${redis.display}): ${err.message}`, { cause: err, channel });
  return new TransportError(`Redis (${redis.display}): ${err?.message ?? String(error)}`, { cause: err, channel });
}

/**
 * A command the Redis user's ACL refused, said as the permission to grant: Redis names only
 * the kind (a command, a channel, a key), so the channel is added when it is known.
 */
export function refusedByAcl(reply: string, redis: RedisConfig, channel?: string): string {
  const user = redis.username ?? 'default';
  const command = /run the '([^']+)' command/.exec(reply)?.[1];
  const missing = command
    ? `the command "${command.toUpperCase()}" (+${command})`
    : /channels/.test(reply)
      ? `the channel ${channel ? `"${channel}" (&${channel}, or a pattern that covers it)` : 'of this command (&<channel>, or a pattern that covers it)'}`
      : /keys/.test(reply)
        ? `a key it used (~<pattern> for the key, %R~ to read, %W~ to write)`
        : 'a permission';
  return `Redis (${redis.display}) refused it: the ACL of user "${user}" lacks ${missing}. Grant it (ACL SETUSER ${user} …), or use a user whose role includes this (docs/operations.md#acls). [${reply}]`;
}

/** An error Redis answered with (as opposed to a connection failure). */
export function isErrorReply(error: unknown): boolean {
  const name = (error as Error | undefined)?.constructor?.name ?? '';
  return name === 'ErrorReply' || name === 'SimpleError' || name === 'BlobError';
}

