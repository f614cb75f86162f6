// A channel is defined once: a name or a name template such as `TICKER_UPDATES_{ticker}`,
// a schema for its `data`, and a rule for each parameter. From the definition come the
// concrete name for given parameters, the glob for all of them, and the parameters parsed
// back from a concrete name.
import { checkParam, type ChannelParam } from './channel-param.ts';
import { ChannelParamError, ConfigError } from './errors.ts';
import type { InferOutput, StandardSchemaV1 } from './schema.ts';

/** The parameter names of a template: `ParamNames<'A_{x}_{y}'>` is `'x' | 'y'`. */
export type ParamNames<T extends string> = T extends `${string}{${infer P}}${infer Rest}` ? P | ParamNames<Rest> : never;

export type ChannelParams<T extends string> = { readonly [K in ParamNames<T>]: string };

/**
 * How a message looks on the wire.
 * - `envelope`: `{"data": …, "timestamp": "<ISO-8601>", "sender": "<service>"}` (seed 001).
 * - `bare`: the data object itself, as the TickStock (seeds 002, 003) and trading-events
 *   (seed 004) services publish it; tickbus reads and writes it unchanged for them.
 */
export type WireFormat = 'envelope' | 'bare';

/**
 * How a channel delivers.
 * - `pubsub`: Redis PUBLISH, at most once, to whoever is subscribed at that moment.
 * - `durable`: a Redis Stream read through consumer groups, at least once: a message stays
 *   until a handler of each group has succeeded on it.
 */
export type DeliveryMode = 'pubsub' | 'durable';

/** A bound on a stream: the newest `maxLen` entries, and/or those younger than `maxAgeMs`. */
export interface Retention {
  maxLen?: number;
  maxAgeMs?: number;
}

export interface ResolvedRetention {
  /** Trimmed approximately (`MAXLEN ~`), so Redis trims whole nodes: a few more may stay. */
  readonly maxLen: number | undefined;
  readonly maxAgeMs: number | undefined;
}

export interface ChannelSpec<T extends string, S extends StandardSchemaV1> {
  name: T;
  schema: S;
  /** A rule for each `{param}` of the name. */
  params?: { readonly [K in ParamNames<T>]: ChannelParam };
  description?: string;
  /** @default 'envelope' */
  wire?: WireFormat;
  /**
   * Back the channel with a Redis Stream read through consumer groups (at least once).
   * `true` keeps the newest 100,000 messages; or give the bound.
   */
  durable?: boolean | Retention;
  /**
   * Keep a bounded history of a pub/sub channel (a stream beside it), so that a subscriber
   * that comes back can resume from its last position. `true` keeps the newest 1,000.
   * Needs the envelope wire format: the position travels in the envelope.
   */
  history?: boolean | Retention;
  /**
   * On a Redis Cluster, travel by sharded pub/sub (SPUBLISH / SSUBSCRIBE): a message goes
   * only to the shard that owns the channel's slot, instead of to every node. For busy
   * families of channels (one per ticker). Pattern subscriptions do not see sharded
   * channels on a cluster; on one Redis the flag changes nothing. @default false
   */
  sharded?: boolean;
  /**
   * The field of `data` that names what a message is about (e.g. `symbol`): a gateway may then
   * route the channel's messages by it, to clients that asked for some values only.
   */
  keyField?: string;
}

export interface Channel<T extends string = string, S extends StandardSchemaV1 = StandardSchemaV1> {
  readonly kind: 'channel';
  readonly template: T;
  readonly schema: S;
  readonly description: string;
  readonly wire: WireFormat;
  readonly delivery: DeliveryMode;
  /** The stream's bound: for durable channels, and pub/sub channels with history. */
  readonly retention: ResolvedRetention | undefined;
  /** True for a pub/sub channel that keeps a history stream. */
  readonly hasHistory: boolean;
  /** Sharded pub/sub on a Redis Cluster. */
  readonly sharded: boolean;
  /** The `data` field messages can be routed by (ChannelSpec.keyField), or undefined. */
  readonly keyField: string | undefined;
  readonly paramNames: readonly ParamNames<T>[];
  readonly params: { readonly [K in ParamNames<T>]: ChannelParam };
  /** True when the name has parameters (a template such as `TICKER_UPDATES_{ticker}`). */
  readonly isTemplate: [ParamNames<T>] extends [never] ? false : true;
  /** The concrete channel name; parameters are normalised and checked first. */
  name(...params: ParamArgs<T>): string;
  /** A reference to one concrete channel, for publish and subscribe. */
  of(...params: ParamArgs<T>): ChannelRef<T, S>;
  /** The Redis glob that matches every concrete channel of this definition. */
  pattern(): string;
  /** The parameters of a concrete name, or undefined when the name is not one of ours. */
  parse(channelName: string): ChannelParams<T> | undefined;
}

type ParamArgs<T extends string> = [ParamNames<T>] extends [never] ? [] : [params: ChannelParams<T>];

/** One concrete channel of a definition, with its parameters already checked. */
export interface ChannelRef<T extends string = string, S extends StandardSchemaV1 = StandardSchemaV1> {
  readonly kind: 'ref';
  readonly channel: Channel<T, S>;
  readonly name: string;
  readonly params: ChannelParams<T>;
}

/** The `data` type of a channel, a reference or a catalog entry. */
export type DataOf<C> = C extends Channel<string, infer S> ? InferOutput<S> : C extends ChannelRef<string, infer S> ? InferOutput<S> : never;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

const REF_CACHE_SIZE = 10_000;

/** The cache key of a parameter set, or undefined when a value is not a string. */
function cacheKey(names: readonly string[], input: Record<string, unknown>): string | undefined {
  if (names.length === 1) {
    const v = input[names[0] as string];
    return typeof v === 'string' ? v : undefined;
  }
  let key = '';
  for (const n of names) {
    const v = input[n];
    if (typeof v !== 'string') return undefined;
    key += `${v}\u0000`;
  }
  return key;
}

/** Escapes the characters that are special in a Redis glob. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export function defineChannel<const T extends string, S extends StandardSchemaV1>(spec: ChannelSpec<T, S>): Channel<T, S> {
  const template = spec.name;
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as ParamNames<T>);
  const params = (spec.params ?? {}) as { readonly [K in ParamNames<T>]: ChannelParam };
  for (const n of names) {
    if (!(params as Record<string, ChannelParam | undefined>)[n]) {
      throw new ConfigError(`Channel "${template}" uses {${n}} but defines no rule for it in "params".`);
    }
  }
  if (new Set(names).size !== names.length) throw new ConfigError(`Channel "${template}" repeats a parameter.`);
  const literals = template.split(PLACEHOLDER).filter((_, i) => i % 2 === 0);
  // Between two parameters the separator must be a character neither may contain, or
  // two different parameter sets would build the same channel name.
  for (let i = 1; i < names.length; i++) {
    const sep = literals[i] ?? '';
    const around = [params[names[i - 1] as ParamNames<T>], params[names[i] as ParamNames<T>]];
    if (sep === '' || [...sep].every((ch) => around.some((rule) => rule.allow.test(ch)))) {
      throw new ConfigError(`Channel "${template}": the text between {${names[i - 1]}} and {${names[i]}} ("${sep}") can occur inside them, so names would be ambiguous. Use a separator their rules do not allow.`);
    }
  }
  const { delivery, retention } = resolveDelivery(template, spec);
  const glob = literals.map(escapeGlob).join('*');
  const matcher = new RegExp(`^${literals.map(escapeRegExp).join('(.+?)')}$`);
  const isTemplate = names.length > 0;
  const refs = new Map<string, ChannelRef<T, S>>();

  const build = (input: Record<string, unknown> | undefined): { name: string; values: Record<string, string> } => {
    if (!isTemplate) return { name: template, values: {} };
    if (input === undefined || input === null || typeof input !== 'object') {
      throw new ChannelParamError(names[0] ?? '', `Channel "${template}" needs parameters: ${names.join(', ')}.`);
    }
    const values: Record<string, string> = {};
    let out = literals[0] ?? '';
    names.forEach((n, i) => {
      const value = checkParam(params[n], n, input[n]);
      values[n] = value;
      out += value + (literals[i + 1] ?? '');
    });
    return { name: out, values };
  };

  const channel: Channel<T, S> = {
    kind: 'channel',
    template,
    schema: spec.schema,
    description: spec.description ?? '',
    wire: spec.wire ?? 'envelope',
    delivery,
    retention,
    hasHistory: delivery === 'pubsub' && retention !== undefined,
    sharded: spec.sharded === true,
    keyField: spec.keyField,
    paramNames: names,
    params,
    isTemplate: isTemplate as Channel<T, S>['isTemplate'],
    name: (...args) => build(args[0]).name,
    of: (...args) => {
      const input = args[0];
      // References are immutable: hand out the same one for the same input (bots call
      // of({ticker}) per message), from a bounded cache.
      const key = input ? cacheKey(names, input) : '';
      if (key !== undefined) {
        const hit = refs.get(key);
        if (hit) return hit;
      }
      const { name, values } = build(input);
      const ref: ChannelRef<T, S> = Object.freeze({ kind: 'ref', channel, name, params: values as ChannelParams<T> });
      if (key !== undefined) {
        if (refs.size >= REF_CACHE_SIZE) refs.clear();
        refs.set(key, ref);
      }
      return ref;
    },
    pattern: () => glob,
    parse: (channelName) => {
      if (!isTemplate) return channelName === template ? ({} as ChannelParams<T>) : undefined;
      const m = matcher.exec(channelName);
      if (!m) return undefined;
      const values: Record<string, string> = {};
      for (let i = 0; i < names.length; i++) {
        const n = names[i] as ParamNames<T>;
        const raw = m[i + 1] as string;
        const rule = params[n];
        // A parsed name must already be canonical: `TICKER_UPDATES_aapl` is not ours.
        if (raw.length > rule.maxLength || rule.normalize(raw) !== raw || !rule.allow.test(raw)) return undefined;
        values[n] = raw;
      }
      return values as ChannelParams<T>;
    },
  };
  return Object.freeze(channel);
}

export const DEFAULT_DURABLE_MAXLEN = 100_000;
export const DEFAULT_HISTORY_MAXLEN = 1_000;

function resolveDelivery(template: string, spec: ChannelSpec<string, StandardSchemaV1>): { delivery: DeliveryMode; retention: ResolvedRetention | undefined } {
  if (spec.durable && spec.history) throw new ConfigError(`Channel "${template}" is declared both durable and with history: a durable channel is its own history; keep one.`);
  const pick = spec.durable || spec.history;
  if (!pick) return { delivery: 'pubsub', retention: undefined };
  if (spec.history && spec.wire === 'bare') {
    throw new ConfigError(`Channel "${template}" has history but a bare wire format: the stream position travels in the envelope. Use wire 'envelope', or no history.`);
  }
  const fallback = spec.durable ? DEFAULT_DURABLE_MAXLEN : DEFAULT_HISTORY_MAXLEN;
  const given: Retention = pick === true ? { maxLen: fallback } : pick;
  for (const [key, value] of Object.entries(given)) {
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) <= 0)) {
      throw new ConfigError(`Channel "${template}": retention ${key} must be a positive integer, got ${String(value)}.`);
    }
  }
  if (given.maxLen === undefined && given.maxAgeMs === undefined) {
    throw new ConfigError(`Channel "${template}": a stream needs a bound (maxLen or maxAgeMs), or it grows until Redis runs out of memory.`);
  }
  return { delivery: spec.durable ? 'durable' : 'pubsub', retention: Object.freeze({ maxLen: given.maxLen, maxAgeMs: given.maxAgeMs }) };
}
