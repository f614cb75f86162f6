// Whether a live message's position can be trusted as a resume point. Positions are resume
// points: handlers keep them, the gateway sends them on, and a subscriber resumes from the
// last one after a reconnection. Anyone who can PUBLISH can write one, and a position ahead
// of everything real would make every later resume find nothing. Redis writes the entry id
// from its clock just before it publishes, so a real position is never much ahead of ours:
// that costs a clock read, and only one that is ahead costs a look at the stream (or
// nothing, when it is so far ahead that no clock explains it).
import { DEFAULTS } from '../core/defaults.ts';
import { BusError, ErrorCode, preview } from '../core/errors.ts';
import { streamIdMs } from '../core/stream-id.ts';
import type { BusContext } from './context.ts';
import type { HistoryReader } from './history-reader.ts';

/** Live positions checked against history at once, at most (a flood of forgeries costs no more). */
const MAX_VERIFYING = 16;

export class PositionGuard {
  readonly #ctx: BusContext;
  readonly #history: HistoryReader;
  readonly #report: (error: BusError) => void;
  readonly #isClosed: () => boolean;
  /** How far ahead of our clock a live position is trusted; grows when Redis's clock proves to run ahead. */
  #trustAheadMs: number = DEFAULTS.positionSkewMs;
  /** Channels whose live position is being checked against history. */
  readonly #verifying = new Set<string>();

  constructor(ctx: BusContext, history: HistoryReader, report: (error: BusError) => void, isClosed: () => boolean) {
    this.#ctx = ctx;
    this.#history = history;
    this.#report = report;
    this.#isClosed = isClosed;
  }

  /** The position, if it can be trusted; else undefined (the message is delivered without it). */
  vouch(position: string, channel: string, template: string): string | undefined {
    const ahead = streamIdMs(position) - Date.now();
    if (ahead <= this.#trustAheadMs) return position;
    if (ahead > DEFAULTS.positionMaxAheadMs) {
      this.#untrusted(channel, template, position, 'ahead_of_clock', ahead);
      return undefined;
    }
    if (this.#verifying.has(channel) || this.#verifying.size >= MAX_VERIFYING) {
      this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
      return undefined;
    }
    this.#verifying.add(channel);
    this.#ctx.background.run('subscriber_verify_position', () => this.#verify(channel, template, position, ahead).finally(() => this.#verifying.delete(channel)));
    return undefined;
  }

  async #verify(channel: string, template: string, position: string, ahead: number): Promise<void> {
    try {
      if (!(await this.#history.holds(channel, position))) return this.#untrusted(channel, template, position, 'not_in_history', ahead);
      // Real: Redis's clock runs ahead of ours. Trust positions that far ahead from now on.
      this.#trustAheadMs = Math.max(this.#trustAheadMs, ahead + DEFAULTS.positionSkewMs);
      this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
      this.#ctx.logger.warn({ channel, aheadMs: ahead }, "Redis's clock runs ahead of this host's: positions up to that far ahead are trusted from now on");
    } catch {
      if (!this.#isClosed()) this.#ctx.metrics.untrustedPositions.labels(template, 'unverified').inc();
    }
  }

  #untrusted(channel: string, template: string, position: string, reason: 'ahead_of_clock' | 'not_in_history', ahead: number): void {
    this.#ctx.metrics.untrustedPositions.labels(template, reason).inc();
    const why = reason === 'ahead_of_clock' ? `${Math.round(ahead / 1000)} s ahead of this host's clock` : 'which its history does not hold';
    this.#report(
      new BusError(
        ErrorCode.UntrustedPosition,
        `A message on "${preview(channel)}" carried position "${preview(position, 44)}", ${why}: it was delivered without it, and no resume point moved to it. Positions are written by Redis as it publishes; look for a process that publishes this channel by hand.`,
        { channel },
      ),
    );
  }
}
