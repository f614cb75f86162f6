// Receives, decodes, validates and dispatches. Decoding never throws into the read loop:
// bad JSON, a missing envelope field, a schema violation or an oversized payload becomes an
// 'error' event with a stable code and the channel, is counted, and the next message is
// read as usual. Handlers are isolated: one that throws is reported, the rest go on.
import { streamKey, type Channel, type ChannelParams, type ChannelRef } from '../core/channel.ts';
import { decodePayload } from '../core/envelope.ts';
import { BusError, ChannelParamError, ClosedError, ConfigError, ErrorCode, HandlerBacklogError, HandlerError, NotConnectedError, PositionError, preview, TransportError } from '../core/errors.ts';
import { compareStreamIds, isStreamId, streamIdMs } from '../core/stream-id.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import { check, validationError, type CheckResult, type InferOutput, type StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { ErrorEventLog } from '../core/logger.ts';
import type { StreamEntry, StreamLink, SubscribeLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { DeliveryLanes } from './delivery-lane.ts';
import { createConsumer, type ConsumeOptions, type Consumer } from './consumer.ts';
import { SubscriptionTable, type SubscriptionKind } from './subscription-table.ts';
import { isGlob } from './targets.ts';
import type { MessageContext } from './message-context.ts';

export type { MessageContext } from './message-context.ts';

export type MessageHandler<D, P = Readonly<Record<string, string>>> = (data: D, context: MessageContext<P>) => unknown;

export interface SubscribeOptions {
  /** For string targets: treat the string as a glob (default: when it has an unescaped *, ? or [). */
  pattern?: boolean;
  /**
   * On a channel with history: the last position this subscriber saw (a message's
   * `context.position`). Everything published after it is delivered first, in order, then
   * live messages, with no gap and no duplicate; when history does not hold the position,
   * `subscription.resume` is a gap (see ResumeResult for what is replayed then). Not a
   * stream id: PositionError.
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
 * `gap`: history does not hold the position, so some messages may be lost. `replayed`
 * says how many it did hold after it and delivered: all it has when the stream never
 * lost an entry (a Redis restarted without persistence holds just what came after), none
 * when it has trimmed past the position (read the last value, `subscriber.latest()` or the
 * broker's cache, instead). `unavailable`: the channel keeps no history, or the transport
 * has none (memory).
 */
export type ResumeResult =
  | { readonly status: 'complete'; readonly channel: string; readonly after: string; readonly replayed: number }
  | { readonly status: 'gap'; readonly channel: string; readonly after: string; readonly oldest: string | undefined; readonly replayed: number }
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
  /**
   * After a catch-up, per channel: the last position replayed. A live copy at or before it
   * is one already delivered from history; the first newer one ends the check (pub/sub is
   * in order), so outside a catch-up no live message is ever compared.
   */
  dedupe?: Map<string, string>;
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
 *
 * Otherwise a gap, with what history holds after the position unless trimming may have
 * taken some of it: a stream that never lost an entry (entries added = length) holds
 * everything it was ever given, so when the position is not in it (a Redis restarted
 * without persistence, a stream written anew), every entry after the position is one the
 * reader missed and is still there. A stream that has trimmed past the position holds only
 * the newest part of what was missed: nothing is read, and the reader takes the last value.
 */
async function anchoredRead(link: StreamLink, key: string, after: string, count: number): Promise<{ entries: StreamEntry[]; more: boolean; gap: false } | { entries: StreamEntry[]; more: boolean; gap: true; oldest: string | undefined }> {
  const info = await link.info(key);
  if (!info) return { gap: true, oldest: undefined, entries: [], more: false };
  // One more than asked: the anchor itself comes first.
  const read = await link.range(key, after, count + 1, false);
  const anchored = read[0]?.id === after;
  if (anchored || info.maxDeletedId === after) {
    const entries = anchored ? read.slice(1) : read;
    return { entries: entries.slice(0, count), more: read.length === count + 1, gap: false };
  }
  const lostNone = info.entriesAdded > 0 && info.entriesAdded === info.length;
  if (!lostNone) return { gap: true, oldest: info.firstId, entries: [], more: false };
  return { gap: true, oldest: info.firstId, entries: read.slice(0, count), more: read.length > count };
}

/** Tries at reading history on a resume before reporting the failure. */
const CATCH_UP_ATTEMPTS = 5;
/** History entries read per round trip on a resume. */
const REPLAY_BATCH = 1_000;
/** Channels whose last position one pattern subscription remembers. */
const MAX_POSITIONS = 10_000;
/** Live positions checked against history at once, at most (a flood of forgeries costs no more). */
const MAX_VERIFYING = 16;

export class Subscriber extends TypedEmitter<SubscriberEvents> {
  readonly #ctx: BusContext;
  readonly #link: SubscribeLink;
  readonly #table = new SubscriptionTable<Entry>();
  /** SUBSCRIBEs sent and not yet confirmed, by kind:key. */
  readonly #confirming = new Map<string, Promise<void>>();
  /** Keys unsubscribed while disconnected, to release in Redis after reconnecting. */
  readonly #releaseLater = { exact: new Set<string>(), pattern: new Set<string>() };
  #connecting: Promise<void> | undefined;
  #closed = false;
  #streams: Promise<StreamLink | undefined> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #consumers = new Set<Consumer>();
  /** How far ahead of our clock a live position is trusted; grows when Redis's clock proves to run ahead. */
  #trustAheadMs: number = DEFAULTS.positionSkewMs;
  /** Channels whose live position is being checked against history. */
  readonly #verifying = new Set<string>();

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createSubscribeLink((channel, payload, pattern) => this.#onMessage(channel, payload, pattern));
    const { logger, metrics } = ctx;
    const errors = new ErrorEventLog(logger, 'subscriber error');
    this.setUnhandled((event, args) => {
      if (event === 'error') errors.log(args[0]);
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
      // Checked here, not by Redis: a malformed id would fail the history read after the
      // subscription was made, with Redis's words instead of ours.
      if (typeof resumeAfter !== 'string' || !isStreamId(resumeAfter)) throw new PositionError('resumeAfter', resumeAfter);
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
      this.emit('error', error instanceof BusError ? error : new TransportError(String(error), { cause: error }));
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
    entry.dedupe?.delete(channel);
    const first = await anchoredRead(link, key, after, REPLAY_BATCH);
    const resolved = this.#resolve(entry, channel);
    if (resolved instanceof BusError) return { status: 'unavailable', channel, after };
    let { entries: batch, more } = first;
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
    // Replayed entries come from the stream itself: a live copy at or before the last of
    // them is one this handler already has.
    if (replayed > 0 || !first.gap) (entry.dedupe ??= new Map()).set(channel, cursor);
    if (first.gap) return { status: 'gap', channel, after, oldest: first.oldest, replayed };
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
    | { status: 'gap'; oldest: string | undefined; messages: Array<{ data: InferOutput<S>; context: MessageContext<ChannelParams<T>> }>; more: boolean }
    | { status: 'unavailable' }
  > {
    if (typeof after !== 'string' || !isStreamId(after)) throw new PositionError('history(): after', after);
    if (!target.channel.hasHistory) return { status: 'unavailable' };
    const link = await this.#streamLink();
    if (!link) return { status: 'unavailable' };
    const read = await anchoredRead(link, streamKey(target.name), after, limit);
    type Message = { data: InferOutput<S>; context: MessageContext<ChannelParams<T>> };
    const messages: Message[] = [];
    for (const e of read.entries) {
      if (e.payload === undefined) continue;
      let d = this.#decode({ channel: target.channel, params: target.params }, target.name, undefined, e.payload, e.id, true);
      if (d instanceof Promise) d = await d;
      if (!(d instanceof BusError)) messages.push(d as Message);
    }
    if (read.gap) return { status: 'gap', oldest: read.oldest, messages, more: read.more };
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
    const floor = position === undefined ? undefined : entry.dedupe?.get(d.context.channel);
    if (floor !== undefined) {
      if (compareStreamIds(position as string, floor) <= 0) return;
      entry.dedupe?.delete(d.context.channel);
    }
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
      position: position ?? (decoded.position !== undefined && def?.hasHistory === true ? this.#vouch(decoded.position, channel, def.template) : decoded.position),
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

  /**
   * A live message's position, if it can be trusted; else undefined (the message is
   * delivered without it). Positions are resume points: handlers keep them, the gateway
   * sends them on, and a subscriber resumes from the last one after a reconnection. Anyone
   * who can PUBLISH can write one, and a position ahead of everything real would make every
   * later resume find nothing. Redis writes the entry id from its clock just before it
   * publishes, so a real position is never much ahead of ours: that costs a clock read, and
   * only one that is ahead costs a look at the stream (or nothing, when it is so far ahead
   * that no clock explains it).
   */
  #vouch(position: string, channel: string, template: string): string | undefined {
    const ahead = streamIdMs(position) - Date.now();
    if (ahead <= this.#trustAheadMs) return position;
    if (ahead > DEFAULTS.positionMaxAheadMs) {
      this.#untrusted(channel, template, position, 'ahead_of_clock', ahead);
      return undefined;
    }
    if (this.#verifying.has(channel) || this.#verifying.size >= MAX_VERIFYING) {
      this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
      return undefined;
    }
    this.#verifying.add(channel);
    this.#ctx.background.run('subscriber_verify_position', () => this.#verify(channel, template, position, ahead).finally(() => this.#verifying.delete(channel)));
    return undefined;
  }

  async #verify(channel: string, template: string, position: string, ahead: number): Promise<void> {
    try {
      const link = await this.#streamLink();
      const found = link ? await link.range(streamKey(channel), position, 1, false) : [];
      if (found[0]?.id !== position) return this.#untrusted(channel, template, position, 'not_in_history', ahead);
      // Real: Redis's clock runs ahead of ours. Trust positions that far ahead from now on.
      this.#trustAheadMs = Math.max(this.#trustAheadMs, ahead + DEFAULTS.positionSkewMs);
      this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
      this.#ctx.logger.warn({ channel, aheadMs: ahead }, "Redis's clock runs ahead of this host's: positions up to that far ahead are trusted from now on");
    } catch {
      if (!this.#closed) this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
    }
  }

  #untrusted(channel: string, template: string, position: string, reason: 'ahead_of_clock' | 'not_in_history', ahead: number): void {
    this.#ctx.metrics.untrustedPositions.labels(template, reason).inc();
    const why = reason === 'ahead_of_clock' ? `${Math.round(ahead / 1000)} s ahead of this host's clock` : 'which its history does not hold';
    this.emit(
      'error',
      new BusError(
        ErrorCode.UntrustedPosition,
        `A message on "${preview(channel)}" carried position "${preview(position, 44)}", ${why}: it was delivered without it, and no resume point moved to it. Positions are written by Redis as it publishes; look for a process that publishes this channel by hand.`,
        { channel },
      ),
    );
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
    this.emit('error', new HandlerError(`Handler for "${preview(channel)}" failed: ${message}`, { cause: error, channel }));
  }

  #dropped(channel: string, template: string | undefined): void {
    this.#ctx.metrics.handlerDropped.labels(template ?? 'unknown').inc();
    this.emit(
      'error',
      new HandlerBacklogError(`Handler for "${preview(channel)}" is ${this.#ctx.limits.maxPendingPerChannel} messages behind; dropped the oldest.`, { channel }),
    );
  }
}
