// The in-process transport: the embedded default when a single process runs the whole
// system (and the reference the Redis transport is checked against). Delivery is
// asynchronous and in publish order, like Redis; patterns follow Redis's glob rules.
import { TypedEmitter } from '../../core/typed-emitter.ts';
import { ConfigError, LinkClosedError, NotConnectedError } from '../../core/errors.ts';
import type { LinkEvents, MessageSink, Outbound, PublishLink, PublishReceipt, StreamWrite, SubscribeLink, Transport } from '../transport.ts';
import { globMatch } from './glob.ts';

/** A shared in-process message space. Links of the same hub see each other's messages. */
export class MemoryHub {
  readonly #exact = new Map<string, Set<MemorySubscribeLink>>();
  readonly #patterns = new Map<string, Set<MemorySubscribeLink>>();
  #queue: Array<{ channel: string; payload: string; to: Array<[MemorySubscribeLink, string | undefined]> }> = [];
  #scheduled = false;

  /**
   * Fans out like Redis: the receivers are the subscriptions that exist when the message is
   * published (that count is returned), and delivery happens on a later turn, in order.
   */
  publish(channel: string, payload: string): number {
    const to: Array<[MemorySubscribeLink, string | undefined]> = [];
    const exact = this.#exact.get(channel);
    if (exact) for (const link of exact) to.push([link, undefined]);
    for (const [pattern, links] of this.#patterns) {
      if (globMatch(pattern, channel)) for (const link of links) to.push([link, pattern]);
    }
    if (to.length === 0) return 0;
    this.#queue.push({ channel, payload, to });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    return to.length;
  }

  #flush(): void {
    const batch = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    for (const { channel, payload, to } of batch) {
      for (const [link, pattern] of to) link.deliver(channel, payload, pattern);
    }
  }

  add(kind: 'exact' | 'pattern', key: string, link: MemorySubscribeLink): void {
    const map = kind === 'exact' ? this.#exact : this.#patterns;
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(link);
  }

  remove(kind: 'exact' | 'pattern', key: string, link: MemorySubscribeLink): void {
    const map = kind === 'exact' ? this.#exact : this.#patterns;
    const set = map.get(key);
    if (!set) return;
    set.delete(link);
    if (set.size === 0) map.delete(key);
  }

  /** Number of distinct channels and patterns with a subscriber (PUBSUB NUMSUB-like, for tests). */
  get subscriptionCount(): number {
    return this.#exact.size + this.#patterns.size;
  }
}

abstract class MemoryLink extends TypedEmitter<LinkEvents> {
  #state: 'new' | 'open' | 'closed' = 'new';

  get isConnected(): boolean {
    return this.#state === 'open';
  }

  connect(): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new LinkClosedError('This memory link is closed.'));
    if (this.#state === 'new') {
      this.#state = 'open';
      this.emit('connected');
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#state = 'closed';
    this.onClose();
    return Promise.resolve();
  }

  protected onClose(): void {}

  protected ensureOpen(): void {
    if (this.#state !== 'open') {
      throw new NotConnectedError('The in-memory transport is not connected: call connect() first.');
    }
  }
}

class MemoryPublishLink extends MemoryLink implements PublishLink {
  private readonly hub: MemoryHub;

  constructor(hub: MemoryHub) {
    super();
    this.hub = hub;
  }

  publish(channel: string, payload: string, stream?: StreamWrite): Promise<PublishReceipt> {
    try {
      this.ensureOpen();
      return Promise.resolve(this.#publish(channel, payload, stream));
    } catch (error) {
      return rejected(error);
    }
  }

  publishBatch(messages: readonly Outbound[]): Promise<PublishReceipt[]> {
    try {
      this.ensureOpen();
      return Promise.resolve(messages.map((m) => this.#publish(m.channel, m.payload, m.stream)));
    } catch (error) {
      return rejected(error);
    }
  }

  // Memory keeps no streams: a channel's history is skipped (its messages carry no
  // position, and a resume reports that history is unavailable); a durable channel is
  // refused rather than silently downgraded to at-most-once.
  #publish(channel: string, payload: string, stream: StreamWrite | undefined): PublishReceipt {
    if (stream && !stream.publish) {
      throw new ConfigError(`"${channel}" is a durable channel: it needs Redis Streams, which the in-memory transport does not have. Use the Redis transport.`);
    }
    return { status: 'sent', receivers: this.hub.publish(channel, payload), position: undefined };
  }
}

class MemorySubscribeLink extends MemoryLink implements SubscribeLink {
  readonly #exact = new Set<string>();
  readonly #patterns = new Set<string>();

  private readonly hub: MemoryHub;
  private readonly sink: MessageSink;

  constructor(hub: MemoryHub, sink: MessageSink) {
    super();
    this.hub = hub;
    this.sink = sink;
  }

  deliver(channel: string, payload: string, pattern: string | undefined): void {
    if (this.isConnected) this.sink(channel, payload, pattern);
  }

  #change(kind: 'exact' | 'pattern', keys: readonly string[], add: boolean): Promise<void> {
    try {
      this.ensureOpen();
    } catch (error) {
      return rejected(error);
    }
    const own = kind === 'exact' ? this.#exact : this.#patterns;
    for (const key of keys) {
      if (add) {
        own.add(key);
        this.hub.add(kind, key, this);
      } else {
        own.delete(key);
        this.hub.remove(kind, key, this);
      }
    }
    return Promise.resolve();
  }

  subscribe(channels: readonly string[]): Promise<void> {
    return this.#change('exact', channels, true);
  }
  unsubscribe(channels: readonly string[]): Promise<void> {
    return this.#change('exact', channels, false);
  }
  psubscribe(patterns: readonly string[]): Promise<void> {
    return this.#change('pattern', patterns, true);
  }
  punsubscribe(patterns: readonly string[]): Promise<void> {
    return this.#change('pattern', patterns, false);
  }

  protected override onClose(): void {
    for (const c of this.#exact) this.hub.remove('exact', c, this);
    for (const p of this.#patterns) this.hub.remove('pattern', p, this);
    this.#exact.clear();
    this.#patterns.clear();
  }
}

const sharedHub = new MemoryHub();

export class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly target = 'in-process memory';
  readonly hub: MemoryHub;

  /** Transports built on the same hub (by default, the process-wide one) see each other. */
  constructor(hub: MemoryHub = sharedHub) {
    this.hub = hub;
  }

  createPublishLink(): PublishLink {
    return new MemoryPublishLink(this.hub);
  }

  createSubscribeLink(sink: MessageSink): SubscribeLink {
    return new MemorySubscribeLink(this.hub, sink);
  }
}

function rejected(error: unknown): Promise<never> {
  return Promise.reject(error instanceof Error ? error : new Error(String(error)));
}
