// The one place that knows whether tickbus talks to one Redis or to a Redis Cluster. Both
// sit behind the same small surface: send a command (routed by its key on a cluster),
// publish (sharded or not), subscribe, and report the connection going down and coming
// back. Everything above it (links, stores, the broker) is written once.
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis';
import calculateSlot from 'cluster-key-slot';
import { backoffDelay, resolveReconnect, type ReconnectOptions, type RedisConfig } from '../../core/config.ts';
import { ClusterInternals, type EventEmitterLike } from './cluster-internals.ts';

export type Listener = (message: string, channel: string) => void;

export interface ConnOptions {
  redis: RedisConfig;
  reconnect?: ReconnectOptions;
  connectTimeoutMs: number;
  /** CLIENT SETNAME on every connection. */
  name: string;
  /** Stop reconnecting (closing, or a first connection given up on). */
  giveUp: () => boolean;
  /**
   * On a cluster: how long a node may stay unreachable before the topology is read again
   * (a replica promoted in its place). @default 1000
   */
  topologyRefreshMs?: number;
}

export interface ConnHooks {
  /** The connection (one node, on a cluster) was lost and is being re-established. */
  down(cause: Error): void;
  /** Everything is reachable again (on a cluster: every shard has a ready master). */
  up(): void;
  /** The first connection is ready. */
  ready(): void;
  error(error: Error): void;
}

export interface RedisConn {
  readonly kind: 'single' | 'cluster';
  readonly isReady: boolean;
  readonly isOpen: boolean;
  connect(): Promise<void>;
  close(): Promise<void>;
  destroy(): void;
  /** One command; `key` routes it on a cluster (undefined: any node). */
  send<T>(args: string[], key: string | undefined): Promise<T>;
  /** PUBLISH, or SPUBLISH for a sharded channel on a cluster (one Redis: always PUBLISH). */
  publish(channel: string, payload: string, sharded: boolean): Promise<number>;
  /** The node that serves a key now (its master's address on a cluster; '' on one Redis). */
  nodeOf(key: string): string;
  subscribe(channel: string, listener: Listener, sharded: boolean): Promise<void>;
  unsubscribe(channel: string, listener: Listener, sharded: boolean): Promise<void>;
  pSubscribe(pattern: string, listener: Listener): Promise<void>;
  pUnsubscribe(pattern: string, listener: Listener): Promise<void>;
  /** A fresh connection of the same kind, for blocking reads. */
  duplicate(hooks: ConnHooks): RedisConn;
}

export function openConn(options: ConnOptions, hooks: ConnHooks): RedisConn {
  return options.redis.cluster ? new ClusterConn(options, hooks) : new SingleConn(options, hooks);
}

function definedOnly(o: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));
}

function nodeOptions(options: ConnOptions, closed: () => boolean) {
  const reconnect = resolveReconnect(options.reconnect);
  const cfg = options.redis;
  return {
    socket: {
      connectTimeout: options.connectTimeoutMs,
      tls: cfg.tls,
      // A private CA, a client certificate (mutual TLS), the certificate's name: only when set,
      // so that Node's defaults (and NODE_EXTRA_CA_CERTS) apply otherwise.
      ...(cfg.tlsOptions ? definedOnly({ ca: cfg.tlsOptions.ca, cert: cfg.tlsOptions.cert, key: cfg.tlsOptions.key, servername: cfg.tlsOptions.servername }) : {}),
      reconnectStrategy: (retries: number) => (options.giveUp() || closed() ? false : backoffDelay(retries, reconnect)),
    } as never,
    username: cfg.username,
    password: cfg.password,
    name: options.name,
    // Fail fast while disconnected instead of queueing without bound (the delivery
    // layer's fallback buffer decides what to keep).
    disableOfflineQueue: true,
    // node-redis's default per-command timeout makes each publish about 4x slower.
    commandOptions: { timeout: 0 },
  };
}

class SingleConn implements RedisConn {
  readonly kind = 'single';
  readonly #client: RedisClientType;
  readonly #options: ConnOptions;
  #everReady = false;
  #down = false;
  #destroyed = false;

  constructor(options: ConnOptions, hooks: ConnHooks) {
    this.#options = options;
    const cfg = options.redis;
    const node = nodeOptions(options, () => this.#destroyed);
    this.#client = createClient({ ...node, socket: { ...(node.socket as object), host: cfg.host, port: cfg.port } as never, database: cfg.db });
    this.#client.on('error', (err: Error) => hooks.error(err));
    this.#client.on('reconnecting', () => {
      if (!this.#everReady || this.#down) return;
      this.#down = true;
      hooks.down(new Error('connection lost'));
    });
    this.#client.on('ready', () => {
      if (!this.#everReady) {
        this.#everReady = true;
        hooks.ready();
      } else if (this.#down) {
        this.#down = false;
        hooks.up();
      }
    });
  }

  get isReady(): boolean {
    return this.#client.isReady;
  }
  get isOpen(): boolean {
    return this.#client.isOpen;
  }
  async connect(): Promise<void> {
    this.#destroyed = false; // a first attempt given up on may be followed by another
    await this.#client.connect();
  }
  async close(): Promise<void> {
    this.#destroyed = true;
    await this.#client.close();
  }
  destroy(): void {
    this.#destroyed = true;
    this.#client.destroy();
  }
  send<T>(args: string[]): Promise<T> {
    return this.#client.sendCommand<T>(args);
  }
  publish(channel: string, payload: string): Promise<number> {
    // One Redis: the seeds' services SUBSCRIBE, so every channel is classic pub/sub here.
    return this.#client.publish(channel, payload);
  }
  nodeOf(): string {
    return '';
  }
  async subscribe(channel: string, listener: Listener): Promise<void> {
    await this.#client.subscribe(channel, listener);
  }
  async unsubscribe(channel: string, listener: Listener): Promise<void> {
    await this.#client.unsubscribe(channel, listener);
  }
  async pSubscribe(pattern: string, listener: Listener): Promise<void> {
    await this.#client.pSubscribe(pattern, listener);
  }
  async pUnsubscribe(pattern: string, listener: Listener): Promise<void> {
    await this.#client.pUnsubscribe(pattern, listener);
  }
  duplicate(hooks: ConnHooks): RedisConn {
    return new SingleConn(this.#options, hooks);
  }
}

const CLASSIC_PUBLISH = "return redis.call('PUBLISH', ARGV[1], ARGV[2])";

/** Replies that mean "not here": the cluster client follows them. */
const REDIRECTED = /^(MOVED|ASK) /;

/** How often a cluster that lost a node is checked for being whole again. */
const PROBE_MS = 100;
/** Probe rounds between two readings of the topology while a node is down. */
const REDISCOVER_EVERY = 5;

class ClusterConn implements RedisConn {
  readonly kind = 'cluster';
  readonly #cluster: RedisClusterType;
  /** node-redis's undocumented parts, checked to exist (see cluster-internals.ts). */
  readonly #internals: ClusterInternals;
  readonly #options: ConnOptions;
  readonly #hooks: ConnHooks;
  #down = false;
  #probe: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #watched = new WeakSet<EventEmitterLike>();

  constructor(options: ConnOptions, hooks: ConnHooks) {
    this.#options = options;
    this.#hooks = hooks;
    const seeds = options.redis.cluster ?? [];
    const scheme = options.redis.tls ? 'rediss' : 'redis';
    this.#cluster = createCluster({
      rootNodes: seeds.map((s) => ({ url: `${scheme}://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}` })),
      defaults: nodeOptions(options, () => this.#closed),
      commandOptions: { timeout: 0 },
      // A master that stops answering is replaced by its replica after the cluster's node
      // timeout; read the topology again soon, so that commands and sharded subscriptions
      // move to the promoted replica without waiting for a MOVED.
      topologyRefreshOnReconnectionAttemptStrategy: options.topologyRefreshMs ?? 1000,
    });
    this.#internals = ClusterInternals.of(this.#cluster);
    this.#cluster.on('error', (err: Error) => hooks.error(err));
    // While a node is known to be down its client keeps failing to reconnect: the first
    // failure is news, the rest (until the cluster is whole again) are not.
    this.#cluster.on('node-error', (err: Error) => {
      if (!this.#closed && !this.#down) hooks.error(err);
    });
    this.#cluster.on('node-reconnecting', () => this.#lost());
  }

  #lost(why = 'a cluster node connection was lost'): void {
    if (this.#closed || !this.#cluster.isReady || this.#down) return;
    this.#down = true;
    this.#hooks.down(new Error(why));
    let rounds = 0;
    this.#probe = setInterval(() => {
      // node-redis reads the topology again only on a MOVED, or as its reconnection attempts
      // (spaced by back-off) come up; a promoted replica is found sooner by asking.
      if (++rounds % REDISCOVER_EVERY === 0) this.#rediscover().catch(() => undefined); // it catches its own failures; the next round tries again
      if (this.#whole()) {
        this.#watchMoves();
        clearInterval(this.#probe);
        this.#probe = undefined;
        this.#down = false;
        this.#hooks.up();
      }
    }, PROBE_MS);
    this.#probe.unref();
  }

  /**
   * A slot that moves (resharding) takes its sharded channels with it: Redis tells the
   * subscriber (SUNSUBSCRIBE) and node-redis subscribes again on the new owner, but what was
   * published between the two is missed. Reported as a short loss of connection, so that
   * the bus re-subscribes and catches its history channels up from their last positions.
   */
  #watchMoves(): void {
    for (const m of this.#internals.masters()) {
      const client = m.pubSub?.client;
      if (!client || this.#watched.has(client)) continue;
      this.#watched.add(client);
      client.on('sharded-channel-moved', (channel: string) => this.#lost(`sharded channel ${channel} moved with its slot`));
    }
  }

  async #rediscover(): Promise<void> {
    try {
      await this.#internals.rediscover();
    } catch {
      // no node answered: the next round tries again
    }
  }

  /** Every shard has a ready master connection, and so has every subscription connection in use. */
  #whole(): boolean {
    for (const m of this.#internals.masters()) {
      if (!m.client?.isReady) return false;
      if (m.pubSub && !m.pubSub.client.isReady) return false;
    }
    const pubSubNode = this.#internals.pubSubNode();
    if (pubSubNode && !pubSubNode.client.isReady) return false;
    // The slot table covers every slot with a master whose client is ready.
    for (let i = 0; i < 16384; i += 512) if (!this.#internals.slotMaster(i)?.client?.isReady) return false;
    return true;
  }

  get isReady(): boolean {
    return this.#cluster.isReady;
  }
  get isOpen(): boolean {
    return this.#cluster.isOpen;
  }
  async connect(): Promise<void> {
    this.#closed = false; // a first attempt given up on may be followed by another
    await this.#cluster.connect();
    try {
      this.#internals.checkConnected();
    } catch (error) {
      this.#closed = true;
      this.#cluster.destroy();
      throw error;
    }
    this.#hooks.ready();
  }
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#probe);
    await this.#cluster.close();
  }
  destroy(): void {
    this.#closed = true;
    clearInterval(this.#probe);
    this.#cluster.destroy();
  }
  send<T>(args: string[], key: string | undefined): Promise<T> {
    // The cluster client's own path (routing policies, redirection bookkeeping) costs about
    // four times a plain client's per command. When the slot's master connection is ready,
    // send there directly; a redirection (MOVED, ASK: the command did not run) or a
    // connection that is not ready goes the cluster client's way, which follows it.
    if (key !== undefined) {
      const client = this.#internals.slotMaster(calculateSlot(key))?.client;
      if (client?.isReady) {
        return client.sendCommand<T>(args).catch((error: unknown) => {
          if (REDIRECTED.test(String((error as Error)?.message))) return this.#cluster.sendCommand<T>(key, false, args);
          throw error;
        });
      }
    }
    return this.#cluster.sendCommand<T>(key, false, args);
  }
  publish(channel: string, payload: string, sharded: boolean): Promise<number> {
    if (sharded) return this.#cluster.sPublish(channel, payload);
    // node-redis sends a PUBLISH to any node, in turn; two publishes on one channel could
    // then reach a subscriber by two routes, out of order. A script is routed by the key it
    // is given: the channel's own slot, so a channel's publishes share one connection.
    return this.send<number>(['EVAL', CLASSIC_PUBLISH, '0', channel, payload], channel);
  }
  nodeOf(key: string): string {
    const slot = calculateSlot(key);
    const master = this.#internals.slotMaster(slot);
    return master?.address ?? `slot:${slot}`;
  }
  async subscribe(channel: string, listener: Listener, sharded: boolean): Promise<void> {
    if (!sharded) {
      await this.#cluster.subscribe(channel, listener);
      return;
    }
    await this.#cluster.sSubscribe(channel, listener);
    this.#watchMoves();
  }
  async unsubscribe(channel: string, listener: Listener, sharded: boolean): Promise<void> {
    if (sharded) await this.#cluster.sUnsubscribe(channel, listener);
    else await this.#cluster.unsubscribe(channel, listener as never);
  }
  async pSubscribe(pattern: string, listener: Listener): Promise<void> {
    await this.#cluster.pSubscribe(pattern, listener);
  }
  async pUnsubscribe(pattern: string, listener: Listener): Promise<void> {
    await this.#cluster.pUnsubscribe(pattern, listener);
  }
  duplicate(hooks: ConnHooks): RedisConn {
    return new ClusterConn(this.#options, hooks);
  }
}
