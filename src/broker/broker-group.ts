// Several brokers share the tickers between them, with nothing but Redis in common. Each
// live broker is a member (a heartbeat with an expiry); each ticker goes to the member that
// rendezvous hashing prefers among the live ones, so that every broker computes the same
// split and a death moves only the dead one's tickers. Holding a ticker is a lease in Redis,
// `tickbus:{TICKER_UPDATES_X}:owner` = `<member>:<token>`, with a token from a counter that
// only grows: the broker's publishes carry it, and Redis refuses any whose token is no
// longer the owner's (fencing, in the publish script, on the ticker's own shard). A broker
// that was paused past its lease cannot publish beside the one that took over.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../core/logger.ts';
import { Background } from '../core/background.ts';
import { TickerUpdates } from '../catalogs/broker.ts';
import type { CommandLink } from '../transports/commands.ts';
import { BROKER_MEMBERS_KEY, fenceCounterKey, ownerKey } from '../core/keys.ts';
import { BROKER_DEFAULTS } from './broker-defaults.ts';

/**
 * A fencing counter outlives the last lease taken on its ticker by a day. It only has to
 * grow while a token drawn from it can still be the owner's, which is at most a lease
 * (seconds); after that an owner value `<member>:<token>` names a member that took the lease
 * again and so holds the new value. A ticker no broker takes any more leaves nothing behind.
 */
export const FENCE_COUNTER_TTL_MS = 24 * 3600 * 1000;

// Takes the lease if nobody holds it: a new token, the owner key with an expiry.
const ACQUIRE = `if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local owner = ARGV[1] .. ':' .. token
redis.call('SET', KEYS[1], owner, 'PX', ARGV[2])
return owner`;

// Extends the lease if it is still ours; 0 when it has passed to another (or expired).
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// Refreshes this member's expiry, drops members past theirs, returns the live ones. The set
// itself expires with its last member (a group whose brokers all died leaves nothing).
const HEARTBEAT = `redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('ZRANGE', KEYS[1], 0, -1)`;

export interface BrokerGroupOptions {
  redis: CommandLink;
  logger: Logger;
  /** Where a failed round is reported (counted, logged compactly). @default a log-only one */
  background?: Background;
  /** This broker's name in the group. @default host-pid-random */
  memberId?: string;
  /**
   * How long a lease (and a membership) lasts without renewal: a dead broker's tickers
   * move after at most about this long, plus one round. @default 3000
   */
  leaseMs?: number;
  /** How often leases and membership are renewed and the split is checked. @default leaseMs / 3 */
  roundMs?: number;
  /** Called when the set of tickers this broker holds changed. */
  onChange: () => void;
}

export class BrokerGroup {
  readonly memberId: string;
  readonly #redis: CommandLink;
  readonly #log: Logger;
  readonly #bg: Background;
  readonly #leaseMs: number;
  readonly #roundMs: number;
  readonly #onChange: () => void;
  /** ticker → the owner value this broker holds (`member:token`), which its publishes carry. */
  readonly #owned = new Map<string, string>();
  #members: string[] = [];
  #wanted = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: BrokerGroupOptions) {
    this.memberId = options.memberId ?? `${hostname()}-${process.pid}-${randomBytes(BROKER_DEFAULTS.groupMemberIdRandomBytes).toString('hex')}`;
    this.#redis = options.redis;
    this.#log = options.logger;
    this.#bg = options.background ?? new Background(options.logger);
    this.#leaseMs = options.leaseMs ?? BROKER_DEFAULTS.groupLeaseMs;
    this.#roundMs = options.roundMs ?? Math.max(BROKER_DEFAULTS.groupMinRoundMs, Math.floor(this.#leaseMs / BROKER_DEFAULTS.groupRoundsPerLease));
    this.#onChange = options.onChange;
  }

  /** Joins the group and starts the rounds. */
  async start(): Promise<void> {
    await this.#heartbeat();
    this.#timer = setInterval(() => this.#bg.run('broker_group_round', () => this.#serial(() => this.#tick())), this.#roundMs);
  }

  /**
   * Runs rounds one after the other. The chain itself never rejects: a failed round (Redis
   * gone) must neither stop the rounds after it nor surface as an unhandled rejection on a
   * timer; whoever asked for the round gets its failure.
   */
  #serial(round: () => Promise<void>): Promise<void> {
    const run = this.#round.then(round);
    this.#round = run.catch(() => undefined);
    return run;
  }

  /** Leaves: gives every ticker back at once (the others take them without waiting out a lease). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#round;
    await Promise.allSettled([...this.#owned].map(([ticker, owner]) => this.#release(ticker, owner)));
    this.#owned.clear();
    await this.#redis.send(['ZREM', BROKER_MEMBERS_KEY, this.memberId], BROKER_MEMBERS_KEY).catch(() => undefined);
  }

  /** The fencing value to publish a ticker with, or undefined when this broker does not hold it. */
  fence(ticker: string): string | undefined {
    return this.#owned.get(ticker);
  }

  get members(): readonly string[] {
    return this.#members;
  }

  /**
   * Whether this broker routes an order for the ticker: when it holds the ticker, or when
   * nobody does and the split gives it to this broker. Exactly one broker answers yes while
   * the members agree; an order is never routed by two (one holder at a time).
   */
  async routes(ticker: string): Promise<boolean> {
    if (this.#owned.has(ticker)) return true;
    let key: string;
    try {
      key = ownerKey(TickerUpdates.name({ ticker }));
    } catch {
      return preferred(ticker, this.#members) === this.memberId; // not a ticker name: refused downstream by one broker
    }
    const holder = await this.#redis.send<string | null>(['GET', key], key);
    // Ours already (the lease was taken, its reply not yet seen here).
    if (holder !== null && holder.startsWith(`${this.memberId}:`)) return true;
    // Held by a live broker: that one routes it.
    const member = holder === null ? undefined : holder.slice(0, holder.lastIndexOf(':'));
    if (member !== undefined && this.#members.includes(member)) return false;
    // Nobody holds it, or a broker that is gone (its lease not yet lapsed): the split decides.
    return this.#members.length === 0 || preferred(ticker, this.#members) === this.memberId;
  }

  /**
   * The tickers wanted by registrations changed: takes those the split gives this broker
   * (and that are free), gives back the others. Resolves with the tickers held now.
   */
  async settle(wanted: ReadonlySet<string>): Promise<Set<string>> {
    this.#wanted = new Set(wanted);
    await this.#serial(() => this.#rebalance());
    return new Set(this.#owned.keys());
  }

  /** A publish was refused by Redis: the lease passed to another broker. */
  lost(ticker: string): void {
    if (this.#owned.delete(ticker)) {
      this.#log.warn({ ticker, member: this.memberId }, 'lost a ticker lease (fenced); another broker streams it now');
      this.#onChange();
    }
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#heartbeat();
      await this.#renew();
      await this.#rebalance();
    } catch (error) {
      // Redis away: the leases keep their expiry, the next round tries again.
      this.#bg.failed('broker_group_round', error);
    }
  }

  async #heartbeat(): Promise<void> {
    const now = Date.now();
    const members = await this.#redis.send<string[]>(['EVAL', HEARTBEAT, '1', BROKER_MEMBERS_KEY, this.memberId, String(now + this.#leaseMs), String(now)], BROKER_MEMBERS_KEY);
    const changed = members.join(',') !== this.#members.join(',');
    this.#members = members.map(String).sort();
    if (changed) this.#log.info({ members: this.#members }, 'broker group members');
  }

  async #renew(): Promise<void> {
    let lost = false;
    await Promise.all(
      [...this.#owned].map(async ([ticker, owner]) => {
        const key = ownerKey(TickerUpdates.name({ ticker }));
        const ok = await this.#redis.send<number>(['EVAL', RENEW, '1', key, owner, String(this.#leaseMs)], key);
        if (ok !== 1 && this.#owned.get(ticker) === owner) {
          this.#owned.delete(ticker);
          lost = true;
          this.#log.warn({ ticker }, 'ticker lease lapsed before renewal; dropped it');
        }
      }),
    );
    if (lost) this.#onChange();
  }

  async #rebalance(): Promise<void> {
    if (this.#stopped) return;
    let changed = false;
    // Give back what is no longer wanted, or what the split now gives to another live member.
    for (const [ticker, owner] of [...this.#owned]) {
      if (this.#wanted.has(ticker) && preferred(ticker, this.#members) === this.memberId) continue;
      this.#owned.delete(ticker);
      changed = true;
      await this.#release(ticker, owner).catch((error: unknown) => this.#log.warn({ err: error, ticker }, 'could not release a ticker lease; it expires by itself'));
    }
    // Take what the split gives this broker, when it is free.
    const mine = [...this.#wanted].filter((t) => !this.#owned.has(t) && (this.#members.length === 0 || preferred(t, this.#members) === this.memberId));
    // Settled one by one: a lease taken must be recorded even when another acquisition
    // failed (Redis went away mid-round), or it would sit unused until it expires.
    const taken = await Promise.allSettled(
      mine.map(async (ticker) => {
        const channel = TickerUpdates.name({ ticker });
        const owner = await this.#redis.send<string | null>(['EVAL', ACQUIRE, '2', ownerKey(channel), fenceCounterKey(channel), this.memberId, String(this.#leaseMs), String(FENCE_COUNTER_TTL_MS)], channel);
        return [ticker, owner] as const;
      }),
    );
    let failure: Error | undefined;
    for (const result of taken) {
      if (result.status === 'rejected') {
        failure ??= result.reason instanceof Error ? result.reason : new Error(String(result.reason));
        continue;
      }
      const [ticker, owner] = result.value;
      if (owner && !this.#stopped) {
        this.#owned.set(ticker, owner);
        changed = true;
      }
    }
    if (changed) {
      this.#log.info({ member: this.memberId, tickers: [...this.#owned.keys()].sort() }, 'broker group: tickers held');
      this.#onChange();
    }
    if (failure !== undefined) throw failure;
  }

  async #release(ticker: string, owner: string): Promise<void> {
    const key = ownerKey(TickerUpdates.name({ ticker }));
    await this.#redis.send(['EVAL', RELEASE, '1', key, owner], key);
  }
}

/** Rendezvous hashing: the member with the highest hash of (member, ticker). */
export function preferred(ticker: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = '';
  for (const m of members) {
    const score = createHash('sha1').update(`${m}\u0000${ticker}`).digest('hex');
    if (best === undefined || score > bestScore) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}
