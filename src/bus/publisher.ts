// Validates, wraps and publishes. A message that fails its schema, is too large, or
// names a channel no catalog defines is refused with a typed error before it reaches
// the transport. How it travels follows its channel: a PUBLISH, a PUBLISH with a history
// entry, or a stream append for a durable channel. While Redis is unreachable a publish
// fails fast with NotConnectedError, or, with the fallback buffer on, is kept and sent in
// order once Redis is back (the receipt says which).
import { randomUUID } from 'node:crypto';
import type { Channel, ChannelRef, ChannelParams } from '../core/channel.ts';
import { streamKey } from '../core/keys.ts';
import { backoffDelay, resolveReconnect } from '../core/config.ts';
import { EnvelopeWriter, exceedsBytes } from '../core/envelope.ts';
import { BusError, ClosedError, ConfigError, DecodeError, ErrorCode, NotConnectedError } from '../core/errors.ts';
import { check, validationError, type CheckResult, type InferInput, type StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { endWith, failSpan, startPublishSpan, traceFieldsOf, tracingOn, type Attributes, type Span, type TraceContext } from '../core/tracing.ts';
import type { Outbound, PublishLink, PublishReceipt, StreamWrite } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { FallbackBuffer, type Buffered } from './fallback-buffer.ts';
import { concreteTarget, type ConcreteTarget, type PublishTarget } from './targets.ts';

const BUFFERED: PublishReceipt = Object.freeze({ status: 'buffered', receivers: 0, position: undefined });
const DROPPED: PublishReceipt = Object.freeze({ status: 'dropped', receivers: 0, position: undefined });

/** Messages replayed from the fallback buffer per round trip. */
const REPLAY_CHUNK = 256;
const STREAM_WRITE_CACHE = 10_000;

export type PublisherEvents = {
  connected: () => void;
  disconnected: (cause: Error) => void;
  reconnected: () => void;
  error: (error: BusError) => void;
};

/** One message of a batch. */
export interface BatchItem {
  channel: PublishTarget;
  data: unknown;
  /**
   * A fencing token: publish only while the channel's owner key (`tickbus:{<channel>}:owner`)
   * holds it, checked atomically with the write; otherwise the publish fails with
   * TB_ERR_FENCED and nothing is written. For channels with a stream (history or durable).
   */
  fence?: string;
  /**
   * With tracing on: the trace this message belongs to (an OpenTelemetry context captured
   * where it was made, when a queue stands between that and the publish). @default the active context
   */
  traceContext?: TraceContext;
  /** Internal (not in the package's exports): see PRECHECKED. */
  readonly [PRECHECKED]?: true;
}

/**
 * Marks a batch item whose `data` tickbus itself built from values it checked where they
 * came in (the broker's price updates, made from a feed's trade it checked on arrival):
 * publishBatch does not validate it against the channel's schema a second time. The
 * validation is the same, done once at the edge (issue 18: it was 7 % of the broker's
 * replay). Not exported from the package: an application's messages are always checked.
 */
export const PRECHECKED: unique symbol = Symbol('tickbus.prechecked');

export class Publisher extends TypedEmitter<PublisherEvents> {
  readonly #ctx: BusContext;
  readonly #link: PublishLink;
  #closed = false;
  #connecting: Promise<void> | undefined;
  #ready = false;
  readonly #writer: EnvelopeWriter;
  readonly #buffer: FallbackBuffer | undefined;
  #replaying = false;
  #background: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #replayTimer: NodeJS.Timeout | undefined;
  #replayAttempts = 0;
  readonly #streamWrites = new Map<string, StreamWrite>();
  readonly #fencedWrites = new Map<string, StreamWrite>();

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createPublishLink();
    this.#writer = new EnvelopeWriter(ctx.sender);
    if (ctx.fallback) {
      this.#buffer = new FallbackBuffer(ctx.fallback);
      ctx.metrics.trackFallback(this.#buffer);
      if (this.#buffer.size > 0) ctx.logger.info({ messages: this.#buffer.size, file: ctx.fallback.file }, 'fallback journal restored; sending once Redis is reachable');
    }
    const { logger, metrics } = ctx;
    this.setUnhandled((event, args) => {
      if (event === 'error') logger.warn({ err: args[0] }, 'publisher error');
    });
    this.#link.on('connected', () => {
      this.emit('connected');
      ctx.background.run('publisher_fallback_replay', () => this.#replay());
    });
    this.#link.on('disconnected', (cause) => {
      metrics.connection.labels('publisher', 'disconnected').inc();
      logger.warn({ target: ctx.transport.target }, 'publisher disconnected; reconnecting');
      this.emit('disconnected', cause);
    });
    this.#link.on('reconnected', () => {
      metrics.connection.labels('publisher', 'reconnected').inc();
      logger.info({ target: ctx.transport.target, buffered: this.#buffer?.size }, 'publisher reconnected');
      this.emit('reconnected');
      ctx.background.run('publisher_fallback_replay', () => this.#replay());
    });
    this.#link.on('error', (error) => this.emit('error', error as BusError));
    this.#link.on('publishFailed', (error) => metrics.countPublishFailed('(transport)', String((error as BusError).code ?? ErrorCode.Transport)));
  }

  get isConnected(): boolean {
    return this.#link.isConnected;
  }

  /** Connects the publisher's own connection (the first publish does this if needed). */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('publisher'));
    this.#connecting ??= this.#link.connect().then(
      () => {
        this.#ready = true;
      },
      (error: unknown) => {
        this.#connecting = undefined;
        throw error;
      },
    );
    return this.#connecting;
  }

  /** Messages waiting in the fallback buffer (0 without one). */
  get buffered(): number {
    return this.#buffer?.size ?? 0;
  }

  /**
   * Validates `data` against the channel's schema, wraps it in the envelope and publishes
   * it. Resolves with a receipt: `sent` with the receivers Redis counted (and the stream
   * position, on durable channels and channels with history), or `buffered` / `dropped`
   * when Redis is unreachable and the fallback buffer is on.
   */
  publish<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>, data: InferInput<S>): Promise<PublishReceipt>;
  publish<T extends string, S extends StandardSchemaV1>(target: Channel<T, S> & { readonly isTemplate: false }, data: InferInput<S>): Promise<PublishReceipt>;
  publish(target: string, data: unknown): Promise<PublishReceipt>;
  publish(target: PublishTarget, data: unknown): Promise<PublishReceipt> {
    // The hot path: no async wrapper, no closures, one promise from the transport.
    let name: string;
    let channel: Channel;
    let payload: string;
    try {
      if (this.#closed) throw new ClosedError('publisher');
      if (typeof target === 'object' && target.kind === 'ref') {
        name = target.name;
        channel = target.channel;
      } else {
        const concrete = this.#target(target);
        name = concrete.name;
        channel = concrete.channel;
      }
      const checked = check(channel.schema, data);
      if (checked instanceof Promise) return this.#publishAsync(name, channel, checked);
      if (tracingOn()) return this.#publishTraced(name, channel, checked);
      payload = this.#payload(name, channel, checked);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.#send(name, channel, payload, this.#streamOf(name, channel, undefined));
  }

  /**
   * Publishes many messages in one round trip, in order. Every message is validated first;
   * if any is invalid, none is sent.
   */
  async publishBatch(items: readonly BatchItem[]): Promise<PublishReceipt[]> {
    if (this.#closed) throw new ClosedError('publisher');
    const traced = tracingOn();
    // Built as validated; nothing is counted or sent until every message is.
    const outbound = new Array<Outbound>(items.length);
    const channels = new Array<Channel>(items.length);
    const spans: Span[] | undefined = traced ? [] : undefined;
    try {
      for (let i = 0; i < items.length; i++) {
        const item = items[i] as BatchItem;
        const target = item.channel;
        const concrete = typeof target === 'object' && target.kind === 'ref' ? target : this.#target(target);
        const channel = concrete.channel;
        if (item.fence !== undefined && channel.retention === undefined) throw new ConfigError(`A fenced publish needs a channel with a stream (history or durable); "${concrete.name}" has none.`);
        let checked = item[PRECHECKED] === true ? { value: item.data } : check(channel.schema, item.data);
        if (checked instanceof Promise) checked = await checked;
        // With tracing on, a span each, its context in the envelope; one that fails ends them all.
        const span = spans ? startPublishSpan(channel.template, concrete.name, item.traceContext) : undefined;
        if (span) spans?.push(span);
        const payload = this.#payload(concrete.name, channel, checked, span && channel.wire === 'envelope' ? traceFieldsOf(span) : undefined);
        outbound[i] = { channel: concrete.name, payload, stream: this.#streamOf(concrete.name, channel, item.fence) };
        channels[i] = channel;
      }
    } catch (error) {
      for (const span of spans ?? []) failSpan(span, error);
      throw error;
    }
    // The common case, handed to the transport as one batch: one promise, not one a message.
    if (!spans && !this.#buffer && this.#ready) {
      for (const channel of channels) this.#ctx.metrics.publishedCell(channel.template).n++;
      return this.#link.publishBatch(outbound);
    }
    // One after the other into the transport's queue: they go out together, in order.
    return Promise.all(
      outbound.map((m, i) => {
        const sent = this.#send(m.channel, channels[i] as Channel, m.payload, m.stream);
        const span = spans?.[i];
        return span ? endWith(span, sent, receiptAttributes) : sent;
      }),
    );
  }

  /**
   * Sends what the fallback buffer holds if Redis is reachable, then releases the
   * connection. Messages still buffered stay in the journal, if there is one; without one
   * they are lost, and the log says how many.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#replayTimer);
    await this.#connecting?.catch(() => undefined);
    const buffer = this.#buffer;
    if (buffer) {
      if (buffer.size > 0 && this.#link.isConnected) await this.#replay(true);
      if (buffer.size > 0) {
        this.#ctx.logger.warn({ messages: buffer.size, file: buffer.options.file }, buffer.options.file ? 'publisher closed with messages buffered; the journal keeps them for the next start' : 'publisher closed with messages buffered and no journal: they are lost');
      }
      buffer.close();
    }
    await this.#link.close();
    this.removeAllListeners();
  }

  #send(name: string, channel: Channel, payload: string, stream: StreamWrite | undefined): Promise<PublishReceipt> {
    // Counted when handed over; a transport failure is counted by the 'publishFailed'
    // listener, so the hot path adds no promise of its own.
    this.#ctx.metrics.publishedCell(channel.template).n++;
    if (this.#buffer) return this.#sendOrKeep({ channel: name, payload, stream });
    if (!this.#ready) return this.connect().then(() => this.#link.publish(name, payload, stream));
    return this.#link.publish(name, payload, stream);
  }

  async #publishAsync(name: string, channel: Channel, checked: Promise<CheckResult<unknown>>): Promise<PublishReceipt> {
    const result = await checked;
    if (tracingOn()) return this.#publishTraced(name, channel, result);
    return this.#send(name, channel, this.#payload(name, channel, result), this.#streamOf(name, channel, undefined));
  }

  /** One message with tracing on: a producer span, its trace context in the envelope. */
  #publishTraced(name: string, channel: Channel, checked: CheckResult<unknown>): Promise<PublishReceipt> {
    const span = startPublishSpan(channel.template, name);
    let payload: string;
    try {
      payload = this.#payload(name, channel, checked, channel.wire === 'envelope' ? traceFieldsOf(span) : undefined);
    } catch (error) {
      failSpan(span, error);
      throw error;
    }
    return endWith(span, this.#send(name, channel, payload, this.#streamOf(name, channel, undefined)), receiptAttributes);
  }

  /** The stream write of a message of `channel` (none without a stream). */
  #streamOf(name: string, channel: Channel, fence: string | undefined): StreamWrite | undefined {
    return channel.retention === undefined ? undefined : fence === undefined ? this.#streamWrite(name, channel) : this.#fencedWrite(name, channel, fence);
  }

  /** The stream write of a fenced publish: one object per channel while its token lasts. */
  #fencedWrite(name: string, channel: Channel, fence: string): StreamWrite {
    const cached = this.#fencedWrites.get(name);
    if (cached?.fence === fence) return cached;
    const write: StreamWrite = Object.freeze({ ...this.#streamWrite(name, channel), fence });
    if (this.#fencedWrites.size >= STREAM_WRITE_CACHE) this.#fencedWrites.clear();
    this.#fencedWrites.set(name, write);
    return write;
  }

  #streamWrite(name: string, channel: Channel): StreamWrite {
    let write = this.#streamWrites.get(name);
    if (!write) {
      const retention = channel.retention;
      write = Object.freeze({ key: streamKey(name), publish: channel.delivery === 'pubsub', maxLen: retention?.maxLen, maxAgeMs: retention?.maxAgeMs });
      if (this.#streamWrites.size >= STREAM_WRITE_CACHE) this.#streamWrites.clear();
      this.#streamWrites.set(name, write);
    }
    return write;
  }

  // ---- the fallback buffer -------------------------------------------------------

  /** With a fallback buffer: send now if nothing waits ahead of this message, else keep it. */
  #sendOrKeep(message: Outbound): Promise<PublishReceipt> {
    const buffer = this.#buffer as FallbackBuffer;
    if (!this.#ready || !this.#link.isConnected || buffer.size > 0 || this.#replaying) {
      if (!this.#ready) this.#connectInBackground();
      try {
        return Promise.resolve(this.#keep(message));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    const seq = buffer.nextSeq();
    return this.#link.publish(message.channel, message.payload, message.stream).catch((error: unknown) => {
      // Lost with the connection: back into the buffer, in its place in the order. Redis
      // may have taken it before the connection dropped: at least once, not exactly once.
      if (error instanceof NotConnectedError && !this.#closed) return this.#keep(message, seq);
      throw error;
    });
  }

  #keep(message: Outbound, seq?: number): PublishReceipt {
    const buffer = this.#buffer as FallbackBuffer;
    const { metrics, logger } = this.#ctx;
    let result;
    try {
      result = buffer.push(message, seq);
    } catch (error) {
      metrics.fallbackDropped.labels('rejected').inc();
      metrics.countPublishFailed(undefined, ErrorCode.BufferFull);
      throw error;
    }
    if (result.dropped) {
      const which = result.kept ? 'oldest' : 'newest';
      metrics.fallbackDropped.labels(which).inc();
      logger.warn({ channel: result.dropped.channel, policy: buffer.options.overflow, buffered: buffer.size, bytes: buffer.bytes }, `fallback buffer full: dropped the ${which} message`);
    }
    if (!result.kept) return DROPPED;
    metrics.fallbackBuffered.inc();
    return BUFFERED;
  }

  /** The first connection failed: keep trying with back-off, buffering meanwhile. */
  #connectInBackground(): void {
    if (this.#background || this.#closed) return;
    const reconnect = resolveReconnect(this.#ctx.reconnect);
    const run = async (): Promise<void> => {
      for (let attempt = 0; !this.#closed && !this.#ready; attempt++) {
        try {
          await this.connect();
        } catch (error) {
          if (attempt === 0) this.#ctx.logger.warn({ err: error, buffered: this.#buffer?.size }, 'publisher cannot reach Redis; buffering and retrying');
          await new Promise<void>((resolve) => (this.#retryTimer = setTimeout(resolve, backoffDelay(attempt, reconnect))));
        }
      }
    };
    this.#background = run().finally(() => (this.#background = undefined));
  }

  /** Sends the buffer's messages in order, a chunk at a time, until it is empty or the connection drops. */
  async #replay(closing = false): Promise<void> {
    const buffer = this.#buffer;
    if (!buffer || this.#replaying || (this.#closed && !closing)) return;
    this.#replaying = true;
    const { metrics, logger } = this.#ctx;
    const started = Date.now();
    let sent = 0;
    try {
      while (buffer.size > 0 && this.#link.isConnected) {
        const chunk = buffer.peek(REPLAY_CHUNK);
        const results = await Promise.allSettled(chunk.map((m) => this.#link.publish(m.channel, m.payload, m.stream)));
        const done: Buffered[] = [];
        let lost = false;
        let chunkSent = 0;
        results.forEach((r, i) => {
          const m = chunk[i] as Buffered;
          if (r.status === 'fulfilled') {
            done.push(m);
            chunkSent++;
          } else if (r.reason instanceof NotConnectedError) {
            lost = true;
          } else {
            // Redis refused this one (an ACL, a wrong type): it would never go through.
            done.push(m);
            metrics.fallbackDropped.labels('refused').inc();
            logger.error({ err: r.reason, channel: m.channel }, 'fallback replay: Redis refused a buffered message; dropped it');
          }
        });
        buffer.remove(done);
        sent += chunkSent;
        if (chunkSent > 0) metrics.fallbackReplayed.inc(chunkSent);
        if (lost) break;
      }
    } finally {
      this.#replaying = false;
    }
    if (sent > 0) logger.info({ sent, left: buffer.size, ms: Date.now() - started }, buffer.size === 0 ? 'fallback buffer replayed' : 'fallback replay interrupted');
    // Stopped while still connected (Redis loading its data after a restart): no
    // 'reconnected' will come to start it again, so try again shortly.
    if (buffer.size > 0 && this.#link.isConnected && !this.#closed) {
      clearTimeout(this.#replayTimer);
      this.#replayTimer = setTimeout(() => this.#ctx.background.run('publisher_fallback_replay', () => this.#replay()), backoffDelay(this.#replayAttempts++, resolveReconnect(this.#ctx.reconnect)));
    } else {
      this.#replayAttempts = 0;
    }
  }

  #target(target: PublishTarget): ConcreteTarget {
    try {
      return concreteTarget(target, this.#ctx.resolver);
    } catch (error) {
      this.#ctx.metrics.countPublishFailed(undefined, (error as BusError).code ?? ErrorCode.Transport);
      throw error;
    }
  }

  /** The wire payload of a validated message; throws the validation or size error. */
  #payload(name: string, channel: Channel, result: CheckResult<unknown>, traced?: ReturnType<typeof traceFieldsOf>): string {
    if (result.issues) {
      const error = validationError(result.issues, name);
      this.#ctx.metrics.countPublishFailed(channel.template, error.code);
      throw error;
    }
    // A durable message carries an id, the same on every delivery, for handlers to de-duplicate.
    const payload = channel.delivery === 'durable' && channel.wire === 'envelope' ? this.#writer.writeWithId(result.value, randomUUID(), traced) : this.#writer.write(channel.wire, result.value, traced);
    if (exceedsBytes(payload, this.#ctx.limits.maxMessageBytes)) {
      this.#ctx.metrics.countPublishFailed(channel.template, ErrorCode.MessageTooLarge);
      throw new DecodeError(
        ErrorCode.MessageTooLarge,
        `Message for "${name}" is larger than the ${this.#ctx.limits.maxMessageBytes}-byte limit; send a reference to the data instead, or raise limits.maxMessageBytes.`,
        payload.slice(0, 60),
        { channel: name },
      );
    }
    return payload;
  }

}

/** What a publish span records of its receipt. */
function receiptAttributes(r: PublishReceipt): Attributes {
  return r.position === undefined ? { 'tickbus.receipt': r.status } : { 'tickbus.receipt': r.status, 'tickbus.position': r.position };
}

export type { ChannelParams };
