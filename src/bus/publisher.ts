// Validates, wraps and publishes. A message that fails its schema, is too large, or
// names a channel no catalog defines is refused with a typed error before it reaches
// the transport; a publish while disconnected fails fast with NotConnectedError.
import type { Channel, ChannelRef, ChannelParams } from '../core/channel.ts';
import { encodePayload, exceedsBytes } from '../core/envelope.ts';
import { BusError, ClosedError, DecodeError, ErrorCode, type ErrorCode as Code } from '../core/errors.ts';
import { validate, type InferInput, type StandardSchemaV1 } from '../core/schema.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import type { PublishLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { concreteTarget, type ConcreteTarget, type PublishTarget } from './targets.ts';

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
}

export class Publisher extends TypedEmitter<PublisherEvents> {
  readonly #ctx: BusContext;
  readonly #link: PublishLink;
  #closed = false;
  #connecting: Promise<void> | undefined;
  #ready = false;

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createPublishLink();
    const { logger, metrics } = ctx;
    this.setUnhandled((event, args) => {
      if (event === 'error') logger.warn({ err: args[0] }, 'publisher error');
    });
    this.#link.on('connected', () => this.emit('connected'));
    this.#link.on('disconnected', (cause) => {
      metrics.connection.labels('publisher', 'disconnected').inc();
      logger.warn({ target: ctx.transport.target }, 'publisher disconnected; reconnecting');
      this.emit('disconnected', cause);
    });
    this.#link.on('reconnected', () => {
      metrics.connection.labels('publisher', 'reconnected').inc();
      logger.info({ target: ctx.transport.target }, 'publisher reconnected');
      this.emit('reconnected');
    });
    this.#link.on('error', (error) => this.emit('error', error as BusError));
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

  /**
   * Validates `data` against the channel's schema, wraps it in the envelope and publishes
   * it. Resolves with the number of receivers Redis reports.
   */
  publish<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>, data: InferInput<S>): Promise<number>;
  publish<T extends string, S extends StandardSchemaV1>(target: Channel<T, S> & { readonly isTemplate: false }, data: InferInput<S>): Promise<number>;
  publish(target: string, data: unknown): Promise<number>;
  async publish(target: PublishTarget, data: unknown): Promise<number> {
    const concrete = this.#target(target);
    const payload = await this.#encode(concrete, data);
    if (!this.#ready) await this.connect();
    try {
      const receivers = await this.#link.publish(concrete.name, payload);
      this.#ctx.metrics.countPublished(concrete.channel?.template);
      return receivers;
    } catch (error) {
      throw this.#failed(concrete, error);
    }
  }

  /**
   * Publishes many messages in one round trip, in order. Every message is validated first;
   * if any is invalid, none is sent.
   */
  async publishBatch(items: readonly BatchItem[]): Promise<number[]> {
    const concretes = items.map((item) => this.#target(item.channel));
    const payloads: string[] = [];
    for (let i = 0; i < items.length; i++) payloads.push(await this.#encode(concretes[i] as ConcreteTarget, (items[i] as BatchItem).data));
    if (!this.#ready) await this.connect();
    try {
      const counts = await this.#link.publishBatch(concretes.map((c, i) => [c.name, payloads[i] ?? ''] as const));
      for (const c of concretes) this.#ctx.metrics.countPublished(c.channel?.template);
      return counts;
    } catch (error) {
      throw this.#failed(concretes[0], error);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    await this.#link.close();
    this.removeAllListeners();
  }

  #target(target: PublishTarget): ConcreteTarget {
    if (this.#closed) throw new ClosedError('publisher');
    try {
      return concreteTarget(target, this.#ctx.resolver, true);
    } catch (error) {
      this.#ctx.metrics.countPublishFailed(undefined, (error as BusError).code ?? ErrorCode.Transport);
      throw error;
    }
  }

  #encode(target: ConcreteTarget, data: unknown): string | Promise<string> {
    const channel = target.channel as Channel; // publishing requires a known channel
    const checked = validate(channel.schema, data, target.name);
    const finish = (result: Awaited<typeof checked>): string => {
      if (!result.ok) {
        this.#ctx.metrics.countPublishFailed(channel.template, result.error.code);
        throw result.error;
      }
      const payload = encodePayload(channel.wire, result.value, this.#ctx.sender);
      if (exceedsBytes(payload, this.#ctx.limits.maxMessageBytes)) {
        this.#ctx.metrics.countPublishFailed(channel.template, ErrorCode.MessageTooLarge);
        throw new DecodeError(
          ErrorCode.MessageTooLarge,
          `Message for "${target.name}" is larger than the ${this.#ctx.limits.maxMessageBytes}-byte limit; send a reference to the data instead, or raise limits.maxMessageBytes.`,
          payload.slice(0, 60),
          { channel: target.name },
        );
      }
      return payload;
    };
    return checked instanceof Promise ? checked.then(finish) : finish(checked);
  }

  #failed(target: ConcreteTarget | undefined, error: unknown): Error {
    const code = (error as { code?: Code }).code ?? ErrorCode.Transport;
    this.#ctx.metrics.countPublishFailed(target?.channel?.template, code);
    return error as Error;
  }
}

export type { ChannelParams };
