// Reading a channel's history (its stream): the replay after a position that a resume and
// a catch-up after a reconnection make, history() and latest() for callers that read it
// themselves, and the look-up that checks a live position. Entries are decoded and
// validated like live messages (a bad one is reported and skipped). Over the transport's
// stream link, opened on first use; a transport without streams has no history.
import type { ChannelParams, ChannelRef } from '../core/channel.ts';
import { streamKey } from '../core/keys.ts';
import { BusError, ConfigError, PositionError } from '../core/errors.ts';
import type { InferOutput, StandardSchemaV1 } from '../core/schema.ts';
import { isStreamId } from '../core/stream-id.ts';
import type { StreamEntry, StreamLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';
import { toDelivered, type Delivered, type Inbound, type InboundReader } from './inbound.ts';
import type { MessageContext } from './message-context.ts';
import type { ResolvedTarget } from './targets.ts';

/**
 * What a resume found. `complete`: every message after the position was replayed.
 * `gap`: history does not hold the position, so some messages may be lost. `replayed`
 * says how many it did hold after it and delivered: all it has when the stream never
 * lost an entry (a Redis restarted without persistence holds just what came after), none
 * when it has trimmed past the position (read the last value, `subscriber.latest()` or the
 * broker's cache, instead). `unavailable`: the channel keeps no history, or the transport
 * has none (memory).
 */
export type ResumeResult =
  | { readonly status: 'complete'; readonly channel: string; readonly after: string; readonly replayed: number }
  | { readonly status: 'gap'; readonly channel: string; readonly after: string; readonly oldest: string | undefined; readonly replayed: number }
  | { readonly status: 'unavailable'; readonly channel: string; readonly after: string };

/** A message read from history, typed by its channel. */
export type HistoryMessage<T extends string, S extends StandardSchemaV1> = { data: InferOutput<S>; context: MessageContext<ChannelParams<T>> };

export type HistoryPage<T extends string, S extends StandardSchemaV1> =
  | { status: 'complete'; messages: Array<HistoryMessage<T, S>>; more: boolean }
  | { status: 'gap'; oldest: string | undefined; messages: Array<HistoryMessage<T, S>>; more: boolean }
  | { status: 'unavailable' };

/** Tries at reading history for a resume asked at subscribe time before answering `unavailable`. */
export const CATCH_UP_ATTEMPTS = 5;
/** History entries read per round trip on a resume. */
export const REPLAY_BATCH = 1_000;

/**
 * Reads history after a position. Complete only if the entry at `after` is still there:
 * trimming takes the oldest first, so nothing after it can be gone (or `after` is exactly
 * the newest id XDEL removed). `more` when the read was full.
 *
 * Otherwise a gap, with what history holds after the position unless trimming may have
 * taken some of it: a stream that never lost an entry (entries added = length) holds
 * everything it was ever given, so when the position is not in it (a Redis restarted
 * without persistence, a stream written anew), every entry after the position is one the
 * reader missed and is still there. A stream that has trimmed past the position holds only
 * the newest part of what was missed: nothing is read, and the reader takes the last value.
 */
async function anchoredRead(link: StreamLink, key: string, after: string, count: number): Promise<{ entries: StreamEntry[]; more: boolean; gap: false } | { entries: StreamEntry[]; more: boolean; gap: true; oldest: string | undefined }> {
  const info = await link.info(key);
  if (!info) return { gap: true, oldest: undefined, entries: [], more: false };
  // One more than asked: the anchor itself comes first.
  const read = await link.range(key, after, count + 1, false);
  const anchored = read[0]?.id === after;
  if (anchored || info.maxDeletedId === after) {
    const entries = anchored ? read.slice(1) : read;
    return { entries: entries.slice(0, count), more: read.length === count + 1, gap: false };
  }
  const lostNone = info.entriesAdded > 0 && info.entriesAdded === info.length;
  if (!lostNone) return { gap: true, oldest: info.firstId, entries: [], more: false };
  return { gap: true, oldest: info.firstId, entries: read.slice(0, count), more: read.length > count };
}

export class HistoryReader {
  readonly #ctx: BusContext;
  readonly #inbound: InboundReader;
  #streams: Promise<StreamLink | undefined> | undefined;

  constructor(ctx: BusContext, inbound: InboundReader) {
    this.#ctx = ctx;
    this.#inbound = inbound;
  }

  /**
   * Replays what a channel's history holds after `after`, each message (decoded, validated,
   * `replayed`) to `deliver` in order. `cursor`: the last entry read, which a live copy of
   * a replayed message will not be newer than.
   */
  async replay(channel: string, after: string, target: ResolvedTarget, pattern: string | undefined, deliver: (d: Delivered) => void): Promise<{ result: ResumeResult; cursor: string }> {
    const link = await this.#streamLink();
    if (!link) return { result: { status: 'unavailable', channel, after }, cursor: after };
    const key = streamKey(channel);
    const first = await anchoredRead(link, key, after, REPLAY_BATCH);
    let { entries: batch, more } = first;
    let replayed = 0;
    let cursor = after;
    for (;;) {
      for (const e of batch) {
        cursor = e.id;
        if (e.payload === undefined) continue;
        let d = this.#decode(target, channel, pattern, e, true);
        if (d instanceof Promise) d = await d;
        if (d instanceof BusError) continue; // reported
        deliver(d);
        replayed++;
      }
      if (!more) break;
      batch = await link.range(key, cursor, REPLAY_BATCH, true);
      more = batch.length === REPLAY_BATCH;
    }
    this.#ctx.metrics.replayed.labels(target.channel?.template ?? 'unknown').inc(replayed);
    if (first.gap) return { result: { status: 'gap', channel, after, oldest: first.oldest, replayed }, cursor };
    return { result: { status: 'complete', channel, after, replayed }, cursor };
  }

  /** See Subscriber.history. */
  async history<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>, after: string, limit: number = REPLAY_BATCH): Promise<HistoryPage<T, S>> {
    if (typeof after !== 'string' || !isStreamId(after)) throw new PositionError('history(): after', after);
    if (!target.channel.hasHistory) return { status: 'unavailable' };
    const link = await this.#streamLink();
    if (!link) return { status: 'unavailable' };
    const read = await anchoredRead(link, streamKey(target.name), after, limit);
    const messages: Array<HistoryMessage<T, S>> = [];
    for (const e of read.entries) {
      if (e.payload === undefined) continue;
      let d = this.#decode({ channel: target.channel, params: target.params }, target.name, undefined, e, true);
      if (d instanceof Promise) d = await d;
      if (!(d instanceof BusError)) messages.push(d as unknown as HistoryMessage<T, S>);
    }
    if (read.gap) return { status: 'gap', oldest: read.oldest, messages, more: read.more };
    return { status: 'complete', messages, more: read.more };
  }

  /** See Subscriber.latest. */
  async latest<T extends string, S extends StandardSchemaV1>(target: ChannelRef<T, S>): Promise<HistoryMessage<T, S> | undefined> {
    if (!target.channel.hasHistory) throw new ConfigError(`"${target.name}" keeps no history: declare history in its catalog to read its last value.`);
    const link = await this.#streamLink();
    if (!link) return undefined;
    const entry = await link.latest(streamKey(target.name));
    if (!entry || entry.payload === undefined) return undefined;
    let result = this.#decode({ channel: target.channel, params: target.params }, target.name, undefined, entry, false);
    if (result instanceof Promise) result = await result;
    if (result instanceof BusError) throw result;
    return result as unknown as HistoryMessage<T, S>;
  }

  /** Does the channel's history hold an entry at exactly this position? False without streams. */
  async holds(channel: string, position: string): Promise<boolean> {
    const link = await this.#streamLink();
    const found = link ? await link.range(streamKey(channel), position, 1, false) : [];
    return found[0]?.id === position;
  }

  /** Releases the stream link. */
  async close(): Promise<void> {
    await this.#streams?.then((l) => l?.close()).catch(() => undefined);
  }

  /** An entry's message: its position is the entry id (the payload of one in history carries none). Synchronous unless the schema is. */
  #decode(target: ResolvedTarget, channel: string, pattern: string | undefined, entry: StreamEntry, replayed: boolean): Delivered | BusError | Promise<Delivered | BusError> {
    const make = (a: Inbound): Delivered | BusError => (a instanceof BusError ? a : toDelivered(this.#ctx.metrics, a, target, channel, pattern, entry.id, replayed));
    const accepted = this.#inbound.read(entry.payload as string, channel, target.channel);
    return accepted instanceof Promise ? accepted.then(make) : make(accepted);
  }

  /** The stream link, opened on first use; undefined when the transport has no streams. */
  #streamLink(): Promise<StreamLink | undefined> {
    this.#streams ??= (async () => {
      const link = this.#ctx.transport.createStreamLink?.();
      if (!link) return undefined;
      link.on('error', () => undefined); // failures surface on the calls themselves
      await link.connect();
      return link;
    })().catch((error: unknown) => {
      this.#streams = undefined;
      throw error;
    });
    return this.#streams;
  }
}
