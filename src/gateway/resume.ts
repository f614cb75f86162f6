// Resuming a client that comes back with its last position in a room: what it missed, from
// the channel's history when that still holds it, else a snapshot of the last value (the
// broker's last-value cache for a symbol, or the stream's newest entry). Live updates are
// held while this goes out, and the ones history already covered are not sent twice.
import { compareStreamIds } from '../core/stream-id.ts';
import type { Logger } from '../core/logger.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import type { RequestId } from './requests.ts';
import { visibleTo } from './order-privacy.ts';
import { updateJson } from './room-updates.ts';
import type { Room } from './rooms.ts';
import type { Session } from './session.ts';

export type ResumeResult = 'replayed' | 'snapshot' | 'live';

export interface ResumeOptions {
  readonly bus: TickBus;
  readonly logger: Logger;
  /** The last price of a symbol (the broker's last-value cache), for snapshots. */
  readonly lastValue: ((symbol: string) => Promise<unknown>) | undefined;
  /** Messages read from history per resume at most; a bigger gap gets a snapshot. */
  readonly maxReplay: number;
  /** How a subscription was answered (for the metrics). */
  readonly resumed: (result: ResumeResult) => void;
  /** The session is caught up in the room: its live updates flow again. */
  readonly caughtUp: (session: Session, room: Room) => void;
}

export class Resumer {
  readonly #options: ResumeOptions;

  constructor(options: ResumeOptions) {
    this.#options = options;
  }

  /**
   * History after the client's position if it holds what came after it, else a snapshot of
   * the last value. The room is joined by now: whatever fails here, the client is told it is
   * subscribed (with `gap` when its position could not be honoured), never an error.
   */
  async catchUp(session: Session, room: Room, after: string | undefined, id: RequestId | undefined): Promise<void> {
    const { bus, logger, maxReplay, resumed } = this.#options;
    let lastSent: string | undefined;
    const reply = (resume: ResumeResult, extra: { replayed?: number; gap?: true } = {}) =>
      session.send({ type: 'subscribed', key: room.key, channel: room.ref.name, resume, ...extra, ...(id === undefined ? {} : { id }) });
    try {
      let gap = false;
      if (after !== undefined && room.ref.channel.hasHistory) {
        const read = await bus.subscriber.history(room.ref, after, maxReplay);
        gap = read.status === 'gap';
        // A gap still replays what history holds after the position, when that is all the
        // stream ever had after it (a Redis restarted without persistence): it is exactly
        // what the client missed. With nothing to replay, the last value stands in.
        if (read.status !== 'unavailable' && !read.more && (read.status === 'complete' || read.messages.length > 0)) {
          // Other browser users' orders stay theirs (order-privacy.ts); the position still moves past them.
          session.sendReplay(read.messages.filter((m) => visibleTo(session, m.data)).map((m) => updateJson(room, m.data, m.context.position, true)));
          lastSent = read.messages.at(-1)?.context.position ?? after;
          resumed('replayed');
          reply('replayed', { replayed: read.messages.length, ...(gap ? { gap: true as const } : {}) });
          return;
        }
      }
      const snapshot = await this.#snapshot(room, session);
      if (snapshot) {
        session.send({ type: 'snapshot', key: room.key, channel: room.ref.name, ...(snapshot.position ? { position: snapshot.position } : {}), data: snapshot.data });
        lastSent = snapshot.position;
      }
      resumed(snapshot ? 'snapshot' : 'live');
      reply(snapshot ? 'snapshot' : 'live', gap ? { gap: true } : {});
    } catch (error) {
      logger.warn({ err: error, session: session.id, key: room.key }, 'gateway: resume failed; the client goes on live');
      resumed('live');
      reply('live', after === undefined ? {} : { gap: true });
    } finally {
      session.release(room, lastSent, (p, than) => compareStreamIds(p, than) > 0);
      this.#options.caughtUp(session, room);
    }
  }

  async #snapshot(room: Room, session: Session): Promise<{ data: unknown; position: string | undefined } | undefined> {
    const { bus, lastValue } = this.#options;
    if (room.symbol !== undefined && lastValue) {
      const price = await lastValue(room.symbol);
      if (price !== undefined) return { data: price, position: undefined };
    }
    if (!room.ref.channel.hasHistory) return undefined;
    const latest = await bus.subscriber.latest(room.ref);
    return latest && visibleTo(session, latest.data) ? { data: latest.data, position: latest.context.position } : undefined;
  }
}
