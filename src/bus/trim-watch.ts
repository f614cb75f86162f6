// Messages trimmed from a durable channel's stream before a consumer group read them are
// skipped by Redis without a word. Say so, once per loss: of the entries ever appended,
// those no longer in the stream number more than those the group has read.
import type { Channel } from '../core/channel.ts';
import { BusError, ErrorCode, preview } from '../core/errors.ts';
import type { StreamLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';

export class TrimWatch {
  readonly #ctx: BusContext;
  readonly #link: StreamLink;
  readonly #key: string;
  readonly #channel: string;
  readonly #def: Channel;
  readonly #group: string;
  readonly #report: (error: BusError) => void;
  /** Messages already reported lost to trimming, so that one loss is reported once. */
  #reported = 0;

  constructor(ctx: BusContext, link: StreamLink, key: string, channel: string, def: Channel, group: string, report: (error: BusError) => void) {
    this.#ctx = ctx;
    this.#link = link;
    this.#key = key;
    this.#channel = channel;
    this.#def = def;
    this.#group = group;
    this.#report = report;
    if (def.retention?.maxLen !== undefined) ctx.metrics.streamMaxLength.labels(def.template).set(def.retention.maxLen);
  }

  /** The group was just created: what was trimmed before it existed was never its to read. */
  async groupCreated(): Promise<void> {
    const info = await this.#link.info(this.#key);
    this.#reported = info ? info.entriesAdded - info.length : 0;
  }

  async check(): Promise<void> {
    const [info, group] = await Promise.all([this.#link.info(this.#key), this.#link.groupPosition(this.#key, this.#group)]);
    if (!info || !group) return;
    // A group that never read has read nothing; otherwise Redis may not know (then: no verdict).
    // (A group another process created on an already-trimmed stream, that has not read yet,
    // is reported too: a warning that errs on the side of saying.)
    const read = group.entriesRead ?? (group.lastDeliveredId === '0-0' ? 0 : undefined);
    if (read === undefined) return;
    this.#ctx.metrics.groupLag.labels(this.#def.template, this.#group).set(Math.max(0, info.entriesAdded - read));
    const lost = info.entriesAdded - info.length - read;
    if (lost <= this.#reported) return;
    this.#ctx.metrics.durable.labels(this.#def.template, this.#group, 'trimmed_unread').inc(lost - this.#reported);
    this.#reported = lost;
    this.#report(
      new BusError(
        ErrorCode.StreamTrimmed,
        `Group "${this.#group}" fell behind on "${preview(this.#channel)}": ${lost} message(s) were trimmed (retention ${this.#def.retention?.maxLen ?? '-'} messages / ${this.#def.retention?.maxAgeMs ?? '-'} ms) before it read them. Raise the channel's retention, or add consumers.`,
        { channel: this.#channel },
      ),
    );
  }
}
