// The seam between the bus and a message system. A transport moves opaque strings on
// named channels; it knows nothing of schemas or envelopes. Two implementations share
// this interface and one conformance suite: Redis (node-redis) and in-process memory.
import type { RedisConfig } from '../core/config.ts';

/** Delivers one received payload. `pattern` is set when a pattern subscription matched. */
export type MessageSink = (channel: string, payload: string, pattern: string | undefined) => void;

export type LinkEvents = {
  /** The link is up for the first time. */
  connected: () => void;
  /** The link was lost; it is reconnecting with back-off. */
  disconnected: (cause: Error) => void;
  /** The link is back, and (for subscribers) every channel and pattern is subscribed again. */
  reconnected: () => void;
  /** A transport failure that is not a disconnection, or a failed reconnection attempt. */
  error: (error: Error) => void;
  /** A publish failed (the caller's promise rejects with the same error). */
  publishFailed: (error: Error) => void;
};

export interface Link {
  readonly isConnected: boolean;
  connect(): Promise<void>;
  /** Releases the connection; pending work is finished or failed, never left hanging. */
  close(): Promise<void>;
  on<K extends keyof LinkEvents>(event: K, listener: LinkEvents[K]): this;
  off<K extends keyof LinkEvents>(event: K, listener: LinkEvents[K]): this;
}

/**
 * A stream write that goes with a message: a durable channel's append (no PUBLISH), or a
 * pub/sub channel's history entry (XADD, then PUBLISH with the new position in the envelope,
 * atomically, so the position a subscriber sees is the one history holds).
 */
export interface StreamWrite {
  readonly key: string;
  /** Also PUBLISH on the channel (history); false for a durable channel. */
  readonly publish: boolean;
  readonly maxLen: number | undefined;
  readonly maxAgeMs: number | undefined;
  /**
   * Publish only while `tickbus:{<channel>}:owner` holds this token (a lease's fencing
   * token), checked in the same atomic step as the write: a process whose lease passed to
   * another is refused (FencedError), never interleaved with the new holder.
   */
  readonly fence?: string;
}

/** What happened to one message. */
export interface PublishReceipt {
  /**
   * `buffered`: Redis was unreachable and the fallback buffer holds it for later;
   * `dropped`: the buffer was full and its policy gave this message up.
   */
  readonly status: 'sent' | 'buffered' | 'dropped';
  /** Subscribers Redis counted (0 for durable channels and buffered messages). */
  readonly receivers: number;
  /** The stream position, for durable channels and channels with history. */
  readonly position: string | undefined;
}

/** One message on its way out. */
export interface Outbound {
  readonly channel: string;
  readonly payload: string;
  readonly stream: StreamWrite | undefined;
}

export interface PublishLink extends Link {
  /** Publishes one payload (and writes its stream entry, if any). */
  publish(channel: string, payload: string, stream?: StreamWrite): Promise<PublishReceipt>;
  /** Publishes many payloads in one round trip, in order. */
  publishBatch(messages: readonly Outbound[]): Promise<PublishReceipt[]>;
}

export interface SubscribeLink extends Link {
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  psubscribe(patterns: readonly string[]): Promise<void>;
  punsubscribe(patterns: readonly string[]): Promise<void>;
}

/** One stream entry; `payload` is undefined when the entry has no tickbus payload field. */
export interface StreamEntry {
  readonly id: string;
  readonly payload: string | undefined;
}

export interface StreamInfo {
  readonly length: number;
  readonly firstId: string | undefined;
  readonly lastId: string;
  /** The newest id removed by XDEL (Redis 7.0 does not count trimming here). */
  readonly maxDeletedId: string;
  /** Entries ever appended. */
  readonly entriesAdded: number;
}

export interface GroupPosition {
  readonly lastDeliveredId: string;
  /** Entries the group has read, when Redis knows it. */
  readonly entriesRead: number | undefined;
}

/**
 * Stream commands for durable channels and history. Blocking reads get a connection of
 * their own, so that acknowledgements and claims never wait behind a BLOCK; close() ends
 * a blocking read at once.
 */
export interface StreamLink extends Link {
  /** Creates the consumer group (and the stream) if missing; `start` is '$', '0' or an id. True when it created it. */
  ensureGroup(key: string, group: string, start: string): Promise<boolean>;
  /** XREADGROUP: `from` is '>' for new entries, '0' for this consumer's unacknowledged ones. */
  readGroup(key: string, group: string, consumer: string, from: string, count: number, blockMs: number): Promise<StreamEntry[]>;
  ack(key: string, group: string, ids: readonly string[]): Promise<number>;
  /** XAUTOCLAIM: entries idle longer than `minIdleMs` move to `consumer`. */
  claim(key: string, group: string, consumer: string, minIdleMs: number, cursor: string, count: number): Promise<{ cursor: string; entries: StreamEntry[]; deleted: string[] }>;
  /**
   * XCLAIM of one entry this consumer holds, for a retry: counts one more delivery in Redis
   * (so attempts survive a crash) and resets its idle time. Undefined when it is gone.
   */
  reclaim(key: string, group: string, consumer: string, id: string): Promise<StreamEntry | undefined>;
  /** Resets the idle time of an entry this consumer holds, without counting a delivery (XCLAIM … JUSTID). */
  touch(key: string, group: string, consumer: string, id: string): Promise<void>;
  /** How many times each entry has been delivered (XPENDING). */
  deliveries(key: string, group: string, ids: readonly string[]): Promise<Map<string, number>>;
  /** Atomically appends to the dead-letter stream and acknowledges the entry. */
  deadLetter(key: string, group: string, id: string, deadKey: string, fields: Readonly<Record<string, string>>, maxLen: number): Promise<void>;
  /** Entries from `startId` on (inclusive, or after it when `exclusive`), oldest first. */
  range(key: string, startId: string, count: number, exclusive: boolean): Promise<StreamEntry[]>;
  /** Entries with every field (dead letters), from `startId` on, oldest first. */
  rangeFields(key: string, startId: string, count: number): Promise<Array<{ id: string; fields: Record<string, string> }>>;
  /** Moves a dead letter's payload back onto its stream (a fresh entry) and deletes the letter; the new position, or undefined if it was gone. */
  requeue(deadKey: string, key: string, id: string, maxLen: number): Promise<string | undefined>;
  /** The newest entry. */
  latest(key: string): Promise<StreamEntry | undefined>;
  info(key: string): Promise<StreamInfo | undefined>;
  /** How far a consumer group has read, or undefined when there is no such group. */
  groupPosition(key: string, group: string): Promise<GroupPosition | undefined>;
  /** Ends a blocked read now (it rejects); later reads open a new connection. */
  abortReads(): void;
}

export interface Transport {
  /** 'redis' or 'memory'. */
  readonly kind: string;
  /** Where the transport points, safe to print (no password). */
  readonly target: string;
  /** True on a Redis Cluster: channels declared sharded travel by SPUBLISH / SSUBSCRIBE. */
  readonly shardedPubSub?: boolean;
  /** The Redis this transport talks to, for services that open a command link beside it (transports/commands.ts); undefined in memory. */
  readonly redis?: RedisConfig;
  createPublishLink(): PublishLink;
  createSubscribeLink(sink: MessageSink): SubscribeLink;
  /** Undefined when the transport has no streams (memory): durable channels need Redis. */
  createStreamLink?(): StreamLink;
}
