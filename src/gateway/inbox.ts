// A user's inbox to that user's connections: what the alert router appended to
// `user_messages:<user>` and nobody acknowledged, then what it appends while they are
// connected, on whichever gateway. For one connection: first the user's notice channel
// (`tickbus.inbox.<user>`, one Redis subscription per user per gateway, whatever the number
// of their connections) is subscribed, with its notices held; then the stream is read after
// the client's last id; then the held notices with a greater id go out, and from then on each
// notice as it comes. The router appends and publishes in one script, so notices come in the
// order of the ids: in order, no gap, no duplicate. Inbox frames are sent at once, not batched.
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { InboxNotices, type InboxNotice } from '../catalogs/system.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { userMessagesKey } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import { compareStreamIds } from '../core/stream-id.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { ServerMessage } from './protocol.ts';

/** What the inbox needs of a connection. */
export interface InboxMember {
  readonly closed: boolean;
  send(message: ServerMessage): void;
}

interface Follower {
  /** The last id sent (or the client's `since`): only greater ones go out. */
  last: string | undefined;
  /** Notices held while the stream is read. */
  held: InboxNotice[] | undefined;
}

interface UserInbox {
  readonly followers: Map<InboxMember, Follower>;
  subscription: Promise<Subscription>;
}

export interface InboxRelayOptions {
  readonly bus: TickBus;
  readonly redis: CommandLink;
  readonly logger: Logger;
  /** Entries sent to connections (read back or live). */
  readonly delivered: (count: number) => void;
}

/** The id right after `id` (`<ms>-<seq+1>`): XTRIM MINID keeps it and what follows. */
function nextId(id: string): string {
  const dash = id.indexOf('-');
  return `${id.slice(0, dash)}-${(BigInt(id.slice(dash + 1)) + 1n).toString()}`;
}

export class InboxRelay {
  readonly #options: InboxRelayOptions;
  readonly #users = new Map<string, UserInbox>();
  /** Each member's user (a connection follows one inbox). */
  readonly #memberUser = new Map<InboxMember, string>();

  constructor(options: InboxRelayOptions) {
    this.#options = options;
  }

  /** The user whose inbox a member follows, if any. */
  userOf(member: InboxMember): string | undefined {
    return this.#memberUser.get(member);
  }

  /**
   * Starts sending a user's inbox to a member: entries after `since` (all, without), then live
   * ones. Resolves with how many were read back, once they are sent. Following again (a new
   * `since`) starts over from there.
   */
  async follow(member: InboxMember, user: string, since: string | undefined): Promise<number> {
    const previous = this.#memberUser.get(member);
    if (previous !== undefined && previous !== user) this.leave(member);
    let inbox = this.#users.get(user);
    if (!inbox) {
      const made: UserInbox = { followers: new Map(), subscription: Promise.resolve(undefined as unknown as Subscription) };
      made.subscription = this.#options.bus.subscribe(InboxNotices.of({ user }), (notice) => this.#notice(made, notice));
      made.subscription.catch(() => {
        if (this.#users.get(user) === made) this.#users.delete(user);
      });
      this.#users.set(user, (inbox = made));
    }
    const follower: Follower = { last: since, held: [] };
    inbox.followers.set(member, follower);
    this.#memberUser.set(member, user);
    try {
      await inbox.subscription;
      const sent = await this.#readBack(member, user, follower);
      const held = follower.held ?? [];
      follower.held = undefined;
      for (const notice of held) this.#send(member, follower, notice);
      return sent;
    } catch (error) {
      if (inbox.followers.get(member) === follower) this.leave(member);
      throw error;
    }
  }

  /** Stops sending to a member; the last one of a user unsubscribes its notices. */
  leave(member: InboxMember): void {
    const user = this.#memberUser.get(member);
    if (user === undefined) return;
    this.#memberUser.delete(member);
    const inbox = this.#users.get(user);
    if (!inbox) return;
    inbox.followers.delete(member);
    if (inbox.followers.size > 0) return;
    this.#users.delete(user);
    this.#options.bus.context.background.run('gateway_inbox_unsubscribe', async () => (await inbox.subscription).unsubscribe());
  }

  /** Removes a user's entries up to and including `id` (cumulative). Returns how many were removed. */
  async ack(user: string, id: string): Promise<number> {
    const key = userMessagesKey(user);
    return this.#options.redis.send<number>(['XTRIM', key, 'MINID', nextId(id)], key);
  }

  async close(): Promise<void> {
    const inboxes = [...this.#users.values()];
    this.#users.clear();
    this.#memberUser.clear();
    for (const inbox of inboxes) await (await inbox.subscription.catch(() => undefined))?.unsubscribe().catch(() => undefined);
  }

  /** Sends the stream's entries after the follower's last id, page by page. */
  async #readBack(member: InboxMember, user: string, follower: Follower): Promise<number> {
    const key = userMessagesKey(user);
    let sent = 0;
    for (;;) {
      const start = follower.last === undefined ? '-' : `(${follower.last}`;
      const page = await this.#options.redis.send<Array<[string, string[]]>>(['XRANGE', key, start, '+', 'COUNT', String(GATEWAY_DEFAULTS.inboxReadCount)], key);
      for (const [id, fields] of page) {
        const entry = fieldsOf(fields);
        let data: unknown;
        try {
          data = JSON.parse(entry.data ?? 'null');
        } catch {
          data = entry.data;
        }
        if (member.closed) return sent;
        member.send({ type: 'inbox', id, kind: entry.kind ?? 'alert', data });
        follower.last = id;
        sent++;
      }
      if (page.length > 0) this.#options.delivered(page.length);
      if (page.length < GATEWAY_DEFAULTS.inboxReadCount) return sent;
    }
  }

  #notice(inbox: UserInbox, notice: InboxNotice): void {
    for (const [member, follower] of inbox.followers) {
      if (follower.held) follower.held.push(notice);
      else this.#send(member, follower, notice);
    }
  }

  #send(member: InboxMember, follower: Follower, notice: InboxNotice): void {
    // Read back already (a notice can lag the read), or acknowledged before: not again.
    if (follower.last !== undefined && compareStreamIds(notice.id, follower.last) <= 0) return;
    follower.last = notice.id;
    member.send({ type: 'inbox', id: notice.id, kind: notice.kind, data: notice.data });
    this.#options.delivered(1);
  }
}

/** A stream entry's [field, value, …] as an object. */
function fieldsOf(flat: string[] | Record<string, string>): Record<string, string> {
  if (!Array.isArray(flat)) return flat;
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}
