// One handler's subscription, and the order of what reaches it. On a channel with history
// it remembers the last position delivered (to resume from after a reconnection); while a
// resume catches up, live messages wait, and go out after history without duplicates.
// Each handler has its own lanes: one that throws or falls behind is reported, the others go on.
import type { Channel } from '../core/channel.ts';
import type { ChannelResolver } from '../core/catalog.ts';
import { ChannelParamError, HandlerBacklogError, HandlerError, describeValue, preview, type BusError } from '../core/errors.ts';
import { compareStreamIds } from '../core/stream-id.ts';
import { inProcessSpan, tracingOn } from '../core/tracing.ts';
import type { BusContext } from './context.ts';
import { DeliveryLanes } from './delivery-lane.ts';
import type { Delivered } from './inbound.ts';
import type { MessageContext } from './message-context.ts';
import type { SubscriptionKind } from './subscription-table.ts';
import type { ResolvedTarget, SubscriptionTarget } from './targets.ts';

/** Channels whose last position one pattern subscription remembers. */
const MAX_POSITIONS = 10_000;

export interface SubscriptionEntry {
  readonly kind: SubscriptionKind;
  readonly key: string;
  /** The definition named by the caller; undefined for strings (resolved per message). */
  readonly channel: Channel | undefined;
  /** For one concrete channel: its definition and parameters, known at subscribe time. */
  readonly fixed: ResolvedTarget | undefined;
  readonly lanes: DeliveryLanes<Delivered>;
  /** The last position delivered, per concrete channel: kept for channels with history, to resume after a reconnection. */
  readonly positions: Map<string, string> | undefined;
  /** While a resume catches up: live messages wait here, then go out after history, without duplicates. */
  held: Delivered[] | undefined;
  /**
   * After a catch-up, per channel: the last position replayed. A live copy at or before it
   * is one already delivered from history; the first newer one ends the check (pub/sub is
   * in order), so outside a catch-up no live message is ever compared.
   */
  dedupe?: Map<string, string>;
}

/**
 * One handler's entry. `holdForResume`: live messages wait (a resume is about to read
 * history); `report` hears a handler that failed or fell behind.
 */
export function createEntry(ctx: BusContext, target: SubscriptionTarget, handler: (data: unknown, context: MessageContext) => unknown, holdForResume: boolean, report: (error: BusError) => void): SubscriptionEntry {
  const { metrics, limits } = ctx;
  const template = target.channel?.template;
  const failed = (error: unknown, channel: string): void => {
    metrics.handlerFailed.labels(template ?? 'unknown').inc();
    const message = describeValue(error);
    report(new HandlerError(`Handler for "${preview(channel)}" failed: ${message}`, { cause: error, channel }));
  };
  const dropped = (channel: string): void => {
    metrics.handlerDropped.labels(template ?? 'unknown').inc();
    report(new HandlerBacklogError(`Handler for "${preview(channel)}" is ${limits.maxPendingPerChannel} messages behind; dropped the oldest.`, { channel }));
  };
  const history = target.channel?.hasHistory === true;
  // With tracing on, the handler runs in a span that continues the publisher's trace.
  const run = (m: Delivered): unknown => (tracingOn() ? inProcessSpan(template ?? m.context.channel, m.context.channel, m, () => handler(m.data, m.context), m.context.replayed ? { 'tickbus.replayed': true } : undefined) : handler(m.data, m.context));
  return {
    kind: target.kind,
    key: target.key,
    channel: target.channel,
    fixed: target.fixed,
    positions: history ? new Map() : undefined,
    held: history && holdForResume ? [] : undefined,
    lanes: new DeliveryLanes<Delivered>(run, { onError: (error, m) => failed(error, m.context.channel), onDrop: (m) => dropped(m.context.channel) }, limits.maxPendingPerChannel),
  };
}

/** How a message on `channel` is read for this entry; an error when the name is not one of its definition's channels. */
export function resolveFor(entry: SubscriptionEntry, channel: string, resolver: ChannelResolver): ResolvedTarget | BusError {
  if (entry.fixed) return entry.fixed;
  if (entry.channel) {
    const params = entry.channel.parse(channel);
    if (params) return { channel: entry.channel, params };
    // The pattern matched a name the definition does not allow (`TICKER_UPDATES_a b`).
    return new ChannelParamError('channel', `Message on "${preview(channel)}" ignored: the name is not a valid channel of "${entry.channel.template}".`, { channel });
  }
  const found = resolver.resolve(channel);
  return found ? { channel: found.channel, params: found.params } : { channel: undefined, params: {} };
}

/** Into the handler's lane, noting the position for a later resume. */
export function deliver(entry: SubscriptionEntry, d: Delivered): void {
  const position = d.context.position;
  if (entry.positions && position !== undefined) {
    if (entry.positions.size >= MAX_POSITIONS && !entry.positions.has(d.context.channel)) entry.positions.clear();
    entry.positions.set(d.context.channel, position);
  }
  entry.lanes.deliver(d.context.channel, d);
}

/** A live message: held while a resume catches up, else delivered. */
export function arrive(entry: SubscriptionEntry, d: Delivered): void {
  if (entry.held) entry.held.push(d);
  else if (entry.positions) deliverOnce(entry, d);
  else entry.lanes.deliver(d.context.channel, d);
}

/**
 * Delivers a live message unless history already did. The PUBLISH of a message and its
 * stream entry are written together, but they reach us on two connections, read in no
 * set order: a message replayed from history may still arrive live after the resume.
 */
export function deliverOnce(entry: SubscriptionEntry, d: Delivered): void {
  const position = d.context.position;
  const floor = position === undefined ? undefined : entry.dedupe?.get(d.context.channel);
  if (floor !== undefined) {
    if (compareStreamIds(position as string, floor) <= 0) return;
    entry.dedupe?.delete(d.context.channel);
  }
  deliver(entry, d);
}

/** The catch-up is over: what arrived live meanwhile goes out, less what history delivered. */
export function releaseHeld(entry: SubscriptionEntry): void {
  const held = entry.held ?? [];
  entry.held = undefined;
  for (const d of held) deliverOnce(entry, d);
}
