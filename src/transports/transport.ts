// The seam between the bus and a message system. A transport moves opaque strings on
// named channels; it knows nothing of schemas or envelopes. Two implementations share
// this interface and one conformance suite: Redis (node-redis) and in-process memory.

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

export interface PublishLink extends Link {
  /** Publishes one payload; resolves with the number of receivers. */
  publish(channel: string, payload: string): Promise<number>;
  /** Publishes many payloads in one round trip, in order. */
  publishBatch(messages: readonly (readonly [channel: string, payload: string])[]): Promise<number[]>;
}

export interface SubscribeLink extends Link {
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  psubscribe(patterns: readonly string[]): Promise<void>;
  punsubscribe(patterns: readonly string[]): Promise<void>;
}

export interface Transport {
  /** 'redis' or 'memory'. */
  readonly kind: string;
  /** Where the transport points, safe to print (no password). */
  readonly target: string;
  createPublishLink(): PublishLink;
  createSubscribeLink(sink: MessageSink): SubscribeLink;
}
