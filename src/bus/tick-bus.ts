// The front door: createBus() gives a publisher and a subscriber that share a context
// (transport, catalogs, metrics, logger). Each keeps its own connection; the subscriber
// connects on its first subscribe, so a publish-only service opens one connection.
import type { BusError } from '../core/errors.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { ErrorEventLog } from '../core/logger.ts';
import { SHIPPED_CATALOGS } from '../catalogs/index.ts';
import { createContext, type BusContext, type BusOptions } from './context.ts';
import { Publisher, type PublisherEvents } from './publisher.ts';
import { Subscriber } from './subscriber.ts';
import type { ConsumeOptions, Consumer, DurableHandler } from './consumer.ts';
import { createConsumer, startOwned } from './consume.ts';
import type { Channel, ChannelRef } from '../core/channel.ts';
import type { InferOutput, StandardSchemaV1 } from '../core/schema.ts';

export type Role = 'publisher' | 'subscriber' | 'consumer';

export type BusEvents = {
  disconnected: (role: Role, cause: Error) => void;
  reconnected: (role: Role) => void;
  error: (error: BusError, role: Role) => void;
};

export class TickBus extends TypedEmitter<BusEvents> {
  readonly context: BusContext;
  readonly publisher: Publisher;
  readonly subscriber: Subscriber;
  /** Publish: see Publisher.publish. */
  readonly publish: Publisher['publish'];
  readonly publishBatch: Publisher['publishBatch'];
  /** Subscribe: see Subscriber.subscribe. */
  readonly subscribe: Subscriber['subscribe'];
  readonly unsubscribe: Subscriber['unsubscribe'];
  readonly #consumers = new Set<Consumer<unknown>>();
  readonly #untrack: Array<() => void> = [];

  constructor(options: BusOptions = {}) {
    super();
    this.context = createContext(options, SHIPPED_CATALOGS);
    this.publisher = new Publisher(this.context);
    this.subscriber = new Subscriber(this.context);
    this.publish = this.publisher.publish.bind<Publisher['publish']>(this.publisher);
    this.publishBatch = this.publisher.publishBatch.bind(this.publisher);
    this.subscribe = this.subscriber.subscribe.bind<Subscriber['subscribe']>(this.subscriber);
    this.unsubscribe = this.subscriber.unsubscribe.bind(this.subscriber);
    const logger = this.context.logger;
    const errors = new ErrorEventLog(logger, 'bus error');
    this.setUnhandled((event, args) => {
      if (event === 'error') errors.log(args[0], { role: args[1] });
    });
    for (const [role, part] of [['publisher', this.publisher], ['subscriber', this.subscriber]] as const) {
      // Reported from the first connection on: a subscriber that never subscribed is not down.
      let opened = false;
      (part as TypedEmitter<PublisherEvents>).on('connected', () => (opened = true));
      this.#untrack.push(this.context.metrics.trackConnection(role, () => (opened ? part.isConnected : undefined)));
    }
    for (const [role, part] of [['publisher', this.publisher as TypedEmitter<PublisherEvents>], ['subscriber', this.subscriber as TypedEmitter<PublisherEvents>]] as const) {
      part.on('disconnected', (cause) => this.emit('disconnected', role, cause));
      part.on('reconnected', () => this.emit('reconnected', role));
      part.on('error', (error) => this.emit('error', error, role));
    }
  }

  /** Connects the publisher (the subscriber connects on its first subscribe). */
  async connect(): Promise<this> {
    await this.publisher.connect();
    return this;
  }

  /**
   * Consumes a durable channel as a member of a consumer group: each message reaches one
   * member, and is acknowledged once `handler` resolves. Resolves when the group exists
   * and reading has begun. close() on the bus closes its consumers too.
   */
  async consume<T extends string, S extends StandardSchemaV1>(
    target: ChannelRef<T, S> | Channel<T, S> | string,
    handler: DurableHandler<InferOutput<S>>,
    options: ConsumeOptions,
  ): Promise<Consumer<InferOutput<S>>> {
    const consumer = createConsumer(this.context, target, handler, options);
    consumer.on('error', (error) => this.emit('error', error, 'consumer'));
    return startOwned(consumer, this.#consumers);
  }

  async close(): Promise<void> {
    // A closed bus is not a lost connection.
    for (const untrack of this.#untrack.splice(0)) untrack();
    await Promise.all([this.publisher.close(), this.subscriber.close(), ...[...this.#consumers].map((c) => c.close())]);
    this.#consumers.clear();
    this.removeAllListeners();
  }
}

/** A bus over Redis (REDIS_URL or the options), or over memory with `{ transport: 'memory' }`. */
export function createBus(options: BusOptions = {}): TickBus {
  return new TickBus(options);
}

export function createPublisher(options: BusOptions = {}): Publisher {
  return new Publisher(createContext(options, SHIPPED_CATALOGS));
}

export function createSubscriber(options: BusOptions = {}): Subscriber {
  return new Subscriber(createContext(options, SHIPPED_CATALOGS));
}
