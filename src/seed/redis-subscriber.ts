// RedisSubscriber from seed 001: register handlers per channel name, then startListening().
// Messages are decoded and validated by the typed bus; handlers get the seed's message object.
import type { MessageContext, MessageHandler, Subscriber, Subscription } from '../bus/subscriber.ts';
import { createSubscriber } from '../bus/tick-bus.ts';
import { ChannelParamError, ClosedError } from '../core/errors.ts';
import { toBusOptions, type RedisClientOptions } from './client-options.ts';

/** What a handler receives: the envelope's fields plus the channel it arrived on. */
export interface SeedMessage<T = unknown> {
  /** The validated data (schema defaults and normalisations applied). */
  readonly data: T;
  /** The envelope's ISO-8601 timestamp; undefined on bare-wire channels. */
  readonly timestamp: string | undefined;
  /** The envelope's sender; undefined on bare-wire channels. */
  readonly sender: string | undefined;
  readonly channel: string;
}

export type SeedMessageHandler<T = unknown> = (message: SeedMessage<T>) => unknown;

interface HandlerEntry {
  readonly channel: string;
  readonly handler: MessageHandler<unknown>;
  /** The bus subscription in progress or made; undefined until listening. */
  applying: Promise<Subscription> | undefined;
}

export class RedisSubscriber {
  /** The typed subscriber underneath: listen to its 'error' event for rejected messages. */
  readonly bus: Subscriber;
  // A Set keeps registration order, and membership says whether a handler still stands.
  readonly #entries = new Set<HandlerEntry>();
  #listening: Promise<void> | undefined;
  #closed = false;

  constructor(options: RedisClientOptions = {}) {
    this.bus = createSubscriber(toBusOptions(options));
  }

  /**
   * Adds a handler for one channel (an exact name: `*` and `?` are not patterns here).
   * Before startListening() the handler is only registered and this resolves at once;
   * afterwards it resolves when the channel is subscribed. Handlers of a channel add up.
   * Data on a channel the catalogs define is validated first; `T` is the caller's word for
   * its type, e.g. `subscribe<TickerUpdate>(...)`.
   */
  async subscribe<T = unknown>(channel: string, handler: SeedMessageHandler<T>): Promise<void> {
    if (this.#closed) throw new ClosedError('subscriber');
    if (typeof channel !== 'string' || channel.length === 0) throw new ChannelParamError('channel', 'A channel name cannot be empty.');
    const entry: HandlerEntry = {
      channel,
      handler: (data: unknown, ctx: MessageContext) => handler({ data: data as T, timestamp: ctx.timestamp, sender: ctx.sender, channel: ctx.channel }),
      applying: undefined,
    };
    this.#entries.add(entry);
    if (this.#listening) {
      await this.#listening;
      await this.#apply(entry);
    }
  }

  /**
   * Connects and subscribes every registered channel; resolves when all are subscribed.
   * Calling it again returns the same promise; after a failure, calling it again retries.
   */
  startListening(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('subscriber'));
    this.#listening ??= this.bus
      .connect()
      .then(() => Promise.all([...this.#entries].map((r) => this.#apply(r))))
      .then(
        () => undefined,
        (error: unknown) => {
          this.#listening = undefined;
          throw error;
        },
      );
    return this.#listening;
  }

  /** Removes every handler of one channel, or of every channel when called without one. */
  async unsubscribe(channel?: string): Promise<void> {
    if (this.#closed) return;
    for (const r of this.#entries) if (channel === undefined || r.channel === channel) this.#entries.delete(r);
    await this.bus.unsubscribe(channel);
  }

  /** Stops every handler and releases the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#entries.clear();
    await this.bus.close();
  }

  /** Subscribes one handler on the bus, once, however many callers ask. */
  #apply(entry: HandlerEntry): Promise<Subscription> {
    entry.applying ??= this.bus.subscribe(entry.channel, entry.handler, { pattern: false }).then(
      async (subscription) => {
        // unsubscribe() ran while this was in flight: undo it.
        if (!this.#entries.has(entry)) await subscription.unsubscribe();
        return subscription;
      },
      (error: unknown) => {
        entry.applying = undefined;
        throw error;
      },
    );
    return entry.applying;
  }
}
