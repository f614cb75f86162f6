// Sending with batching: each member's own queued updates and the shared chunks of its rooms
// go out together in one frame per flush, every batch interval. With batching off only a
// conflating (slow) client queues, and it is flushed on the next turn of the event loop.
import type { Room, RoomMember } from './rooms.ts';

export class Flusher {
  readonly #batchMs: number;
  readonly #roomsOf: (member: RoomMember) => ReadonlyMap<string, Room>;
  readonly #dirty = new Set<RoomMember>();
  readonly #dirtyRooms = new Set<Room>();
  /** Rooms joined since the last flush: their members may start sharing at the next one. */
  readonly #joined = new Set<Room>();
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;

  /** `roomsOf`: the rooms a member is in (the room registry's record). */
  constructor(batchMs: number, roomsOf: (member: RoomMember) => ReadonlyMap<string, Room>) {
    this.#batchMs = batchMs;
    this.#roomsOf = roomsOf;
  }

  /** Flushes every batch interval from now on (nothing to start with batching off). */
  start(): void {
    if (this.#batchMs === 0) return;
    this.#timer = setInterval(() => this.flush(), this.#batchMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** A member queued updates: it is flushed next time. */
  markDirty(member: RoomMember): void {
    if (member.queued === 0) return;
    this.#dirty.add(member);
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
