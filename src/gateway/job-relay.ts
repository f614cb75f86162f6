// Job progress to its owner only (seed 003's `user_{id}` rooms). The gateway subscribes once
// to the backtest progress and results channels; each message is forwarded to the sessions
// of the user who owns the job (looked up in the job's record, then cached), and to no one
// else. Messages are handled one after the other, so a job's updates keep their order.
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BacktestProgress, BacktestResults } from '../catalogs/tickstock.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import type { Logger } from '../core/logger.ts';
import { makeItem } from './room-updates.ts';
import { Room, type RoomMember, type RoomRegistry } from './rooms.ts';

/** Who is in which room is recorded by the room registry, for user rooms too. */
type Membership = Pick<RoomRegistry, 'enter' | 'exit'>;

export class JobRelay {
  readonly #bus: TickBus;
  readonly #ownerOf: (jobId: string) => Promise<string | undefined>;
  readonly #logger: Logger;
  readonly #membership: Membership;
  readonly #dirty: (member: RoomMember) => void;
  readonly #users = new Map<string, Room>();
  readonly #owners = new Map<string, string>();
  #subscriptions: Promise<Subscription[]> | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(bus: TickBus, ownerOf: (jobId: string) => Promise<string | undefined>, logger: Logger, membership: Membership, dirty: (member: RoomMember) => void) {
    this.#bus = bus;
    this.#ownerOf = ownerOf;
    this.#logger = logger;
    this.#membership = membership;
    this.#dirty = dirty;
  }

  static roomKey(userId: string): string {
    return `user_${userId}`;
  }

  /** Puts a session in its user's room; the first one anywhere subscribes the job channels. */
  async join(session: RoomMember, userId: string): Promise<Room> {
    const key = JobRelay.roomKey(userId);
    let room = this.#users.get(userId);
    if (!room) {
      room = new Room(key, BacktestProgress.of(), undefined);
      this.#users.set(userId, room);
    }
    this.#membership.enter(session, room);
    this.#subscriptions ??= Promise.all([
      this.#bus.subscribe(BacktestProgress, (data) => this.#enqueue(data.job_id, data, BacktestProgress.template)),
      this.#bus.subscribe(BacktestResults, (data) => this.#enqueue(data.job_id, data, BacktestResults.template)),
    ]);
    await this.#subscriptions;
    return room;
  }

  leave(session: RoomMember, room: Room): void {
    this.#membership.exit(session, room);
    for (const [user, r] of this.#users) if (r === room && r.members.size === 0) this.#users.delete(user);
  }

  /** A user room's key, or undefined for other rooms. */
  static isJobRoom(room: Room): boolean {
    return room.key.startsWith('user_') && room.ref.name === BacktestProgress.template;
  }

  async close(): Promise<void> {
    const subs = await this.#subscriptions?.catch(() => []);
    for (const s of subs ?? []) await s.unsubscribe().catch(() => undefined);
  }

  #enqueue(jobId: string, data: unknown, channel: string): void {
    this.#chain = this.#chain.then(() => this.#forward(jobId, data, channel)).catch((error: unknown) => this.#logger.warn({ err: error, job: jobId }, 'gateway: job update not forwarded'));
  }

  async #forward(jobId: string, data: unknown, channel: string): Promise<void> {
    if (this.#users.size === 0) return;
    let owner = this.#owners.get(jobId);
    if (owner === undefined) {
      owner = await this.#ownerOf(jobId);
      if (owner === undefined) return; // no record: nobody's to see
      if (this.#owners.size >= GATEWAY_DEFAULTS.jobOwnerCacheSize) this.#owners.clear();
      this.#owners.set(jobId, owner);
    }
    const room = this.#users.get(owner);
    if (!room) return;
    const item = makeItem(room, data, undefined, channel);
    for (const session of room.members) if (session.push(room, item)) this.#dirty(session);
  }
}
