// Rooms: one Redis subscription per symbol (or exposed channel) that at least one client
// watches, whatever the number of clients. A message is encoded once for the room, not
// once per client. A ticker room also holds a lease with the broker, in the gateway's
// name, so that the broker streams the ticker while anyone watches it. A member of a room
// of a symbol-keyed channel (ChannelSpec.keyField) may want some symbols only: such members
// are indexed by symbol, so a message costs work only for the members that want it.
import type { ChannelRef } from '../core/channel.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BrokerRegistration } from '../catalogs/broker.ts';
import type { Logger } from '../core/logger.ts';
import { markSpan, tracingOn } from '../core/tracing.ts';
import { privateTo } from './order-privacy.ts';
import { makeItem, plainItem, type RoomIdentity, type RoomItem } from './room-updates.ts';

/**
 * What a room needs of a member (a session implements it): take an update, say whether it
 * may take the room's shared chunks, and be flushed. Rooms know nothing else of sessions.
 */
export interface RoomMember {
  /** Updates waiting in its own queue (a flush has work when above 0). */
  readonly queued: number;
  /** One live update of a room it is in; true when the member wants a flush. */
  push(room: RoomIdentity, item: RoomItem): boolean;
  /** May it take the room's shared chunk from the next flush on? */
  canShare(room: RoomIdentity): boolean;
  /** Sends its queue and the shared chunks given (`sharedCount` updates in them) as one frame. */
  flush(shared?: readonly string[], sharedCount?: number): void;
  /** Does it act for this browser user (and so see their orders: order-privacy.ts)? */
  actsFor(user: string): boolean;
}

export class Room implements RoomIdentity {
  readonly key: string;
  readonly ref: ChannelRef;
  readonly symbol: string | undefined;
  readonly #members = new Set<RoomMember>();
  /** The members that take every message (no filter): the shared-chunk path is theirs. */
  readonly #unfiltered = new Set<RoomMember>();
  /** The members with a filter, and its symbols. */
  readonly #filters = new Map<RoomMember, ReadonlySet<string>>();
  /** The filtered members by the symbols they want. */
  readonly #bySymbol = new Map<string, Set<RoomMember>>();
  /** The member the room counts against in the room limits: who opened it, or, once they leave, one who stayed. */
  #owner: RoomMember | undefined;
  /**
   * With batching, members in good health take the room's updates of a flush as one shared,
   * pre-joined chunk: per update the gateway does one push, not one per client. The others
   * (resuming, slow) get updates one by one. Who is which changes only between flushes.
   */
  readonly #shared = new Set<RoomMember>();
  /** Updates since the last flush (JSON), for the shared members. */
  #pending: string[] = [];
  /** Where the newest price is in `pending`, for conflation. */
  #pendingPriceAt = -1;
  subscription: Subscription | undefined;
  /** Settles when the Redis subscription is confirmed. */
  ready: Promise<void> = Promise.resolve();

  constructor(key: string, ref: ChannelRef, symbol: string | undefined, owner?: RoomMember) {
    this.key = key;
    this.ref = ref;
    this.symbol = symbol;
    this.#owner = owner;
  }

  get members(): ReadonlySet<RoomMember> {
    return this.#members;
  }

  get owner(): RoomMember | undefined {
    return this.#owner;
  }

  /** The members that take this room's shared chunks at the next flush. */
  get shared(): ReadonlySet<RoomMember> {
    return this.#shared;
  }

  /** The members without a filter. */
  get unfiltered(): ReadonlySet<RoomMember> {
    return this.#unfiltered;
  }

  /** How many members have a filter. */
  get filteredCount(): number {
    return this.#filters.size;
  }

  /** The filtered members that want messages about `value`. */
  wanting(value: string): ReadonlySet<RoomMember> | undefined {
    return this.#bySymbol.get(value);
  }

  /** A member's filter (undefined: everything). */
  filterOf(member: RoomMember): ReadonlySet<string> | undefined {
    return this.#filters.get(member);
  }

  /** Puts a member in. Only RoomRegistry.enter calls it: it also keeps each member's rooms. */
  add(member: RoomMember, filter?: ReadonlySet<string>): void {
    this.#members.add(member);
    this.setFilter(member, filter);
  }

  /** What a member of this room wants: the messages about these symbols only, or (undefined) all. Replaces its filter. */
  setFilter(member: RoomMember, filter: ReadonlySet<string> | undefined): void {
    if (!this.#members.has(member)) return;
    this.#unindex(member);
    if (filter === undefined) {
      this.#unfiltered.add(member);
      return;
    }
    this.#unfiltered.delete(member);
    // A filtered member never takes the shared chunk: that holds every message of the room.
    this.#shared.delete(member);
    this.#filters.set(member, filter);
    for (const value of filter) {
      let set = this.#bySymbol.get(value);
      if (!set) this.#bySymbol.set(value, (set = new Set()));
      set.add(member);
    }
  }

  /** Takes a member out (RoomRegistry.exit only); an owner who leaves hands the room to one who stays. */
  remove(member: RoomMember): void {
    this.#members.delete(member);
    this.#shared.delete(member);
    this.#unindex(member);
    if (this.#owner === member) this.#owner = this.#members.values().next().value;
  }

  #unindex(member: RoomMember): void {
    this.#unfiltered.delete(member);
    const old = this.#filters.get(member);
    if (!old) return;
    this.#filters.delete(member);
    for (const value of old) {
      const set = this.#bySymbol.get(value);
      set?.delete(member);
      if (set?.size === 0) this.#bySymbol.delete(value);
    }
  }

  /**
   * With batching: an update for the shared members' next chunk (none while nobody shares).
   * Returns true when it replaced an older price instead (conflation), for each shared member.
   */
  queueShared(item: RoomItem, conflate: boolean): boolean {
    if (this.#shared.size === 0) return false;
    if (conflate && item.conflateKey !== undefined && this.#pendingPriceAt >= 0) {
      this.#pending[this.#pendingPriceAt] = item.json;
      return true;
    }
    if (item.conflateKey !== undefined) this.#pendingPriceAt = this.#pending.length;
    this.#pending.push(item.json);
    return false;
  }

  /**
   * Takes a member off the shared chunk until the next flush decides again, and returns what
   * the chunk holds so far, for the member's own queue: an update for it alone (a private
   * order) then follows them in order.
   */
  unshare(member: RoomMember): string[] {
    if (!this.#shared.delete(member)) return [];
    return [...this.#pending];
  }

  /** The updates since the last flush as one pre-joined chunk (and how many), or undefined for none; starts the next. */
  takeChunk(): { json: string; count: number } | undefined {
    if (this.#pending.length === 0) return undefined;
    const chunk = { json: this.#pending.join(','), count: this.#pending.length };
    this.#pending = [];
    this.#pendingPriceAt = -1;
    return chunk;
  }

  /** Decides again, between flushes, which members take the shared chunks. */
  reshare(): void {
    for (const member of this.#unfiltered) {
      if (member.canShare(this)) this.#shared.add(member);
      else this.#shared.delete(member);
    }
  }
}

export interface RoomOptions {
  readonly bus: TickBus;
  readonly logger: Logger;
  /** Who the gateway is, for its broker leases. */
  readonly clientId: string;
  readonly leaseTtlSeconds: number;
  /** Called for each member that wants a flush after an update. */
  readonly dirty: (member: RoomMember) => void;
  /** With batching: a room got updates for its shared members since the last flush. */
  readonly dirtyRoom: ((room: Room) => void) | undefined;
  /** Within one flush, keep only the newest price of a symbol. */
  readonly conflate: boolean;
  readonly conflated: (count: number) => void;
  /** Filtered members of a room that a message was not for (counted, not visited). */
  readonly filtered: (count: number) => void;
}

const NO_ROOMS: ReadonlyMap<string, Room> = new Map<string, Room>();

export class RoomRegistry {
  readonly #rooms = new Map<string, Room>();
  /** Each member's rooms by key (this registry's and the job relay's): the one record of who is where. */
  readonly #memberships = new Map<RoomMember, Map<string, Room>>();
  readonly #options: RoomOptions;
  readonly #renewTimer: NodeJS.Timeout;

  constructor(options: RoomOptions) {
    this.#options = options;
    // Renew every lease well before it expires; a gateway that dies lets them lapse.
    const renewMs = Math.max(GATEWAY_DEFAULTS.leaseRenewMinMs, (options.leaseTtlSeconds * 1000) / GATEWAY_DEFAULTS.leaseRenewalsPerTtl);
    this.#renewTimer = setInterval(() => options.bus.context.background.run('gateway_lease_renewal', () => this.#renewAll()), renewMs);
    this.#renewTimer.unref();
  }

  get size(): number {
    return this.#rooms.size;
  }

  get(key: string): Room | undefined {
    return this.#rooms.get(key);
  }

  /** The rooms fed by one Redis channel (usually one; none when nobody watches it). */
  onChannel(name: string): Room[] {
    return [...this.#rooms.values()].filter((room) => room.ref.name === name);
  }

  /** The rooms a member is in, by key. A snapshot for that moment: ask again after an await. */
  roomsOf(member: RoomMember): ReadonlyMap<string, Room> {
    return this.#memberships.get(member) ?? NO_ROOMS;
  }

  /** How many of its rooms count against a member in the room limits (it owns them). */
  ownedBy(member: RoomMember): number {
    let n = 0;
    for (const room of this.roomsOf(member).values()) if (room.owner === member) n++;
    return n;
  }

  /** Puts a member in a room (with a filter: the messages about those symbols only): the room's members and the member's rooms, together. */
  enter(member: RoomMember, room: Room, filter?: ReadonlySet<string>): void {
    room.add(member, filter);
    let mine = this.#memberships.get(member);
    if (!mine) this.#memberships.set(member, (mine = new Map<string, Room>()));
    mine.set(room.key, room);
  }

  /** Takes a member out of a room, on both sides; nothing happens to the room itself. */
  exit(member: RoomMember, room: Room): void {
    room.remove(member);
    const mine = this.#memberships.get(member);
    mine?.delete(room.key);
    if (mine?.size === 0) this.#memberships.delete(member);
  }

  /**
   * Puts a member in a room, making the room (and its subscription and lease) if needed.
   * `onEnter` runs before the first update can reach the member (to hold them).
   */
  async join(member: RoomMember, key: string, ref: ChannelRef, symbol: string | undefined, onEnter?: (room: Room) => void, filter?: ReadonlySet<string>): Promise<Room> {
    let room = this.#rooms.get(key);
    if (!room) {
      const made = new Room(key, ref, symbol, member);
      room = made;
      this.#rooms.set(key, made);
      made.ready = this.#open(made).catch((error: unknown) => {
        this.#rooms.delete(key);
        throw error;
      });
    }
    onEnter?.(room);
    this.enter(member, room, filter);
    try {
      await room.ready;
    } catch (error) {
      this.exit(member, room);
      throw error;
    }
    return room;
  }

  /** Takes a member out of a room; the last one out closes it. */
  async leave(member: RoomMember, room: Room): Promise<void> {
    this.exit(member, room);
    if (room.members.size > 0 || this.#rooms.get(room.key) !== room) return;
    this.#rooms.delete(room.key);
    await room.ready.catch(() => undefined);
    await room.subscription?.unsubscribe();
    if (room.symbol !== undefined) await this.#lease(room.symbol, 'unsubscribe');
  }

  async close(): Promise<void> {
    clearInterval(this.#renewTimer);
    const rooms = [...this.#rooms.values()];
    this.#rooms.clear();
    await Promise.all(
      rooms.map(async (room) => {
        await room.ready.catch(() => undefined);
        await room.subscription?.unsubscribe().catch(() => undefined);
        if (room.symbol !== undefined) await this.#lease(room.symbol, 'unsubscribe');
      }),
    );
  }

  async #open(room: Room): Promise<void> {
    const { dirtyRoom, dirty, conflate, conflated, filtered } = this.#options;
    const keyField = room.ref.channel.keyField;
    room.subscription = await this.#options.bus.subscribe(room.ref, (data, ctx) => {
      if (room.members.size === 0) return;
      // With tracing on: the moment the update is handed to the room's clients, in the publisher's trace.
      if (tracingOn()) markSpan(`deliver ${room.ref.channel.template}`, { 'tickbus.room': room.key, 'tickbus.members': room.members.size, ...(ctx.position === undefined ? {} : { 'tickbus.position': ctx.position }) });
      const item = makeItem(room, data, ctx.position);
      const owner = privateTo(data);
      if (owner !== undefined) {
        this.#private(room, item, owner, keyField === undefined ? undefined : (data as Record<string, unknown>)[keyField]);
        return;
      }
      if (keyField !== undefined && room.filteredCount > 0) {
        // Only the members that asked for this symbol are visited; the others are counted.
        const value = (data as Record<string, unknown> | null)?.[keyField];
        const wanting = typeof value === 'string' ? room.wanting(value) : undefined;
        if (wanting) for (const member of wanting) if (member.push(room, item)) dirty(member);
        const missed = room.filteredCount - (wanting?.size ?? 0);
        if (missed > 0) filtered(missed);
      }
      const everything = room.unfiltered;
      if (everything.size === 0) return;
      if (dirtyRoom) {
        if (room.queueShared(item, conflate)) conflated(room.shared.size);
        // Also with no one sharing yet: the flush decides again who may.
        dirtyRoom(room);
      }
      if (room.shared.size === everything.size) return;
      for (const member of everything) if (!room.shared.has(member) && member.push(room, item)) dirty(member);
    });
    if (room.symbol !== undefined) await this.#lease(room.symbol, 'subscribe');
  }

  /** An update for one browser user's connections only (order-privacy.ts), in order after what they were sent before. */
  #private(room: Room, item: RoomItem, owner: string, value: unknown): void {
    const { dirty } = this.#options;
    for (const member of room.members) {
      if (!member.actsFor(owner)) continue;
      const filter = room.filterOf(member);
      if (filter !== undefined && !(typeof value === 'string' && filter.has(value))) continue;
      for (const json of room.unshare(member)) member.push(room, plainItem(json));
      member.push(room, item);
      dirty(member); // a no-op for a member with nothing queued (sent at once, or held)
    }
  }

  async #lease(symbol: string, action: 'subscribe' | 'unsubscribe'): Promise<void> {
    try {
      await this.#options.bus.publish(BrokerRegistration, { action, ticker: symbol, client_id: this.#options.clientId, ...(action === 'subscribe' ? { ttl_seconds: this.#options.leaseTtlSeconds } : {}) });
    } catch (error) {
      // The next renewal tries again; the room works for whatever the broker streams.
      this.#options.bus.context.background.failed('gateway_broker_registration', error, { symbol, action });
    }
  }

  async #renewAll(): Promise<void> {
    for (const room of this.#rooms.values()) if (room.symbol !== undefined) await this.#lease(room.symbol, 'subscribe');
  }
}
