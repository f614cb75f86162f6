// Turning what a caller names (a channel definition, a reference, a string) into a
// concrete channel and its definition.
import type { Channel, ChannelRef } from '../core/channel.ts';
import type { ChannelResolver } from '../core/catalog.ts';
import { ChannelParamError, UnknownChannelError } from '../core/errors.ts';

/** A fixed channel (no parameters) or one concrete channel of a template. */
export type PublishTarget = Channel & { readonly isTemplate: false } | ChannelRef | string;

export interface ConcreteTarget {
  readonly name: string;
  readonly channel: Channel;
}

export function concreteTarget(target: PublishTarget | Channel, resolver: ChannelResolver): ConcreteTarget {
  if (typeof target === 'string') {
    const resolved = resolver.resolve(target);
    if (!resolved) throw new UnknownChannelError(target);
    return { name: target, channel: resolved.channel };
  }
  if (target.kind === 'ref') return { name: target.name, channel: target.channel };
  if (target.isTemplate) {
    const names = target.paramNames as readonly string[];
    throw new ChannelParamError(
      names[0] ?? '',
      `"${target.template}" is a template: publish to one channel of it, e.g. channel.of({ ${names.map((n) => `${n}: '…'`).join(', ')} }).`,
    );
  }
  return { name: target.template, channel: target };
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
