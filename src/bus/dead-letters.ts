// Moving a durable message to its channel's dead-letter stream, in one atomic step with
// its acknowledgement (the link's script), with why it failed: counted and logged. Dead
// letters of bad input (garbage in the stream) are logged a few a second; those of failed
// handlers, each.
import type { Channel } from '../core/channel.ts';
import { deadLetterKey, streamKey } from '../core/keys.ts';
import type { BusError } from '../core/errors.ts';
import { isInputError, LogThrottle } from '../core/logger.ts';
import type { StreamEntry, StreamLink } from '../transports/transport.ts';
import type { BusContext } from './context.ts';

export interface DeadLetter {
  readonly channel: string;
  readonly position: string;
  readonly attempts: number;
  readonly error: BusError;
  /** The message as it was on the stream (undefined when it had no payload field). */
  readonly payload: string | undefined;
}

/** Where one consumer's messages go when they cannot be handled. */
export interface DeadLetterTarget {
  readonly channel: string;
  readonly def: Channel;
  readonly group: string;
  readonly consumer: string;
  readonly maxLen: number;
}

export class DeadLetterWriter {
  readonly #ctx: BusContext;
  readonly #link: StreamLink;
  readonly #to: DeadLetterTarget;
  readonly #key: string;
  readonly #deadKey: string;
  readonly #badInputLog = new LogThrottle();

  constructor(ctx: BusContext, link: StreamLink, to: DeadLetterTarget) {
    this.#ctx = ctx;
    this.#link = link;
    this.#to = to;
    this.#key = streamKey(to.channel);
    this.#deadKey = deadLetterKey(to.channel);
  }

  async write(entry: StreamEntry, attempts: number, error: BusError): Promise<DeadLetter> {
    const { channel, group, consumer } = this.#to;
    await this.#link.deadLetter(this.#key, group, entry.id, this.#deadKey, {
      payload: entry.payload ?? '',
      channel,
      position: entry.id,
      group,
      consumer,
      attempts: String(attempts),
      code: error.code,
      error: error.message,
      failed_at: new Date().toISOString(),
    }, this.#to.maxLen);
    this.#ctx.metrics.durable.labels(this.#to.def.template, group, 'dead_lettered').inc();
    const suppressed = isInputError(error) ? this.#badInputLog.take() : 0;
    // The error names the channel (err.channel): once per line is enough.
    if (suppressed >= 0) this.#ctx.logger.error({ ...(error.channel === undefined ? { channel } : {}), group, position: entry.id, attempts, err: error, ...(suppressed > 0 ? { suppressed } : {}) }, 'message moved to the dead-letter stream');
    return { channel, position: entry.id, attempts, error, payload: entry.payload };
  }
}
