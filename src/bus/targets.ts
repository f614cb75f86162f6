// Turning what a caller names (a channel definition, a reference, a string) into a
// concrete channel and its definition, or into the pattern of a template: one place for
// publish, subscribe, unsubscribe and consume, so that they agree on what a name means.
import type { Channel, ChannelRef } from '../core/channel.ts';
import type { ChannelResolver } from '../core/catalog.ts';
import { ChannelParamError, ConfigError, UnknownChannelError, preview } from '../core/errors.ts';
import type { SubscriptionKind } from './subscription-table.ts';

/** A fixed channel (no parameters) or one concrete channel of a template. */
export type PublishTarget = Channel & { readonly isTemplate: false } | ChannelRef | string;

export interface ConcreteTarget {
  readonly name: string;
  readonly channel: Channel;
}

/** How a message on a concrete channel is read: its definition (none for a name no catalog knows) and parameters. */
export interface ResolvedTarget {
  readonly channel: Channel | undefined;
  readonly params: Readonly<Record<string, string>>;
}

/** What a caller named: one concrete channel (with its definition when a catalog knows it), or a template. */
type Located =
  | { readonly kind: 'concrete'; readonly name: string; readonly channel: Channel | undefined; readonly params: Readonly<Record<string, string>> }
  | { readonly kind: 'template'; readonly channel: Channel };

function locate(target: Channel | ChannelRef | string, resolver: ChannelResolver): Located {
  if (typeof target === 'string') {
    const found = resolver.resolve(target);
    return { kind: 'concrete', name: target, channel: found?.channel, params: found?.params ?? {} };
  }
  if (target.kind === 'ref') return { kind: 'concrete', name: target.name, channel: target.channel, params: target.params };
  if (target.isTemplate) return { kind: 'template', channel: target };
  return { kind: 'concrete', name: target.template, channel: target, params: {} };
}

export function concreteTarget(target: PublishTarget | Channel, resolver: ChannelResolver): ConcreteTarget {
  const at = locate(target, resolver);
  if (at.kind === 'template') {
    const names = at.channel.paramNames as readonly string[];
    throw new ChannelParamError(
      names[0] ?? '',
      `"${at.channel.template}" is a template: publish to one channel of it, e.g. channel.of({ ${names.map((n) => `${n}: '…'`).join(', ')} }).`,
    );
  }
  if (!at.channel) throw new UnknownChannelError(at.name);
  return { name: at.name, channel: at.channel };
}

/** A subscription's target: what Redis subscribes, and what is known of its messages at subscribe time. */
export interface SubscriptionTarget {
  readonly kind: SubscriptionKind;
  /** The Redis channel or pattern. */
  readonly key: string;
  /** The definition named by the caller; undefined for a glob or an unknown name (resolved per message). */
  readonly channel: Channel | undefined;
  /** For one concrete channel a catalog knows: its definition and parameters. */
  readonly fixed: ResolvedTarget | undefined;
}

/**
 * What subscribe() subscribes. A definition with parameters: all its channels, by pattern;
 * a reference: one channel; a string: a channel name, or a glob when `pattern` says so (by
 * default, when it has an unescaped *, ? or [).
 */
export function subscriptionTarget(target: Channel | ChannelRef | string, resolver: ChannelResolver, pattern?: boolean): SubscriptionTarget {
  if (typeof target === 'string') {
    if (target.length === 0) throw new ChannelParamError('channel', 'A channel name cannot be empty.');
    if (pattern ?? isGlob(target)) return { kind: 'pattern', key: target, channel: undefined, fixed: undefined };
  }
  const at = locate(target, resolver);
  if (at.kind === 'template') return { kind: 'pattern', key: at.channel.pattern(), channel: at.channel, fixed: undefined };
  // A catalog channel named by a string is resolved once, so it resumes like a reference.
  return { kind: 'exact', key: at.name, channel: at.channel, fixed: at.channel ? { channel: at.channel, params: at.params } : undefined };
}

/**
 * What unsubscribe() releases. A string is the channel of that name when one is
 * subscribed (`isSubscribed`), else the pattern; no catalog is asked.
 */
export function unsubscribeTarget(target: Channel | ChannelRef | string, isSubscribed: (channel: string) => boolean): { kind: SubscriptionKind; key: string } {
  if (typeof target === 'string') return { kind: isSubscribed(target) ? 'exact' : 'pattern', key: target };
  if (target.kind === 'ref') return { kind: 'exact', key: target.name };
  return target.isTemplate ? { kind: 'pattern', key: target.pattern() } : { kind: 'exact', key: target.template };
}

/** What consume() reads: one concrete channel of a durable definition, and its parameters. */
export function durableTarget(target: Channel | ChannelRef | string, resolver: ChannelResolver): { name: string; channel: Channel; params: Readonly<Record<string, string>> } {
  const at = locate(target, resolver);
  if (at.kind === 'template') throw new ConfigError(`"${at.channel.template}" is a template: consume one channel of it, e.g. channel.of({ … }); each has a stream of its own.`);
  if (!at.channel) throw new ConfigError(`No channel in the catalogs in use is named "${preview(at.name)}".`);
  if (at.channel.delivery !== 'durable') throw new ConfigError(`"${at.name}" is not a durable channel: declare it with durable: true in its catalog (or subscribe() to it).`);
  return { name: at.name, channel: at.channel, params: at.params };
}

/** Does a string name a Redis glob rather than one channel? (An unescaped *, ? or [.) */
export function isGlob(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === '\\') i++;
    else if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

/**
 * On a Redis Cluster, sharded channels travel by SSUBSCRIBE, which takes names only: a
 * pattern over them would silently receive nothing, so it is refused. A glob is refused
 * when its literal start and a sharded family's could name the same channel.
 */
export function refuseShardedPattern(glob: string, channel: Channel | undefined, resolver: ChannelResolver): void {
  const literal = (g: string) => g.slice(0, g.search(/[*?[\\]|$/));
  const start = literal(glob);
  const families = channel ? [channel] : resolver.channels();
  for (const family of families) {
    if (!family.sharded) continue;
    const prefix = literal(family.pattern());
    if (prefix.startsWith(start) || start.startsWith(prefix)) {
      throw new ConfigError(
        `"${preview(glob)}" would match ${family.template}, which travels by sharded pub/sub on this Redis Cluster; patterns cannot see sharded channels. Subscribe to each one by name (e.g. ${family.template.replace(/\{(\w+)\}/g, '…')} via .of({ … })).`,
      );
    }
  }
}
