// Each user's alert preferences (seed 003: TickStockApp publishes them on
// `tickstock.jobs.alerts`): which symbols, which patterns, from which confidence. Kept in one
// Redis hash (ALERT_PREFS_KEY, field user → JSON) so that a gateway that starts later knows
// them, and in memory, indexed by symbol, so that the alert router matches an event without a
// round trip. Every gateway hears every message and applies it in the order heard, to its
// cache and then to the hash: applying one twice changes nothing (a subscribe sets the fields
// it names, an unsubscribe removes the user), so all gateways writing is safe, and the last
// write is always the one of the latest message.
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { AlertJobs, type PatternEventSchema } from '../catalogs/tickstock.ts';
import { ALERT_PREFS_KEY } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import type { z } from 'zod';
import { hashReply, type CommandLink } from '../transports/commands.ts';

/** What a user wants alerts for. Absent symbols or patterns mean all; absent min_confidence means 0. */
export interface AlertPreference {
  readonly symbols?: readonly string[];
  readonly patterns?: readonly string[];
  readonly min_confidence?: number;
}

/** One message of tickstock.jobs.alerts (AlertSubscriptionSchema). */
export type AlertSubscription = z.output<typeof AlertJobs.schema>;

type PatternEvent = Pick<z.output<typeof PatternEventSchema>, 'symbol' | 'pattern' | 'confidence'>;

/** A preference ready for matching: patterns lower-cased in a set. */
interface Compiled {
  readonly stored: AlertPreference;
  readonly symbols: ReadonlySet<string> | undefined;
  readonly patterns: ReadonlySet<string> | undefined;
  readonly minConfidence: number;
}

function compile(stored: AlertPreference): Compiled {
  return {
    stored,
    symbols: stored.symbols && stored.symbols.length > 0 ? new Set(stored.symbols) : undefined,
    patterns: stored.patterns && stored.patterns.length > 0 ? new Set(stored.patterns.map((p) => p.toLowerCase())) : undefined,
    minConfidence: stored.min_confidence ?? 0,
  };
}

/** A stored JSON value as a preference, or undefined when it is not one (ignored, logged). */
function parseStored(json: string): AlertPreference | undefined {
  try {
    const v = JSON.parse(json) as Record<string, unknown>;
    const strings = (x: unknown) => (Array.isArray(x) && x.every((s) => typeof s === 'string') ? x : undefined);
    const out: { symbols?: string[]; patterns?: string[]; min_confidence?: number } = {};
    const symbols = strings(v.symbols);
    const patterns = strings(v.patterns);
    if (symbols) out.symbols = symbols;
    if (patterns) out.patterns = patterns;
    if (typeof v.min_confidence === 'number') out.min_confidence = v.min_confidence;
    return out;
  } catch {
    return undefined;
  }
}

export class AlertPreferences {
  readonly #bus: TickBus;
  readonly #redis: CommandLink;
  readonly #logger: Logger;
  readonly #users = new Map<string, Compiled>();
  /** Users by the symbols they named; those who named none (all symbols) apart. */
  readonly #bySymbol = new Map<string, Set<string>>();
  readonly #everySymbol = new Set<string>();
  #subscription: Subscription | undefined;
  /** Messages are applied one after the other, in the order heard (after the initial load). */
  #chain: Promise<void> = Promise.resolve();

  constructor(bus: TickBus, redis: CommandLink, logger: Logger) {
    this.#bus = bus;
    this.#redis = redis;
    this.#logger = logger;
  }

  get size(): number {
    return this.#users.size;
  }

  /** Subscribes first, then loads the hash: a message published meanwhile is applied after the load. */
  async start(): Promise<void> {
    this.#subscription = await this.#bus.subscribe(AlertJobs, (message) => this.#enqueue(message));
    const load = this.#load();
    this.#chain = load.catch(() => undefined);
    await load;
  }

  async close(): Promise<void> {
    await this.#subscription?.unsubscribe().catch(() => undefined);
    await this.#chain;
  }

  get(user: string): AlertPreference | undefined {
    return this.#users.get(user)?.stored;
  }

  /**
   * Applies one message (from whoever published it) to the cache and the hash. Also called by
   * the gateway for its own clients' `alerts` requests, before it publishes them, so that the
   * reply means "in effect here"; the copy heard back changes nothing.
   */
  async apply(message: AlertSubscription): Promise<void> {
    const user = message.user_id;
    if (message.action === 'unsubscribe') {
      this.#set(user, undefined);
      await this.#redis.send(['HDEL', ALERT_PREFS_KEY, user], ALERT_PREFS_KEY);
      return;
    }
    const old = this.#users.get(user)?.stored ?? {};
    const next: AlertPreference = {
      ...old,
      ...(message.symbols === undefined ? {} : { symbols: [...new Set(message.symbols)] }),
      ...(message.patterns === undefined ? {} : { patterns: [...new Set(message.patterns)] }),
      ...(message.min_confidence === undefined ? {} : { min_confidence: message.min_confidence }),
    };
    this.#set(user, next);
    await this.#redis.send(['HSET', ALERT_PREFS_KEY, user, JSON.stringify(next)], ALERT_PREFS_KEY);
  }

  /** The users a pattern event is for: symbol among theirs (or none named), pattern among theirs (any case, or none named), confidence at least theirs. */
  matching(event: PatternEvent): string[] {
    const pattern = event.pattern.toLowerCase();
    const out: string[] = [];
    const consider = (user: string) => {
      const p = this.#users.get(user);
      if (!p) return;
      if (p.patterns && !p.patterns.has(pattern)) return;
      if (event.confidence < p.minConfidence) return;
      out.push(user);
    };
    for (const user of this.#bySymbol.get(event.symbol) ?? []) consider(user);
    for (const user of this.#everySymbol) consider(user);
    return out;
  }

  async #load(): Promise<void> {
    const reply = await this.#redis.send<unknown>(['HGETALL', ALERT_PREFS_KEY], ALERT_PREFS_KEY);
    for (const [user, json] of Object.entries(hashReply(reply))) {
      const stored = parseStored(json);
      if (stored) this.#set(user, stored);
      else this.#logger.warn({ user }, 'gateway: an alert preference in Redis is not JSON; ignored');
    }
  }

  #enqueue(message: AlertSubscription): void {
    this.#chain = this.#chain.then(() => this.apply(message)).catch((error: unknown) => this.#logger.warn({ err: error, user: message.user_id }, 'gateway: alert preference not stored'));
  }

  #set(user: string, stored: AlertPreference | undefined): void {
    const old = this.#users.get(user);
    if (old) {
      if (old.symbols) for (const s of old.symbols) this.#unindex(s, user);
      else this.#everySymbol.delete(user);
      this.#users.delete(user);
    }
    if (!stored) return;
    const compiled = compile(stored);
    this.#users.set(user, compiled);
    if (!compiled.symbols) {
      this.#everySymbol.add(user);
      return;
    }
    for (const s of compiled.symbols) {
      let set = this.#bySymbol.get(s);
      if (!set) this.#bySymbol.set(s, (set = new Set()));
      set.add(user);
    }
  }

  #unindex(symbol: string, user: string): void {
    const set = this.#bySymbol.get(symbol);
    set?.delete(user);
    if (set?.size === 0) this.#bySymbol.delete(symbol);
  }
}

