// Receives, decodes, validates and dispatches. Decoding never throws into the read loop:
// bad JSON, a missing envelope field, a schema violation or an oversized payload becomes an
// 'error' event with a stable code and the channel, is counted, and the next message is
// read as usual. Handlers are isolated: one that throws is reported, the rest go on.
import type { Channel, ChannelParams, ChannelRef } from '../core/channel.ts';
import { BusError, ClosedError, ConfigError, NotConnectedError, PositionError, TransportError, describeValue } from '../core/errors.ts';
import { isStreamId } from '../core/stream-id.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import type { InferOutput, StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { ErrorEventLog } from '../core/logger.ts';
import type { SubscribeLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import type { ConsumeOptions, Consumer } from './consumer.ts';
import { createConsumer, startOwned } from './consume.ts';
import { CATCH_UP_ATTEMPTS, HistoryReader, REPLAY_BATCH, type HistoryMessage, type HistoryPage, type ResumeResult } from './history-reader.ts';
import { InboundReader, toDelivered, type Delivered, type Inbound } from './inbound.ts';
import { PositionGuard } from './position-guard.ts';
import { arrive, createEntry, deliver, releaseHeld, resolveFor, type SubscriptionEntry as Entry } from './subscription-entry.ts';
import { SubscriptionTable, type SubscriptionKind } from './subscription-table.ts';
import { refuseShardedPattern, subscriptionTarget, unsubscribeTarget, type ResolvedTarget } from './targets.ts';
import type { MessageContext } from './message-context.ts';

export type { MessageContext } from './message-context.ts';
export type { ResumeResult } from './history-reader.ts';

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
  #retryTimer: NodeJS.Timeout | undefined;
  /** Entries whose catch-up is running (it retries until done). */
  readonly #catchingUp = new Set<Entry>();
  /** Catch-ups waiting to try again: close() wakes them. */
  readonly #pauses = new Set<() => void>();
  readonly #consumers = new Set<Consumer>();
  readonly #inbound: InboundReader;
  readonly #history: HistoryReader;
  readonly #positionGuard: PositionGuard;

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createSubscribeLink((channel, payload, pattern) => this.#onMessage(channel, payload, pattern));
    const report = (error: BusError) => this.emit('error', error);
    this.#inbound = new InboundReader(ctx, report);
    this.#history = new HistoryReader(ctx, this.#inbound);
    this.#positionGuard = new PositionGuard(ctx, this.#history, report, () => this.#closed);
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
    const { kind, key, channel, fixed } = subscriptionTarget(target, this.#ctx.resolver, options.pattern);
    if (kind === 'pattern' && this.#ctx.transport.shardedPubSub === true) refuseShardedPattern(key, channel, this.#ctx.resolver);
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
    // Live messages wait while history is read, so that they come after it.
    const entry = createEntry(this.#ctx, { kind, key, channel, fixed }, handler as MessageHandler<unknown>, history && resumeAfter !== undefined, (error) => this.emit('error', error));
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
      resume = history ? ((await this.#catchUp(entry, [[key, resumeAfter]], CATCH_UP_ATTEMPTS))[0] ?? { status: 'unavailable', channel: key, after: resumeAfter }) : { status: 'unavailable', channel: key, after: resumeAfter };
    }
    return { kind, key, resume, unsubscribe: () => this.#remove(entry) };
  }

  /** A durable channel's subscription: a member of a consumer group (see Consumer). */
  async #consume(name: string, handler: MessageHandler<unknown>, options: SubscribeOptions): Promise<Subscription> {
    const consumer = createConsumer(this.#ctx, name, handler, { ...options.durable, group: options.group ?? this.#ctx.sender });
    consumer.on('error', (error) => this.emit('error', error));
    await startOwned(consumer, this.#consumers);
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
  latest<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>): Promise<HistoryMessage<T, S> | undefined> {
    return this.#history.latest(target);
  }

  /**
   * What a channel's history holds after a position, up to `limit` messages, decoded and
   * validated, oldest first; `more` when there are more. For a gateway that resumes a client
   * itself. A gap or a channel without history is said as for a resume.
   */
  history<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>, after: string, limit: number = REPLAY_BATCH): Promise<HistoryPage<T, S>> {
    return this.#history.history(target, after, limit);
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
    const { kind, key } = unsubscribeTarget(target, (name) => this.#table.handlers('exact', name) !== undefined);
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
    for (const wake of [...this.#pauses]) wake();
    for (const kind of ['exact', 'pattern'] as const) for (const key of this.#table.keys(kind)) for (const e of this.#table.clear(kind, key)) e.lanes.close();
    await this.#connecting?.catch(() => undefined);
    await this.#link.close();
    await this.#history.close();
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
          // One already catching up (a reconnection during its back-off) goes on by itself.
          if (!e.held || !e.positions || this.#catchingUp.has(e)) continue;
          const results = await this.#catchUp(e, [...e.positions]);
          for (const r of results) {
            if (r.status === 'gap') this.#ctx.logger.warn({ channel: r.channel, after: r.after, oldest: r.oldest }, 'missed messages are older than the history; resumed live only');
            else if (r.status === 'unavailable') this.#ctx.logger.warn({ channel: r.channel, after: r.after }, 'could not read the history to catch up; resumed live only');
            this.emit('resumed', r);
          }
        }
      }
    }
  }

  /**
   * Replays what each channel's history holds after the given positions, then releases the
   * live messages held meanwhile, skipping those already replayed. A read that fails is tried
   * again with back-off, the live messages still held: releasing them first would move the
   * positions past what was never read, a gap nobody hears of. It gives up (each channel not
   * caught up is `unavailable`, and the held messages go) after `attempts`, when the held
   * messages reach the per-channel limit, or when the subscriber closes.
   */
  async #catchUp(entry: Entry, from: Array<[string, string]>, attempts = Number.POSITIVE_INFINITY): Promise<ResumeResult[]> {
    entry.held ??= [];
    this.#catchingUp.add(entry);
    const results = new Map<string, ResumeResult>();
    const reconnect = resolveReconnect(this.#ctx.reconnect);
    try {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          for (const [channel, after] of from) {
            if (this.#closed) break;
            if (results.has(channel)) continue;
            // From the last position delivered, when a try failed part of the way.
            results.set(channel, await this.#replay(entry, channel, entry.positions?.get(channel) ?? after));
          }
          break;
        } catch (error) {
          this.emit('error', error instanceof BusError ? error : new TransportError(describeValue(error), { cause: error }));
          if (attempt + 1 >= attempts || (entry.held?.length ?? 0) >= this.#ctx.limits.maxPendingPerChannel) {
            for (const [channel, after] of from) if (!results.has(channel)) results.set(channel, { status: 'unavailable', channel, after: entry.positions?.get(channel) ?? after });
            break;
          }
          await this.#pause(backoffDelay(attempt, reconnect));
        }
      }
    } finally {
      this.#catchingUp.delete(entry);
      releaseHeld(entry);
    }
    return [...results.values()];
  }

  /** Waits before another try at history; close() cuts it short. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#pauses.add(wake);
    });
  }

  async #replay(entry: Entry, channel: string, after: string): Promise<ResumeResult> {
    entry.dedupe?.delete(channel);
    const target = resolveFor(entry, channel, this.#ctx.resolver);
    if (target instanceof BusError) return { status: 'unavailable', channel, after };
    const { result, cursor } = await this.#history.replay(channel, after, target, entry.kind === 'pattern' ? entry.key : undefined, (d) => deliver(entry, d));
    // Replayed entries come from the stream itself: a live copy at or before the last of
    // them is one this handler already has.
    if (result.status === 'complete' || (result.status === 'gap' && result.replayed > 0)) (entry.dedupe ??= new Map()).set(channel, cursor);
    return result;
  }

  // ---- the read path -------------------------------------------------------------

  #onMessage(channel: string, payload: string, pattern: string | undefined): void {
    const entries = pattern === undefined ? this.#table.handlers('exact', channel) : this.#table.handlers('pattern', pattern);
    if (!entries) return;
    // Usually every entry names the same definition: decode and validate once per definition.
    let lastDef: Channel | undefined | null = null;
    let lastResult: Delivered | BusError | Promise<Delivered | BusError> | undefined;
    for (const entry of entries) {
      const target = resolveFor(entry, channel, this.#ctx.resolver);
      if (target instanceof BusError) {
        this.#inbound.reject(target, entry.channel?.template);
        continue;
      }
      if (target.channel !== lastDef || lastResult === undefined) {
        lastDef = target.channel;
        lastResult = this.#decode(target, channel, pattern, payload);
      }
      const result = lastResult;
      if (result instanceof BusError) continue; // already reported
      if (result instanceof Promise) {
        result
          .then((r) => {
            if (!(r instanceof BusError)) arrive(entry, r);
          })
          .catch(this.#ctx.background.catcher('subscriber_delivery'));
      } else {
        arrive(entry, result);
      }
    }
  }

  /** A live message, decoded and validated; its position only if it can be trusted (see PositionGuard). */
  #decode(target: ResolvedTarget, channel: string, pattern: string | undefined, payload: string): Delivered | BusError | Promise<Delivered | BusError> {
    const read = this.#inbound.read(payload, channel, target.channel);
    // No closure on the synchronous path: this runs once per message.
    return read instanceof Promise ? read.then((a) => this.#delivered(a, target, channel, pattern)) : this.#delivered(read, target, channel, pattern);
  }

  #delivered(a: Inbound, target: ResolvedTarget, channel: string, pattern: string | undefined): Delivered | BusError {
    if (a instanceof BusError) return a;
    const def = target.channel;
    const position = a.envelope.position;
    return toDelivered(this.#ctx.metrics, a, target, channel, pattern, position !== undefined && def?.hasHistory === true ? this.#positionGuard.vouch(position, channel, def.template) : position, false);
  }
}
