// What consume() does, for the bus and for a subscription to a durable channel: a consumer
// for the durable channel a caller names, started under an owner that closes it.
import type { Channel, ChannelRef } from '../core/channel.ts';
import { ConfigError } from '../core/errors.ts';
import type { InferOutput, StandardSchemaV1 } from '../core/schema.ts';
import type { BusContext } from './context.ts';
import { Consumer, type ConsumeOptions, type DurableHandler } from './consumer.ts';
import { durableTarget } from './targets.ts';

/** Builds a consumer for a durable channel (a reference, a fixed channel, or a name). */
export function createConsumer<T extends string, S extends StandardSchemaV1>(
  ctx: BusContext,
  target: ChannelRef<T, S> | Channel<T, S> | string,
  handler: DurableHandler<InferOutput<S>, Readonly<Record<string, string>>>,
  options: ConsumeOptions,
): Consumer<InferOutput<S>> {
  const { name, channel: def, params } = durableTarget(target, ctx.resolver);
  const link = ctx.transport.createStreamLink?.();
  if (!link) throw new ConfigError(`"${name}" is a durable channel: it needs Redis Streams, which the ${ctx.transport.kind} transport does not have.`);
  return new Consumer(ctx, link, def, name, params, handler, options);
}

/**
 * Starts a consumer its owner keeps (and closes with itself); one that fails to start is
 * closed and forgotten, and the failure thrown.
 */
export async function startOwned<C extends Consumer<never, never>>(consumer: C, owned: Pick<Set<C>, 'add' | 'delete'>): Promise<C> {
  owned.add(consumer);
  try {
    return await consumer.start();
  } catch (error) {
    owned.delete(consumer);
    await consumer.close();
    throw error;
  }
}
