// The alert router: every gateway runs one, and each pattern event (tickstock.events.patterns)
// and backtest result (tickstock.events.backtesting.results) goes into the inboxes of the
// users it is for once, however many gateways hear it. The gateway whose claim
// (`SET tickbus:alert-claim:{<digest>} NX EX 3600`, the digest a hash of the event) succeeds
// appends it to each user's stream `user_messages:<user>` (seed 003's offline queue: MAXLEN ~,
// 7-day expiry) and publishes a notice with the entry id on `tickbus.inbox.<user>`, all in one
// Lua script per event: claim, XADD, EXPIRE and PUBLISH for every matching user, so a crash
// cannot leave an event claimed but half routed, and notices go out in the order of the ids.
// Whether the user is online does not matter: the inbox holds what was not acknowledged
// (inbox.ts reads it, then follows the notices). On a Redis Cluster the users' streams sit in
// different slots, so there it is a claim, then one script per user.
import { createHash } from 'node:crypto';
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { InboxNotices, USER_ID } from '../catalogs/system.ts';
import { BacktestResults, PatternEvents } from '../catalogs/tickstock.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { alertClaimKey, userMessagesKey } from '../core/keys.ts';
import type { Logger } from '../core/logger.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { AlertPreferences } from './alert-preferences.ts';

export type InboxKind = 'alert' | 'job_result';

// KEYS: [claim, inbox…]; ARGV: claim value, claim ttl, maxlen, ttl, kind, data, notice channel…
// The notice is built by concatenation, not cjson, so the data reaches the client byte for
// byte as it was appended. Returns the number of inboxes appended to, or -1: claimed before.
/** One inbox's entry: XADD, EXPIRE, PUBLISH; `key` and `channel` are Lua expressions. */
const append = (key: string, channel: string) => `local id = redis.call('XADD', ${key}, 'MAXLEN', '~', ARGV[3], '*', 'kind', ARGV[5], 'data', ARGV[6])
  redis.call('EXPIRE', ${key}, ARGV[4])
  redis.call('PUBLISH', ${channel}, '{"id":"' .. id .. '","kind":"' .. ARGV[5] .. '","data":' .. ARGV[6] .. '}')`;
const ROUTE = `if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return -1 end
for i = 2, #KEYS do
  ${append('KEYS[i]', 'ARGV[5 + i]')}
end
return #KEYS - 1`;
/** The cluster path, one inbox (claimed before): KEYS [inbox]; ARGV as ROUTE's, the notice channel 7th. */
const APPEND_ONE = `${append('KEYS[1]', 'ARGV[7]')}
return 1`;

export interface AlertRouterOptions {
  readonly bus: TickBus;
  readonly redis: CommandLink;
  /** A Redis Cluster: one script per user instead of one per event. */
  readonly cluster: boolean;
  readonly preferences: AlertPreferences;
  /** The owner of a backtest job (its record's user_id); undefined: job results are not routed. */
  readonly jobOwner: ((jobId: string) => Promise<string | undefined>) | undefined;
  /** Written into the claim: which gateway routed it. */
  readonly name: string;
  readonly logger: Logger;
  /** An event claimed and routed by this gateway, to this many inboxes. */
  readonly routed: (kind: InboxKind, inboxes: number) => void;
}

export class AlertRouter {
  readonly #options: AlertRouterOptions;
  readonly #owners = new Map<string, string>();
  #subscriptions: Subscription[] = [];
  /**
   * A user's inbox keeps the order the events were heard in. On one Redis a pattern event's
   * script is sent within the turn it is heard, so events go out in order on the one
   * connection without waiting for each other's round trip (a bar boundary brings a burst of
   * events at once: 100 waited for 99 round trips in turn). What must wait for Redis before
   * sending (a job's owner, the cluster's claim) goes on the chain, and while anything is on
   * it, later events queue behind it.
   */
  #chain: Promise<void> = Promise.resolve();
  #chained = 0;
  readonly #sent = new Set<Promise<void>>();

  constructor(options: AlertRouterOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { bus } = this.#options;
    this.#subscriptions.push(
      await bus.subscribe(PatternEvents, (event) => {
        if (this.#options.cluster || this.#chained > 0) this.#enqueue(() => this.#pattern(event));
        else this.#sendNow(this.#pattern(event));
      }),
    );
    if (this.#options.jobOwner) this.#subscriptions.push(await bus.subscribe(BacktestResults, (result) => this.#enqueue(() => this.#result(result))));
  }

  async close(): Promise<void> {
    for (const s of this.#subscriptions) await s.unsubscribe().catch(() => undefined);
    this.#subscriptions = [];
    await this.#chain;
    await Promise.all(this.#sent);
  }

  #enqueue(task: () => Promise<void>): void {
    this.#chained++;
    this.#chain = this.#chain
      .then(task)
      .catch(this.#notRouted)
      .finally(() => this.#chained--);
  }

  /** A route whose command is already sent (in order): only its outcome is awaited. */
  #sendNow(routing: Promise<void>): void {
    const done = routing.catch(this.#notRouted).finally(() => this.#sent.delete(done));
    this.#sent.add(done);
  }

  readonly #notRouted = (error: unknown): void => this.#options.logger.warn({ err: error }, 'gateway: alert not routed');

  async #pattern(event: Parameters<AlertPreferences['matching']>[0]): Promise<void> {
    const users = this.#options.preferences.matching(event);
    if (users.length === 0) return;
    const data = JSON.stringify(event);
    await this.#route('alert', digest(`alert\n${data}`), users, data);
  }

  async #result(result: { job_id: string; status: string }): Promise<void> {
    const ownerOf = this.#options.jobOwner;
    if (!ownerOf) return;
    let owner = this.#owners.get(result.job_id);
    if (owner === undefined) {
      owner = await ownerOf(result.job_id);
      if (owner === undefined) return; // no record: nobody's to see
      if (this.#owners.size >= GATEWAY_DEFAULTS.jobOwnerCacheSize) this.#owners.clear();
      this.#owners.set(result.job_id, owner);
    }
    // One claim per job and status: a result published twice is routed once.
    await this.#route('job_result', digest(`job_result\n${result.job_id}\n${result.status}`), [owner], JSON.stringify(result));
  }

  async #route(kind: InboxKind, hash: string, named: string[], data: string): Promise<void> {
    const { redis, cluster, name } = this.#options;
    // A user id that cannot name a notice channel (seed apps may publish any string) has no inbox here.
    const users = named.filter((u) => USER_ID.allow.test(u));
    if (users.length === 0) return;
    const d = GATEWAY_DEFAULTS;
    const claim = alertClaimKey(hash);
    const tail = [String(d.inboxMaxLen), String(d.inboxTtlSeconds), kind, data];
    if (!cluster) {
      const keys = [claim, ...users.map(userMessagesKey)];
      const appended = await redis.send<number>(['EVAL', ROUTE, String(keys.length), ...keys, name, String(d.alertClaimTtlSeconds), ...tail, ...users.map((u) => InboxNotices.name({ user: u }))], claim);
      if (appended >= 0) this.#options.routed(kind, appended);
      return;
    }
    if ((await redis.send<string | null>(['SET', claim, name, 'NX', 'EX', String(d.alertClaimTtlSeconds)], claim)) === null) return;
    let appended = 0;
    for (const user of users) {
      const key = userMessagesKey(user);
      appended += await redis.send<number>(['EVAL', APPEND_ONE, '1', key, name, '0', ...tail, InboxNotices.name({ user })], key);
    }
    this.#options.routed(kind, appended);
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
