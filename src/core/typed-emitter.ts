// A typed EventEmitter (BullMQ's shape): an interface maps event names to listener
// signatures. Unlike Node's emitter, an 'error' with no listener does not throw: a bus
// that receives garbage from the network must not crash because nobody subscribed to
// 'error'. Such errors go to the fallback (the bus's logger) instead.
import { EventEmitter } from 'node:events';

export type EventMap = { [K: string]: (...args: never[]) => void };

export class TypedEmitter<Events extends EventMap> {
  readonly #emitter = new EventEmitter();
  #fallback: ((event: string, args: unknown[]) => void) | undefined;

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  on<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.#emitter.on(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.#emitter.once(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof Events & string>(event: K, listener: Events[K]): this {
    this.#emitter.off(event, listener as unknown as (...args: unknown[]) => void);
    return this;
  }

  listenerCount<K extends keyof Events & string>(event: K): number {
    return this.#emitter.listenerCount(event);
  }

  /** Where events with no listener go (used for 'error'). */
  protected setUnhandled(fallback: (event: string, args: unknown[]) => void): void {
    this.#fallback = fallback;
  }

  protected emit<K extends keyof Events & string>(event: K, ...args: Parameters<Events[K]>): void {
    if (this.#emitter.listenerCount(event) === 0) {
      this.#fallback?.(event, args);
      return;
    }
    this.#emitter.emit(event, ...args);
  }

  protected removeAllListeners(): void {
    this.#emitter.removeAllListeners();
  }
}
