// Receives, decodes, validates and dispatches. Decoding never throws into the read loop:
// bad JSON, a missing envelope field, a schema violation or an oversized payload becomes an
// 'error' event with a stable code and the channel, is counted, and the next message is
// read as usual. Handlers are isolated: one that throws is reported, the rest go on.
import { streamKey, type Channel, type ChannelParams, type ChannelRef } from '../core/channel.ts';
import { decodePayload } from '../core/envelope.ts';
import { BusError, ChannelParamError, ClosedError, ConfigError, ErrorCode, HandlerError, NotConnectedError, preview } from '../core/errors.ts';
import { compareStreamIds, isStreamId } from '../core/stream-id.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import { check, validationError, type CheckResult, type InferOutput, type StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { LogThrottle } from '../core/logger.ts';
import type { StreamEntry, StreamLink, SubscribeLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { DeliveryLanes } from './delivery-lane.ts';
import { createConsumer, type ConsumeOptions, type Consumer } from './consumer.ts';
import { SubscriptionTable, type SubscriptionKind } from './subscription-table.ts';
import { isGlob } from './targets.ts';

/** What a handler learns about a message besides its data. */
export interface MessageContext<P = Readonly<Record<string, string>>> {
  /** The concrete channel the message arrived on. */
  readonly channel: string;
  /** The pattern that matched, for pattern subscriptions. */
  readonly pattern: string | undefined;
  /** The channel's parameters (`{ ticker: 'AAPL' }` on TICKER_UPDATES_AAPL). */
  readonly params: P;
  /** The envelope's timestamp (undefined on bare channels). */
  readonly timestamp: string | undefined;
  /** The envelope's sender (undefined on bare channels). */
  readonly sender: string | undefined;
  /** The envelope's message id, when the writer sent one. */
  readonly id: string | undefined;
  /** The message's position in the channel's history, on channels that keep one. */
  readonly position: string | undefined;
  /** True for a message replayed from history on a resume, not received live. */
  readonly replayed: boolean;
}

export type MessageHandler<D, P = Readonly<Record<string, string>>> = (data: D, context: MessageContext<P>) => unknown;

export interface SubscribeOptions {
  /** For string targets: treat the string as a glob (default: when it has an unescaped *, ? or [). */
  pattern?: boolean;
  /**
   * On a channel with history: the last position this subscriber saw (a message's
   * `context.position`). Everything published after it is delivered first, in order, then
   * live messages, with no gap and no duplicate; or, when history no longer reaches back
   * that far, nothing is replayed and `subscription.resume` says so.
   */
  resumeAfter?: string;
  /**
   * On a durable channel: the consumer group this subscription joins (each message goes to
   * one member of each group, and is acknowledged after the handler). @default the bus's sender name
   */
  group?: string;
  /** On a durable channel: the rest of the consumer's options (retries, claiming, start). */
  durable?: Omit<ConsumeOptions, 'group'>;
}

/**
 * What a resume found. `complete`: every message after the position was replayed.
 * `gap`: history no longer holds them all (trimmed, or lost with a Redis restart); nothing
 * was replayed: read the last value (`subscriber.latest()`, or the broker's cache) instead.
 * `unavailable`: the channel keeps no history, or the transport has none (memory).
 */
export type ResumeResult =
  | { readonly status: 'complete'; readonly channel: string; readonly after: string; readonly replayed: number }
  | { readonly status: 'gap'; readonly channel: string; readonly after: string; readonly oldest: string | undefined }
  | { readonly status: 'unavailable'; readonly channel: string; readonly after: string };

export type SubscriberEvents = {
  connected: () => void;
  disconnected: (cause: Error) => void;
  /** The connection is back and every channel and pattern is subscribed again. */
  reconnected: () => void;
  /** A rejected message, a failed handler, or a transport failure. `error.channel` names the channel. */
  error: (error: BusError) => void;
  /** A channel with history was caught up after a reconnection (or could not be: a gap). */
  resumed: (result: ResumeResult) => void;
};

/** One handler's subscription; `unsubscribe()` removes just this handler. */
export interface Subscription {
  readonly kind: SubscriptionKind;
  /** The Redis channel or pattern. */
  readonly key: string;
  /** What the resume found, when `resumeAfter` was given. */
  readonly resume: ResumeResult | undefined;
  unsubscribe(): Promise<void>;
}

interface Entry {
  readonly kind: SubscriptionKind;
  readonly key: string;
  /** The definition named by the caller; undefined for strings (resolved per message). */
  readonly channel: Channel | undefined;
  /** For one concrete channel: its definition and parameters, known at subscribe time. */
  readonly fixed: Resolved | undefined;
  readonly lanes: DeliveryLanes<Delivered>;
  /** The last position delivered, per concrete channel: kept for channels with history, to resume after a reconnection. */
  readonly positions: Map<string, string> | undefined;
  /** While a resume catches up: live messages wait here, then go out after history, without duplicates. */
  held: Delivered[] | undefined;
}

interface Resolved {
  readonly channel: Channel | undefined;
  readonly params: Readonly<Record<string, string>>;
}

interface Delivered {
  data: unknown;
  context: MessageContext;
}

type Resolution = Resolved | BusError;

/**
 * Reads history after a position. Complete only if the entry at `after` is still there:
 * trimming takes the oldest first, so nothing after it can be gone (or `after` is exactly
 * the newest id XDEL removed). `more` when the read was full.
 */
async function anchoredRead(link: StreamLink, key: string, after: string, count: number): Promise<{ entries: StreamEntry[]; more: boolean } | { gap: true; oldest: string | undefined }> {
  const info = await link.info(key);
  if (!info) return { gap: true, oldest: undefined };
  // One more than asked: the anchor itself comes first.
  const read = await link.range(key, after, count + 1, false);
  const anchored = read[0]?.id === after;
  if (!anchored && info.maxDeletedId !== after) return { gap: true, oldest: info.firstId };
  const entries = anchored ? read.slice(1) : read;
  const more = read.length === count + 1;
  return { entries: entries.slice(0, count), more };
}

/** Tries at reading history on a resume before reporting the failure. */
const CATCH_UP_ATTEMPTS = 5;
/** History entries read per round trip on a resume. */
const REPLAY_BATCH = 1_000;
/** Channels whose last position one pattern subscription remembers. */
const MAX_POSITIONS = 10_000;

export class Subscriber extends TypedEmitter<SubscriberEvents> {
  readonly #ctx: BusContext;
  readonly #link: SubscribeLink;
  readonly #table = new SubscriptionTable<Entry>();
  readonly #throttle = new LogThrottle(10);
  /** SUBSCRIBEs sent and not yet confirmed, by kind:key. */
  readonly #confirming = new Map<string, Promise<void>>();
  /** Keys unsubscribed while disconnected, to release in Redis after reconnecting. */
  readonly #releaseLater = { exact: new Set<string>(), pattern: new Set<string>() };
  #connecting: Promise<void> | undefined;
  #closed = false;
  #streams: Promise<StreamLink | undefined> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #consumers = new Set<Consumer>();

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createSubscribeLink((channel, payload, pattern) => this.#onMessage(channel, payload, pattern));
    const { logger, metrics } = ctx;
    this.setUnhandled((event, args) => {
      if (event !== 'error') return;
      const suppressed = this.#throttle.take();
      if (suppressed >= 0) logger.warn({ err: args[0], suppressed }, 'subscriber error');
    });
    this.#link.on('connected', () => this.emit('connected'));
    this.#link.on('disconnected', (cause) => {
      metrics.connection.labels('subscriber', 'disconnected').inc();
      logger.warn({ target: ctx.transport.target }, 'subscriber disconnected; reconnecting');
      // Channels with history will be caught up from their last positions: from now on, hold
      // what arrives (node-redis re-subscribes before we hear of it) until that is done.
      for (const kind of ['exact', 'pattern'] as const) {
        for (const key of this.#table.keys(kind)) for (const e of this.#table.handlers(kind, key) ?? []) if (e.positions && e.positions.size > 0) e.held ??= [];
      }
      this.emit('disconnected', cause);
    });
    this.#link.on('reconnected', () => ctx.background.run('subscriber_resubscribe', () => this.#resubscribe()));
    this.#link.on('error', (error) => this.emit('error', error as BusError));
  }

  get isConnected(): boolean {
    return this.#link.isConnected;
  }

  /** Connects the subscriber's own connection (subscribe() does this on first use). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('subscriber'));
    this.#connecting ??= this.#link.connect().catch((error: unknown) => {
      this.#connecting = undefined;
      throw error;
    });
    return this.#connecting;
  }

  /**
   * Subscribes a handler. A channel definition with parameters subscribes all its channels
   * (by pattern); a reference subscribes one channel; a string is a channel name or a glob.
   */
  subscribe<T extends string, S extends StandardSchemaV1>(
    target: Channel<T, S> | ChannelRef<T, S>,
    handler: MessageHandler<InferOutput<S>, ChannelParams<T>>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  subscribe(target: string, handler: MessageHandler<unknown>, options?: SubscribeOptions): Promise<Subscription>;
  async subscribe(target: Channel | ChannelRef | string, handler: MessageHandler<never, never>, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) throw new ClosedError('subscriber');
    let kind: SubscriptionKind;
    let key: string;
    let channel: Channel | undefined;
    let fixed: Resolved | undefined;
    if (typeof target === 'string') {
      if (target.length === 0) throw new ChannelParamError('channel', 'A channel name cannot be empty.');
      kind = (options.pattern ?? isGlob(target)) ? 'pattern' : 'exact';
      key = target;
      if (kind === 'exact') {
        // A catalog channel named by a string: resolved once, so it resumes like a reference.
        const found = this.#ctx.resolver.resolve(target);
        if (found) fixed = { channel: found.channel, params: found.params };
        channel = found?.channel;
      }
    } else if (target.kind === 'ref') {
      kind = 'exact';
      key = target.name;
      channel = target.channel;
      fixed = { channel, params: target.params };
    } else {
      kind = target.isTemplate ? 'pattern' : 'exact';
      key = target.isTemplate ? target.pattern() : target.template;
      channel = target;
      if (!target.isTemplate) fixed = { channel, params: {} };
    }
    if (kind === 'pattern' && this.#ctx.transport.shardedPubSub === true) this.#refuseShardedPattern(key, channel);
    if (channel?.delivery === 'durable') {
      if (kind !== 'exact') throw new ConfigError(`"${channel.template}" is durable: subscribe to one channel of it (channel.of({ … })); each has a stream of its own.`);
      return this.#consume(key, handler as MessageHandler<unknown>, options);
    }
    const resumeAfter = options.resumeAfter;
    if (resumeAfter !== undefined) {
      if (!isStreamId(resumeAfter)) throw new ConfigError(`resumeAfter must be a position such as 1700000000000-0 (a message's context.position), got "${preview(String(resumeAfter))}".`);
      if (kind !== 'exact') throw new ConfigError('resumeAfter needs one concrete channel (channel.of({ … })): positions are per channel.');
    }
    const history = channel?.hasHistory === true;
    const entry: Entry = {
      kind,
      key,
      channel,
      fixed,
      positions: history ? new Map() : undefined,
      // Live messages wait while history is read, so that they come after it.
      held: history && resumeAfter !== undefined ? [] : undefined,
      lanes: new DeliveryLanes<Delivered>(
        (m) => (handler as MessageHandler<unknown>)(m.data, m.context),
        {
          onError: (error, m) => this.#handlerFailed(error, m.context.channel, channel?.template),
          onDrop: (m) => this.#dropped(m.context.channel, channel?.template),
        },
        this.#ctx.limits.maxPendingPerChannel,
      ),
    };
    await this.connect();
    if (this.#closed) throw new ClosedError('subscriber');
    const pendingKey = `${kind}:${key}`;
    if (this.#table.add(kind, key, entry)) {
      const confirmed = (kind === 'exact' ? this.#link.subscribe([key]) : this.#link.psubscribe([key])).catch((error: unknown) => {
        // Disconnected: the table keeps it and the reconnection re-subscribes it.
        if (!(error instanceof NotConnectedError)) {
          for (const e of this.#table.clear(kind, key)) e.lanes.close();
          throw error;
        }
      });
      this.#confirming.set(pendingKey, confirmed);
      try {
        await confirmed;
      } finally {
        if (this.#confirming.get(pendingKey) === confirmed) this.#confirming.delete(pendingKey);
      }
    } else {
      // Another handler's SUBSCRIBE for this key may still be on its way: resolve only when
      // Redis has confirmed it, so that a publish right after this call is received.
      await this.#confirming.get(pendingKey);
    }
    let resume: ResumeResult | undefined;
    if (resumeAfter !== undefined) {
      // Subscribed first, history read second: a message published in between is both
      // live (held) and in history, and the positions remove the duplicate.
      resume = history ? await this.#catchUp(entry, [[key, resumeAfter]]).then((r) => r[0] as ResumeResult) : { status: 'unavailable', channel: key, after: resumeAfter };
    }
    return { kind, key, resume, unsubscribe: () => this.#remove(entry) };
  }

  /** A durable channel's subscription: a member of a consumer group (see Consumer). */
  /**
   * On a Redis Cluster, sharded channels travel by SSUBSCRIBE, which takes names only: a
   * pattern over them would silently receive nothing, so it is refused. A glob is refused
   * when its literal start and a sharded family's could name the same channel.
   */
  #refuseShardedPattern(glob: string, channel: Channel | undefined): void {
    const literal = (g: string) => g.slice(0, g.search(/[*?[\\]|$/));
    const start = literal(glob);
    const families = channel ? [channel] : this.#ctx.resolver.channels();
    for (const family of families) {
      if (!family.sharded) continue;
      const prefix = literal(family.pattern());
      if (prefix.startsWith(start) || start.startsWith(prefix)) {
        throw new ConfigError(
          `"${preview(glob)}" would match ${family.template}, which travels by sharded pub/sub on this Redis Cluster; patterns cannot see sharded channels. Subscribe to each one by name (e.g. ${family.template.replace(/\{(\w+)\}/g, '…')} via .of({ … })).`,
        );
      }
    }
  }

  async #consume(name: string, handler: MessageHandler<unknown>, options: SubscribeOptions): Promise<Subscription> {
    const consumer = createConsumer(this.#ctx, name, handler, { ...options.durable, group: options.group ?? this.#ctx.sender });
    consumer.on('error', (error) => this.emit('error', error));
    this.#consumers.add(consumer);
    try {
      await consumer.start();
    } catch (error) {
      this.#consumers.delete(consumer);
      await consumer.close();
      throw error;
    }
    return {
      kind: 'exact',
      key: name,
      resume: undefined,
      unsubscribe: async () => {
        this.#consumers.delete(consumer);
        await consumer.close();
      },
    };
  }

  /**
   * The newest message of a channel with history (the last value), or undefined when its
   * history is empty or the transport keeps none.
   */
  async latest<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>): Promise<{ data: InferOutput<S>; context: MessageContext<ChannelParams<T>> } | undefined> {
    if (!target.channel.hasHistory) throw new ConfigError(`"${target.name}" keeps no history: declare history in its catalog to read its last value.`);
    const link = await this.#streamLink();
    if (!link) return undefined;
    const entry = await link.latest(streamKey(target.name));
    if (!entry || entry.payload === undefined) return undefined;
    let result = this.#decode({ channel: target.channel, params: target.params }, target.name, undefined, entry.payload, entry.id);
    if (result instanceof Promise) result = await result;
    if (result instanceof BusError) throw result;
    return result as { data: InferOutput<S>; context: MessageContext<ChannelParams<T>> };
  }

  /**
   * Unsubscribes every handler of a channel or pattern, or of everything when called
   * without a target.
   */
  async unsubscribe(target?: Channel | ChannelRef | string): Promise<void> {
    if (this.#closed) return;
    if (target === undefined) {
      for (const kind of ['exact', 'pattern'] as const) {
        const keys = this.#table.keys(kind);
        for (const key of keys) for (const e of this.#table.clear(kind, key)) e.lanes.close();
        if (keys.length > 0) await this.#release(kind, keys);
      }
      return;
    }
    let kind: SubscriptionKind;
    let key: string;
    if (typeof target === 'string') {
      kind = this.#table.handlers('exact', target) ? 'exact' : 'pattern';
      key = target;
    } else if (target.kind === 'ref') {
      kind = 'exact';
      key = target.name;
    } else {
      kind = target.isTemplate ? 'pattern' : 'exact';
      key = target.isTemplate ? target.pattern() : target.template;
    }
    const removed = this.#table.clear(kind, key);
    for (const e of removed) e.lanes.close();
    if (removed.length > 0) await this.#release(kind, [key]);
  }

  /** Channels and patterns currently subscribed. */
  subscriptions(): { channels: string[]; patterns: string[] } {
    return { channels: this.#table.keys('exact'), patterns: this.#table.keys('pattern') };
  }

  /** Stops every handler, unsubscribes and releases the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const kind of ['exact', 'pattern'] as const) for (const key of this.#table.keys(kind)) for (const e of this.#table.clear(kind, key)) e.lanes.close();
    await this.#connecting?.catch(() => undefined);
    await this.#link.close();
    await this.#streams?.then((l) => l?.close()).catch(() => undefined);
    await Promise.all([...this.#consumers].map((c) => c.close()));
    this.#consumers.clear();
    this.removeAllListeners();
  }

  async #remove(entry: Entry): Promise<void> {
    entry.lanes.close();
    if (this.#closed || !this.#table.remove(entry.kind, entry.key, entry)) return;
    await this.#release(entry.kind, [entry.key]);
  }

  /**
   * Unsubscribes in the transport. While disconnected that fails, and node-redis would
   * subscribe the keys again on reconnection (publishers would count a receiver that is
   * gone): such keys are remembered and released once the connection is back.
   */
  async #release(kind: SubscriptionKind, keys: string[]): Promise<void> {
    try {
      await (kind === 'exact' ? this.#link.unsubscribe(keys) : this.#link.punsubscribe(keys));
    } catch (error) {
      if (this.#link.isConnected && !(error instanceof NotConnectedError)) throw error;
      for (const key of keys) this.#releaseLater[kind].add(key);
    }
  }

  async #resubscribe(attempt = 0): Promise<void> {
    // node-redis re-subscribes what it knew; this also covers subscriptions made while
    // the connection was down. Subscribing twice to a channel is harmless.
    if (this.#closed) return;
    try {
      for (const kind of ['exact', 'pattern'] as const) {
        const stale = [...this.#releaseLater[kind]].filter((key) => !this.#table.handlers(kind, key));
        if (stale.length > 0) await (kind === 'exact' ? this.#link.unsubscribe(stale) : this.#link.punsubscribe(stale));
        this.#releaseLater[kind].clear();
      }
      await this.#link.subscribe(this.#table.keys('exact'));
      await this.#link.psubscribe(this.#table.keys('pattern'));
    } catch (error) {
      // A Redis still loading its data answers LOADING for a while: try again with back-off
      // (a connection lost again brings its own 'reconnected').
      this.emit('error', error as BusError);
      if (!this.#closed && this.#link.isConnected) {
        this.#retryTimer = setTimeout(() => this.#ctx.background.run('subscriber_resubscribe', () => this.#resubscribe(attempt + 1)), backoffDelay(attempt, resolveReconnect(this.#ctx.reconnect)));
      }
      return;
    }
    this.#ctx.metrics.connection.labels('subscriber', 'reconnected').inc();
    this.#ctx.logger.info({ target: this.#ctx.transport.target, subscriptions: this.#table.size }, 'subscriber reconnected');
    this.emit('reconnected');
    for (const kind of ['exact', 'pattern'] as const) {
      for (const key of this.#table.keys(kind)) {
        for (const e of this.#table.handlers(kind, key) ?? []) {
          if (!e.held || !e.positions) continue;
          const results = await this.#catchUp(e, [...e.positions]);
          for (const r of results) {
            if (r.status === 'gap') this.#ctx.logger.warn({ channel: r.channel, after: r.after, oldest: r.oldest }, 'missed messages are older than the history; resumed live only');
            this.emit('resumed', r);
          }
        }
      }
    }
  }

  /** The stream link, opened on first use; undefined when the transport has no streams. */
  #streamLink(): Promise<StreamLink | undefined> {
    this.#streams ??= (async () => {
      const link = this.#ctx.transport.createStreamLink?.();
      if (!link) return undefined;
      link.on('error', () => undefined); // failures surface on the calls themselves
      await link.connect();
      return link;
    })().catch((error: unknown) => {
      this.#streams = undefined;
      throw error;
    });
    return this.#streams;
  }

  /**
   * Replays what each channel's history holds after the given positions, then releases the
   * live messages held meanwhile, skipping those already replayed.
   */
  async #catchUp(entry: Entry, from: Array<[string, string]>): Promise<ResumeResult[]> {
    entry.held ??= [];
    const results: ResumeResult[] = [];
    const reconnect = resolveReconnect(this.#ctx.reconnect);
    try {
      for (const [channel, after] of from) {
        // A Redis that just restarted may answer LOADING: retry a few times before giving up.
        for (let attempt = 0; ; attempt++) {
          try {
            results.push(await this.#replay(entry, channel, entry.positions?.get(channel) ?? after));
            break;
          } catch (error) {
            if (attempt >= CATCH_UP_ATTEMPTS - 1 || this.#closed) throw error;
            await new Promise((r) => setTimeout(r, backoffDelay(attempt, reconnect)));
          }
        }
      }
    } catch (error) {
      this.emit('error', error instanceof BusError ? error : new BusError(ErrorCode.Transport, String(error), { cause: error }));
    } finally {
      const held = entry.held;
      entry.held = undefined;
      for (const d of held) this.#deliverOnce(entry, d);
    }
    return results;
  }

  async #replay(entry: Entry, channel: string, after: string): Promise<ResumeResult> {
    const link = await this.#streamLink();
    if (!link) return { status: 'unavailable', channel, after };
    const key = streamKey(channel);
    const first = await anchoredRead(link, key, after, REPLAY_BATCH);
    if ('gap' in first) return { status: 'gap', channel, after, oldest: first.oldest };
    let { entries: batch, more } = first;
    const resolved = this.#resolve(entry, channel);
    if (resolved instanceof BusError) return { status: 'unavailable', channel, after };
    let replayed = 0;
    let cursor = after;
    for (;;) {
      for (const e of batch) {
        cursor = e.id;
        if (e.payload === undefined) continue;
        let d = this.#decode(resolved, channel, entry.kind === 'pattern' ? entry.key : undefined, e.payload, e.id, true);
        if (d instanceof Promise) d = await d;
        if (d instanceof BusError) continue; // reported
        this.#deliver(entry, d);
        replayed++;
      }
      if (!more) break;
      batch = await link.range(key, cursor, REPLAY_BATCH, true);
      more = batch.length === REPLAY_BATCH;
    }
    this.#ctx.metrics.replayed.labels(resolved.channel?.template ?? 'unknown').inc(replayed);
    return { status: 'complete', channel, after, replayed };
  }

  /**
   * What a channel's history holds after a position, up to `limit` messages, decoded and
   * validated, oldest first; `more` when there are more. For a gateway that resumes a client
   * itself. A gap or a channel without history is said as for a resume.
   */
  async history<T extends string, S extends StandardSchemaV1>(
    target: ChannelRef<T, S>,
    after: string,
    limit: number = REPLAY_BATCH,
  ): Promise<
    | { status: 'complete'; messages: Array<{ data: InferOutput<S>; context: MessageContext<ChannelParams<T>> }>; more: boolean }
    | { status: 'gap'; oldest: string | undefined }
    | { status: 'unavailable' }
  > {
    if (!isStreamId(after)) throw new ConfigError(`history(): after must be a position such as 1700000000000-0, got "${preview(String(after))}".`);
    if (!target.channel.hasHistory) return { status: 'unavailable' };
    const link = await this.#streamLink();
    if (!link) return { status: 'unavailable' };
    const read = await anchoredRead(link, streamKey(target.name), after, limit);
    if ('gap' in read) return { status: 'gap', oldest: read.oldest };
    type Message = { data: InferOutput<S>; context: MessageContext<ChannelParams<T>> };
    const messages: Message[] = [];
    for (const e of read.entries) {
      if (e.payload === undefined) continue;
      let d = this.#decode({ channel: target.channel, params: target.params }, target.name, undefined, e.payload, e.id, true);
      if (d instanceof Promise) d = await d;
      if (!(d instanceof BusError)) messages.push(d as Message);
    }
    return { status: 'complete', messages, more: read.more };
  }

  /** Into the handler's lane, noting the position for a later resume. */
  #deliver(entry: Entry, d: Delivered): void {
    const position = d.context.position;
    if (entry.positions && position !== undefined) {
      if (entry.positions.size >= MAX_POSITIONS && !entry.positions.has(d.context.channel)) entry.positions.clear();
      entry.positions.set(d.context.channel, position);
    }
    entry.lanes.deliver(d.context.channel, d);
  }

  // ---- the read path -------------------------------------------------------------

  #onMessage(channel: string, payload: string, pattern: string | undefined): void {
    const entries = pattern === undefined ? this.#table.handlers('exact', channel) : this.#table.handlers('pattern', pattern);
    if (!entries) return;
    // Usually every entry names the same definition: decode and validate once per definition.
    let lastDef: Channel | undefined | null = null;
    let lastResult: Resolution | Delivered | Promise<Delivered | BusError> | undefined;
    for (const entry of entries) {
      const resolved = this.#resolve(entry, channel);
      if (resolved instanceof BusError) {
        this.#reject(resolved, entry.channel?.template);
        continue;
      }
      if (resolved.channel !== lastDef || lastResult === undefined) {
        lastDef = resolved.channel;
        lastResult = this.#decode(resolved, channel, pattern, payload);
      }
      const result = lastResult;
      if (result instanceof BusError) continue; // already reported
      if (result instanceof Promise) {
        result
          .then((r) => {
            if (!(r instanceof BusError)) this.#arrive(entry, r);
          })
          .catch(this.#ctx.background.catcher('subscriber_delivery'));
      } else {
        this.#arrive(entry, result as Delivered);
      }
    }
  }

  /** A live message: held while a resume catches up, else delivered. */
  #arrive(entry: Entry, d: Delivered): void {
    if (entry.held) entry.held.push(d);
    else if (entry.positions) this.#deliverOnce(entry, d);
    else entry.lanes.deliver(d.context.channel, d);
  }

  /**
   * Delivers a live message unless history already did. The PUBLISH of a message and its
   * stream entry are written together, but they reach us on two connections, read in no
   * set order: a message replayed from history may still arrive live after the resume.
   */
  #deliverOnce(entry: Entry, d: Delivered): void {
    const position = d.context.position;
    const last = position === undefined ? undefined : entry.positions?.get(d.context.channel);
    if (last !== undefined && compareStreamIds(position as string, last) <= 0) return;
    this.#deliver(entry, d);
  }

  #resolve(entry: Entry, channel: string): Resolution {
    if (entry.fixed) return entry.fixed;
    if (entry.channel) {
      const params = entry.channel.parse(channel);
      if (params) return { channel: entry.channel, params };
      // The pattern matched a name the definition does not allow (`TICKER_UPDATES_a b`).
      return new ChannelParamError('channel', `Message on "${preview(channel)}" ignored: the name is not a valid channel of "${entry.channel.template}".`, { channel });
    }
    const found = this.#ctx.resolver.resolve(channel);
    return found ? { channel: found.channel, params: found.params } : { channel: undefined, params: {} };
  }

  /** `position` is given for a message read from history (its payload has none). */
  #decode(resolved: Resolved, channel: string, pattern: string | undefined, payload: string, position?: string, replayed = false): Delivered | BusError | Promise<Delivered | BusError> {
    const def = resolved.channel;
    const decoded = decodePayload(payload, channel, def?.wire ?? 'envelope', this.#ctx.limits.maxMessageBytes);
    if (decoded instanceof BusError) return this.#reject(decoded, def?.template);
    const context: MessageContext = {
      channel,
      pattern,
      params: resolved.params,
      timestamp: decoded.timestamp,
      sender: decoded.sender,
      id: decoded.id,
      position: position ?? decoded.position,
      replayed,
    };
    if (!def) {
      this.#ctx.metrics.receivedCell(undefined).n++;
      return { data: decoded.data, context };
    }
    const checked = check(def.schema, decoded.data);
    if (checked instanceof Promise) return checked.then((r) => this.#accept(r, def, context));
    return this.#accept(checked, def, context);
  }

  #accept(result: CheckResult<unknown>, def: Channel, context: MessageContext): Delivered | BusError {
    if (result.issues) return this.#reject(validationError(result.issues, context.channel), def.template);
    this.#ctx.metrics.receivedCell(def.template).n++;
    return { data: result.value, context };
  }

  #reject(error: BusError, template: string | undefined): BusError {
    this.#ctx.metrics.countRejected(template, error.code);
    this.emit('error', error);
    return error;
  }

  #handlerFailed(error: unknown, channel: string, template: string | undefined): void {
    this.#ctx.metrics.handlerFailed.labels(template ?? 'unknown').inc();
    const message = error instanceof Error ? error.message : String(error);
    this.emit('error', new HandlerError(ErrorCode.HandlerFailed, `Handler for "${preview(channel)}" failed: ${message}`, { cause: error, channel }));
  }

  #dropped(channel: string, template: string | undefined): void {
    this.#ctx.metrics.handlerDropped.labels(template ?? 'unknown').inc();
    this.emit(
      'error',
      new HandlerError(ErrorCode.HandlerBacklog, `Handler for "${preview(channel)}" is ${this.#ctx.limits.maxPendingPerChannel} messages behind; dropped the oldest.`, { channel }),
    );
  }
}
