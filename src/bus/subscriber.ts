// Receives, decodes, validates and dispatches. Decoding never throws into the read loop:
// bad JSON, a missing envelope field, a schema violation or an oversized payload becomes an
// 'error' event with a stable code and the channel, is counted, and the next message is
// read as usual. Handlers are isolated: one that throws is reported, the rest go on.
import type { Channel, ChannelParams, ChannelRef } from '../core/channel.ts';
import { decodePayload } from '../core/envelope.ts';
import { BusError, ChannelParamError, ClosedError, ErrorCode, HandlerError, NotConnectedError, preview } from '../core/errors.ts';
import { check, validationError, type CheckResult, type InferOutput, type StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { LogThrottle } from '../core/logger.ts';
import type { SubscribeLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { DeliveryLanes } from './delivery-lane.ts';
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
}

export type MessageHandler<D, P = Readonly<Record<string, string>>> = (data: D, context: MessageContext<P>) => unknown;

export interface SubscribeOptions {
  /** For string targets: treat the string as a glob (default: when it has an unescaped *, ? or [). */
  pattern?: boolean;
}

export type SubscriberEvents = {
  connected: () => void;
  disconnected: (cause: Error) => void;
  /** The connection is back and every channel and pattern is subscribed again. */
  reconnected: () => void;
  /** A rejected message, a failed handler, or a transport failure. `error.channel` names the channel. */
  error: (error: BusError) => void;
};

/** One handler's subscription; `unsubscribe()` removes just this handler. */
export interface Subscription {
  readonly kind: SubscriptionKind;
  /** The Redis channel or pattern. */
  readonly key: string;
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
      this.emit('disconnected', cause);
    });
    this.#link.on('reconnected', () => void this.#resubscribe());
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
    const entry: Entry = {
      kind,
      key,
      channel,
      fixed,
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
    return { kind, key, unsubscribe: () => this.#remove(entry) };
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
    for (const kind of ['exact', 'pattern'] as const) for (const key of this.#table.keys(kind)) for (const e of this.#table.clear(kind, key)) e.lanes.close();
    await this.#connecting?.catch(() => undefined);
    await this.#link.close();
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

  async #resubscribe(): Promise<void> {
    // node-redis re-subscribes what it knew; this also covers subscriptions made while
    // the connection was down. Subscribing twice to a channel is harmless.
    try {
      for (const kind of ['exact', 'pattern'] as const) {
        const stale = [...this.#releaseLater[kind]].filter((key) => !this.#table.handlers(kind, key));
        this.#releaseLater[kind].clear();
        if (stale.length > 0) await (kind === 'exact' ? this.#link.unsubscribe(stale) : this.#link.punsubscribe(stale));
      }
      await this.#link.subscribe(this.#table.keys('exact'));
      await this.#link.psubscribe(this.#table.keys('pattern'));
    } catch (error) {
      this.emit('error', error as BusError);
      return;
    }
    this.#ctx.metrics.connection.labels('subscriber', 'reconnected').inc();
    this.#ctx.logger.info({ target: this.#ctx.transport.target, subscriptions: this.#table.size }, 'subscriber reconnected');
    this.emit('reconnected');
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
        void result.then((r) => {
          if (!(r instanceof BusError)) entry.lanes.deliver(channel, r);
        });
      } else {
        entry.lanes.deliver(channel, result as Delivered);
      }
    }
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

  #decode(resolved: Resolved, channel: string, pattern: string | undefined, payload: string): Delivered | BusError | Promise<Delivered | BusError> {
    const def = resolved.channel;
    const decoded = decodePayload(payload, channel, def?.wire ?? 'envelope', this.#ctx.limits.maxMessageBytes);
    if (decoded instanceof BusError) return this.#reject(decoded, def?.template);
    const context: MessageContext = { channel, pattern, params: resolved.params, timestamp: decoded.timestamp, sender: decoded.sender, id: decoded.id };
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
