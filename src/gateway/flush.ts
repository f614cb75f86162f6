// Sending with batching: each member's own queued updates and the shared chunks of its rooms
// go out together in one frame per flush. Two ways to time flushes:
// - adaptive (the default): a flush goes out on the next turn of the event loop after the
//   first update since the last one, so a quiet gateway adds no delay; the next flush waits
//   until the flushes have cost at most `flushBudget` of the time (their CPU time, smoothed:
//   wall time would count the turns another process had the core, and a busy machine would
//   push every gap to the cap), and never longer than `batchMs`. Light load: updates leave
//   within a turn; heavy load: they coalesce into fewer, larger frames, each update waiting
//   at most the batch window.
// - interval: every `batchMs`, whatever the load.
// With batching off only a conflating (slow) client queues, and it is flushed on the next turn.
import { performance } from 'node:perf_hooks';
import type { Room, RoomMember } from './rooms.ts';

/** How a batching gateway times its flushes (see above). */
export type BatchTiming = 'adaptive' | 'interval';

export interface FlusherOptions {
  /** 0: batching off. Adaptive: the longest a busy client's update waits. Interval: the period. */
  readonly batchMs: number;
  readonly timing: BatchTiming;
  /** Adaptive: the share of the time flushes may take (0 to 1). */
  readonly flushBudget: number;
}

/** Weight of the newest flush in the smoothed flush cost (one slow flush, a GC pause say, moves it only so far). */
const COST_SMOOTHING = 0.3;

export class Flusher {
  readonly #batchMs: number;
  readonly #adaptive: boolean;
  readonly #flushBudget: number;
  readonly #roomsOf: (member: RoomMember) => ReadonlyMap<string, Room>;
  readonly #dirty = new Set<RoomMember>();
  readonly #dirtyRooms = new Set<Room>();
  /** Rooms joined since the last flush: their members may start sharing at the next one. */
  readonly #joined = new Set<Room>();
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;
  #stopped = false;
  /** Adaptive: when the last flush ended, and the smoothed cost of a flush (ms of CPU). */
  #lastFlushEnd = 0;
  #flushCostMs = 0;

  /** `roomsOf`: the rooms a member is in (the room registry's record). */
  constructor(options: FlusherOptions, roomsOf: (member: RoomMember) => ReadonlyMap<string, Room>) {
    this.#batchMs = options.batchMs;
    this.#adaptive = options.batchMs > 0 && options.timing === 'adaptive';
    this.#flushBudget = options.flushBudget;
    this.#roomsOf = roomsOf;
  }

  /** Interval timing: flushes every batch interval from now on (adaptive timing and batching off flush on demand). */
  start(): void {
    if (this.#batchMs === 0 || this.#adaptive) return;
    this.#timer = setInterval(() => this.flush(), this.#batchMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#timer);
  }

  /** Adaptive timing: how long the next flush waits after the last, in ms (read by the spec). */
  get adaptiveGapMs(): number {
    return Math.min(this.#batchMs, (this.#flushCostMs * (1 - this.#flushBudget)) / this.#flushBudget);
  }

  /** Adaptive timing: a flush is wanted; it goes on the next turn, or once the gap since the last has passed. */
  #request(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    const wait = this.#lastFlushEnd + this.adaptiveGapMs - performance.now();
    if (wait <= 0) setImmediate(this.#run);
    else this.#timer = setTimeout(this.#run, Math.ceil(wait));
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    if (this.#stopped) return;
    const cpu = process.cpuUsage();
    this.flush();
    const spent = process.cpuUsage(cpu);
    this.#lastFlushEnd = performance.now();
    this.#flushCostMs += COST_SMOOTHING * ((spent.user + spent.system) / 1000 - this.#flushCostMs);
  };

  /** A member queued updates: it is flushed next time. */
  markDirty(member: RoomMember): void {
    if (member.queued === 0) return;
    this.#dirty.add(member);
    if (this.#adaptive) return this.#request();
    // With batching off, only a conflating (slow) client queues: flush it on the next turn.
    if (this.#batchMs === 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** With batching: a room got updates for its shared members. */
  roomDirty(room: Room): void {
    this.#dirtyRooms.add(room);
    if (this.#adaptive) this.#request();
  }

  /** A member has caught up in a room it joined (resumed): it may share the room's chunks from the next flush on. */
  caughtUp(member: RoomMember, room: Room): void {
    this.markDirty(member);
    if (this.#batchMs > 0) this.#joined.add(room);
  }

  /** A member is gone: nothing more is flushed to it. */
  forget(member: RoomMember): void {
    this.#dirty.delete(member);
  }

  /**
   * One flush: each room's updates since the last are joined once into a chunk; each client
   * gets its own queued updates and the chunks of the rooms it shares, in one frame. Then who
   * shares which room is decided again for the next flush (never in between: a client never
   * gets an update both ways, nor misses one).
   */
  flush(): void {
    const chunks = new Map<Room, { json: string; count: number }>();
    const targets = new Set(this.#dirty);
    const rooms = new Set([...this.#dirtyRooms, ...this.#joined]);
    for (const room of this.#dirtyRooms) {
      const chunk = room.takeChunk();
      if (!chunk) continue;
      chunks.set(room, chunk);
      for (const member of room.shared) targets.add(member);
    }
    for (const member of targets) {
      let parts: string[] | undefined;
      let count = 0;
      for (const room of this.#roomsOf(member).values()) {
        const chunk = chunks.get(room);
        if (chunk && room.shared.has(member)) {
          (parts ??= []).push(chunk.json);
          count += chunk.count;
        }
      }
      member.flush(parts, count);
    }
    this.#dirty.clear();
    this.#dirtyRooms.clear();
    if (this.#batchMs === 0) return;
    for (const room of rooms) room.reshare();
    this.#joined.clear();
  }
}
