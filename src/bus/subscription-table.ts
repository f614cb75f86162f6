// Who is subscribed to what: a pure state machine, kept apart from sockets so it can be
// specified without a server. Several handlers may share one Redis subscription; the
// table says when a key gains its first handler (subscribe in Redis) and loses its last
// (unsubscribe in Redis).

export type SubscriptionKind = 'exact' | 'pattern';

export class SubscriptionTable<H> {
  readonly #exact = new Map<string, Set<H>>();
  readonly #patterns = new Map<string, Set<H>>();

  #map(kind: SubscriptionKind): Map<string, Set<H>> {
    return kind === 'exact' ? this.#exact : this.#patterns;
  }

  /** Adds a handler; returns true when the key is new and Redis must subscribe to it. */
  add(kind: SubscriptionKind, key: string, handler: H): boolean {
    const map = this.#map(kind);
    const set = map.get(key);
    if (set) {
      set.add(handler);
      return false;
    }
    map.set(key, new Set([handler]));
    return true;
  }

  /** Removes a handler; returns true when the key has no handler left and Redis must unsubscribe. */
  remove(kind: SubscriptionKind, key: string, handler: H): boolean {
    const map = this.#map(kind);
    const set = map.get(key);
    if (!set || !set.delete(handler)) return false;
    if (set.size > 0) return false;
    map.delete(key);
    return true;
  }

  /** Removes every handler of a key; returns them. */
  clear(kind: SubscriptionKind, key: string): H[] {
    const map = this.#map(kind);
    const set = map.get(key);
    map.delete(key);
    return set ? [...set] : [];
  }

  handlers(kind: SubscriptionKind, key: string): ReadonlySet<H> | undefined {
    return this.#map(kind).get(key);
  }

  keys(kind: SubscriptionKind): string[] {
    return [...this.#map(kind).keys()];
  }

  get size(): number {
    return this.#exact.size + this.#patterns.size;
  }
}
