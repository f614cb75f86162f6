// The parts of node-redis's cluster client that are not its documented API but that tickbus
// relies on, in one place behind typed accessors: the slot table (to send a command straight
// to its slot's master, and to name the node that serves a key), the masters and their
// sharded-subscription connections (to see the cluster whole again, and to hear a sharded
// channel move with its slot), the classic pub/sub node, and `_slots.rediscover()` (to read
// the topology again without waiting for a MOVED).
//
// Checked against redis (node-redis) 6.3.1, with @redis/client 6.3.1: package.json pins that
// exact version. A different node-redis may rename or reshape any of these; ClusterInternals
// checks them when a cluster client is created and again once it has connected, and throws a
// ClusterInternalsError that says what is missing, instead of failing later in a timer.
// Upgrading node-redis: read lib/cluster/index.js and cluster-slots.js of the new version,
// adapt this file, and update NODE_REDIS_CHECKED and the pin together.
import { TransportError } from '../../core/errors.ts';

/** The node-redis version these accessors were checked against (package.json pins it). */
export const NODE_REDIS_CHECKED = '6.3.1';

/** The cluster client lacks an internal tickbus relies on: a node-redis other than the one checked. */
export class ClusterInternalsError extends TransportError {
  override name = 'ClusterInternalsError';
  /** What is missing, as a path on the cluster client (e.g. `_slots.rediscover`). */
  readonly missing: string;

  constructor(missing: string) {
    super(
      `node-redis's cluster client has no ${missing}, which tickbus's Redis Cluster support relies on. tickbus was checked against redis ${NODE_REDIS_CHECKED} (the version its package.json pins); install that version, or adapt src/transports/redis/cluster-internals.ts to the one installed.`,
    );
    this.missing = missing;
  }
}

/** A node's own client, as tickbus uses it. */
export interface NodeClient {
  readonly isReady: boolean;
  sendCommand<T>(args: string[]): Promise<T>;
}

export interface EventEmitterLike {
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** A slot's master: its address (`host:port`) and, once connected, its client. */
export interface SlotMaster {
  readonly address?: string;
  readonly client?: NodeClient;
}

/** A master of the cluster; `pubSub` is its sharded-subscription connection, when one is open. */
export interface MasterView {
  readonly client?: { readonly isReady: boolean };
  readonly pubSub?: { readonly client: { readonly isReady: boolean } & EventEmitterLike };
}

/** The shape of node-redis 6.3.1's RedisCluster that the accessors read. */
interface Internals {
  readonly _slots: { rediscover(): Promise<void> };
  readonly slots: ReadonlyArray<{ readonly master: SlotMaster } | undefined>;
  readonly masters: readonly MasterView[];
  readonly pubSubNode?: { readonly client: { readonly isReady: boolean } };
}

/** The slots of a Redis Cluster: node-redis's slot table has one entry each. */
const SLOTS = 16384;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

export class ClusterInternals {
  readonly #cluster: Internals;

  private constructor(cluster: Internals) {
    this.#cluster = cluster;
  }

  /**
   * The accessors for a cluster client just created (not yet connected). Throws a
   * ClusterInternalsError when the client lacks what they read.
   */
  static of(cluster: object): ClusterInternals {
    const c = cluster as Record<string, unknown>;
    const slots = isObject(c._slots) ? c._slots : undefined;
    if (!slots) throw new ClusterInternalsError('_slots');
    if (typeof slots.rediscover !== 'function') throw new ClusterInternalsError('_slots.rediscover()');
    if (!Array.isArray(c.slots)) throw new ClusterInternalsError('slots[] (the slot table)');
    if (c.slots.length !== SLOTS) throw new ClusterInternalsError(`slots[] of ${SLOTS} entries (it has ${c.slots.length})`);
    if (!Array.isArray(c.masters)) throw new ClusterInternalsError('masters[]');
    if (!('pubSubNode' in c)) throw new ClusterInternalsError('pubSubNode');
    return new ClusterInternals(cluster as Internals);
  }

  /**
   * Checks what only a connected client has: the slot table filled with masters that have
   * an address, and the masters' clients (a node that was unreachable may have none yet)
   * able to send. Throws a ClusterInternalsError otherwise.
   */
  checkConnected(): void {
    const master: unknown = this.#cluster.slots[0]?.master;
    if (!isObject(master)) throw new ClusterInternalsError('slots[0].master once connected');
    if (typeof master.address !== 'string') throw new ClusterInternalsError('slots[].master.address');
    if (this.#cluster.masters.length === 0) throw new ClusterInternalsError('masters[] filled once connected');
    for (const m of this.#cluster.masters as readonly unknown[]) {
      if (!isObject(m)) throw new ClusterInternalsError('masters[] of objects');
      const client = m.client;
      if (client !== undefined && !(isObject(client) && typeof client.sendCommand === 'function' && typeof client.isReady === 'boolean')) {
        throw new ClusterInternalsError('masters[].client with sendCommand() and isReady');
      }
      // Present only while the master holds a sharded subscription.
      const pubSub = m.pubSub;
      if (pubSub !== undefined && !(isObject(pubSub) && isObject(pubSub.client) && typeof pubSub.client.on === 'function')) {
        throw new ClusterInternalsError('masters[].pubSub.client (an event emitter)');
      }
    }
  }

  /** The master serving a slot now (undefined before the topology is known). */
  slotMaster(slot: number): SlotMaster | undefined {
    return this.#cluster.slots[slot]?.master;
  }

  /** Every master known now. */
  masters(): readonly MasterView[] {
    return this.#cluster.masters;
  }

  /** The connection classic (not sharded) subscriptions use, when one is open. */
  pubSubNode(): { readonly client: { readonly isReady: boolean } } | undefined {
    return this.#cluster.pubSubNode;
  }

  /** Reads the topology again (a promoted replica found without waiting for a MOVED). */
  rediscover(): Promise<void> {
    return this.#cluster._slots.rediscover();
  }
}
