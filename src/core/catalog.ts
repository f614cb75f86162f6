// A catalog is a plain module of channel definitions. Catalogs resolve concrete channel
// names back to their definitions (for validation on receive) and export JSON Schema for
// services written in other languages.
import type { Channel, ChannelParams } from './channel.ts';
import { ConfigError } from './errors.ts';
import type { ChannelParam } from './channel-param.ts';
import { toJsonSchema } from './schema.ts';
import { DEFAULTS } from './defaults.ts';

export interface Catalog<C extends Record<string, Channel> = Record<string, Channel>> {
  readonly name: string;
  readonly description: string;
  readonly channels: C;
  /** Every channel of the catalog, in definition order. */
  list(): Channel[];
}

export function defineCatalog<const C extends Record<string, Channel>>(name: string, description: string, channels: C): Catalog<C> {
  const all = Object.values(channels);
  const seen = new Set<string>();
  for (const ch of all) {
    if (seen.has(ch.template)) throw new ConfigError(`Catalog "${name}" defines "${ch.template}" twice.`);
    seen.add(ch.template);
  }
  return Object.freeze({ name, description, channels: Object.freeze(channels), list: () => all.slice() });
}

export interface ResolvedChannel {
  readonly channel: Channel;
  readonly params: ChannelParams<string>;
}

/**
 * Finds the definition of a concrete channel name across catalogs. Fixed names are a map
 * lookup; templates are tried in order. Results are cached (bounded), since a subscriber
 * sees the same few channel names over and over.
 */
export class ChannelResolver {
  readonly #fixed = new Map<string, Channel>();
  readonly #templates: Channel[] = [];
  readonly #cache = new Map<string, ResolvedChannel | null>();
  readonly #cacheSize: number;
  readonly catalogs: readonly Catalog[];

  constructor(catalogs: readonly Catalog[], cacheSize: number = DEFAULTS.channelCacheSize) {
    this.catalogs = catalogs;
    this.#cacheSize = cacheSize;
    for (const catalog of catalogs) {
      for (const ch of catalog.list()) {
        if (ch.isTemplate) this.#templates.push(ch);
        else this.#fixed.set(ch.template, ch);
      }
    }
  }

  resolve(channelName: string): ResolvedChannel | undefined {
    const cached = this.#cache.get(channelName);
    if (cached !== undefined) return cached ?? undefined;
    let found: ResolvedChannel | null = null;
    const fixed = this.#fixed.get(channelName);
    if (fixed) found = { channel: fixed, params: {} };
    else {
      for (const ch of this.#templates) {
        const params = ch.parse(channelName);
        if (params) {
          found = { channel: ch, params };
          break;
        }
      }
    }
    if (this.#cache.size >= this.#cacheSize) this.#cache.clear();
    this.#cache.set(channelName, found);
    return found ?? undefined;
  }

  /** Every channel known to this resolver. */
  channels(): Channel[] {
    return this.catalogs.flatMap((c) => c.list());
  }
}

/** The JSON Schema document of one catalog: one entry per channel. */
export function catalogJsonSchema(catalog: Catalog): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: `tickbus catalog: ${catalog.name}`,
    description: catalog.description,
    channels: Object.fromEntries(
      catalog.list().map((ch) => [
        ch.template,
        {
          description: ch.description,
          wire: ch.wire,
          pattern: ch.pattern(),
          params: Object.fromEntries(ch.paramNames.map((n) => {
            const rule = (ch.params as Record<string, ChannelParam>)[n] as ChannelParam;
            return [n, { pattern: rule.allow.source, maxLength: rule.maxLength, rule: rule.rule }];
          })),
          data: toJsonSchema(ch.schema, ch.template),
        },
      ]),
    ),
  };
}
