// Validates, wraps and publishes. A message that fails its schema, is too large, or
// names a channel no catalog defines is refused with a typed error before it reaches
// the transport; a publish while disconnected fails fast with NotConnectedError.
import type { Channel, ChannelRef, ChannelParams } from '../core/channel.ts';
import { EnvelopeWriter, exceedsBytes } from '../core/envelope.ts';
import { BusError, ClosedError, DecodeError, ErrorCode } from '../core/errors.ts';
import { check, validationError, type CheckResult, type InferInput, type StandardSchemaV1 } from '../core/schema.ts';
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
  readonly #writer: EnvelopeWriter;

  constructor(ctx: BusContext) {
    super();
    this.#ctx = ctx;
    this.#link = ctx.transport.createPublishLink();
    this.#writer = new EnvelopeWriter(ctx.sender);
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

  /**
   * Validates `data` against the channel's schema, wraps it in the envelope and publishes
   * it. Resolves with the number of receivers Redis reports.
   */
  publish<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>, data: InferInput<S>): Promise<number>;
  publish<T extends string, S extends StandardSchemaV1>(target: Channel<T, S> & { readonly isTemplate: false }, data: InferInput<S>): Promise<number>;
  publish(target: string, data: unknown): Promise<number>;
  publish(target: PublishTarget, data: unknown): Promise<number> {
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
      payload = this.#payload(name, channel, checked);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!this.#ready) return this.connect().then(() => this.#send(name, channel, payload));
    return this.#send(name, channel, payload);
  }

  /**
   * Publishes many messages in one round trip, in order. Every message is validated first;
   * if any is invalid, none is sent.
   */
  async publishBatch(items: readonly BatchItem[]): Promise<number[]> {
    if (this.#closed) throw new ClosedError('publisher');
    const messages: Array<readonly [string, string]> = [];
    const templates: string[] = [];
    for (const item of items) {
      const target = item.channel;
      const concrete = typeof target === 'object' && target.kind === 'ref' ? target : this.#target(target);
      const channel = concrete.channel;
      let checked = check(channel.schema, item.data);
      if (checked instanceof Promise) checked = await checked;
      messages.push([concrete.name, this.#payload(concrete.name, channel, checked)]);
      templates.push(channel.template);
    }
    if (!this.#ready) await this.connect();
    for (const t of templates) this.#ctx.metrics.publishedCell(t).n++;
    return this.#link.publishBatch(messages);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    await this.#link.close();
    this.removeAllListeners();
  }

  #send(name: string, channel: Channel, payload: string): Promise<number> {
    // Counted when handed over; a transport failure is counted by the 'publishFailed'
    // listener, so the hot path adds no promise of its own.
    this.#ctx.metrics.publishedCell(channel.template).n++;
    return this.#link.publish(name, payload);
  }

  async #publishAsync(name: string, channel: Channel, checked: Promise<CheckResult<unknown>>): Promise<number> {
    const payload = this.#payload(name, channel, await checked);
    if (!this.#ready) await this.connect();
    return this.#send(name, channel, payload);
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
  #payload(name: string, channel: Channel, result: CheckResult<unknown>): string {
    if (result.issues) {
      const error = validationError(result.issues, name);
      this.#ctx.metrics.countPublishFailed(channel.template, error.code);
      throw error;
    }
    const payload = this.#writer.write(channel.wire, result.value);
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

export type { ChannelParams };
