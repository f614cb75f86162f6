// What the broker keeps in Redis so that a restarted broker resumes where it was:
// registration leases (who wants which ticker, until when) and the last price of every
// ticker (a last-value cache a new subscriber reads at once). An in-memory twin serves
// the embedded single-process mode.
import { connectCommands, type CommandLink } from '../transports/commands.ts';
import type { RedisConfig } from '../core/config.ts';
import { BROKER_LEASES_KEY, lastValueKey, orderClaimKey, positionsKey } from '../core/keys.ts';

/** One holder's claim on a ticker. `expiresAt` is epoch ms, or null for no expiry. */
export interface RegistrationLease {
  readonly ticker: string;
  readonly holder: string;
  readonly expiresAt: number | null;
}

export interface BrokerStore {
  acquire(lease: RegistrationLease): Promise<void>;
  release(ticker: string, holder: string): Promise<boolean>;
  /** Live leases (expired ones are not returned). */
  leases(now: number): Promise<RegistrationLease[]>;
  /** Removes expired leases and returns them. */
  sweep(now: number): Promise<RegistrationLease[]>;
  /** Stores the latest price message of each ticker (JSON of the `data`). */
  setLastValues(values: ReadonlyMap<string, string>): Promise<void>;
  lastValue(ticker: string): Promise<string | undefined>;
  /**
   * Claims an order for the broker that will place it and returns the broker that holds the
   * claim: `broker` itself for the first claim of a client_order_id (or its own again),
   * another broker's name when that one claimed it first. Brokers of a group may both
   * believe they route a ticker while its lease changes hands; the claim makes the
   * client_order_id the idempotency key across all of them, as a venue makes it for one.
   */
  claimOrder(clientOrderId: string, broker: string): Promise<string>;
  /** Adds `delta` shares to a strategy's position in a symbol; resolves with the new position. */
  addPosition(strategyId: string, symbol: string, delta: number): Promise<number>;
  close(): Promise<void>;
}

/** A strategy's positions outlive its last fill by this long. */
export const POSITIONS_TTL_MS = 7 * 24 * 3600 * 1000;

// The lease set (BROKER_LEASES_KEY) has a hash tag of its own so that, on a cluster, it lives
// on one shard and can be read with one command. Last values are one key per ticker, spread
// across shards, since they are written on every price (key names: core/keys.ts).
/** How long a client_order_id stays claimed: a resend within a day is not placed again. */
export const ORDER_CLAIM_TTL_MS = 24 * 3600 * 1000;

/**
 * A last value outlives the ticker's last update by a day: a bot starting before the broker
 * still gets the previous session's price, and a ticker nobody streams any more does not
 * leave its key behind for good.
 */
export const LAST_VALUE_TTL_MS = 24 * 3600 * 1000;

/**
 * The lease set outlives its longest lease by this much: long enough for a running broker's
 * sweep to see every lease expire (it drops the ticker on that), short enough that a set
 * left by brokers that are all gone does not stay for good.
 */
export const LEASES_GRACE_MS = 3600 * 1000;

// After a lease is added, renewed or released, the set expires LEASES_GRACE_MS after its
// longest lease; one holding a lease without expiry (an infinite score) stays, as asked.
const EXPIRE_WITH_LONGEST = `local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then
elseif last[2] == 'inf' or last[2] == '+inf' then redis.call('PERSIST', KEYS[1])
else redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])) + ${LEASES_GRACE_MS}) end`;
const ACQUIRE = `redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
${EXPIRE_WITH_LONGEST}
return 1`;
const RELEASE = `local removed = redis.call('ZREM', KEYS[1], ARGV[1])
${EXPIRE_WITH_LONGEST}
return removed`;

const SEP = '|';
const SWEEP =
  "local e = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES') if #e > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end return e";
const member = (ticker: string, holder: string) => `${ticker}${SEP}${holder}`;
function parseMember(m: string, score: number): RegistrationLease {
  const i = m.indexOf(SEP);
  return { ticker: m.slice(0, i), holder: m.slice(i + 1), expiresAt: Number.isFinite(score) ? score : null };
}

/**
 * A batch's last values in one command (one Redis): node-redis's cost per command was most
 * of what the cache cost the broker, a SET per ticker per batch (issue 18).
 * KEYS: the tickers' keys; ARGV: their values, then the time to live in ms.
 */
const SET_LAST_VALUES = "local ttl = ARGV[#ARGV] for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i], 'PX', ttl) end return #KEYS";

export class RedisBrokerStore implements BrokerStore {
  readonly #client: CommandLink;
  /** On a cluster the tickers' keys are on several shards: a SET each, routed. */
  readonly #clustered: boolean;

  private constructor(client: CommandLink, clustered: boolean) {
    this.#client = client;
    this.#clustered = clustered;
  }

  /** The store's connection, shared with the heartbeat and the broker group (fewer connections). */
  get redis(): CommandLink {
    return this.#client;
  }

  static async connect(redis: RedisConfig, connectTimeoutMs?: number): Promise<RedisBrokerStore> {
    // Failures are reported through the bus's own connection events; node-redis reconnects.
    return new RedisBrokerStore(await connectCommands(redis, { name: 'tickbus:broker-store', ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }) }), redis.cluster !== undefined);
  }

  async acquire(lease: RegistrationLease): Promise<void> {
    await this.#client.send(['EVAL', ACQUIRE, '1', BROKER_LEASES_KEY, lease.expiresAt === null ? '+inf' : String(lease.expiresAt), member(lease.ticker, lease.holder)], BROKER_LEASES_KEY);
  }

  async release(ticker: string, holder: string): Promise<boolean> {
    return (await this.#client.send<number>(['EVAL', RELEASE, '1', BROKER_LEASES_KEY, member(ticker, holder)], BROKER_LEASES_KEY)) > 0;
  }

  async leases(now: number): Promise<RegistrationLease[]> {
    const flat = await this.#client.send<string[]>(['ZRANGE', BROKER_LEASES_KEY, `(${now}`, '+inf', 'BYSCORE', 'WITHSCORES'], BROKER_LEASES_KEY);
    return pairs(flat);
  }

  async sweep(now: number): Promise<RegistrationLease[]> {
    // Read and remove in one script: a lease renewed between a read and a ZREM would
    // otherwise be deleted with its new expiry.
    const reply = await this.#client.send<string[]>(['EVAL', SWEEP, '1', BROKER_LEASES_KEY, String(now)], BROKER_LEASES_KEY);
    return pairs(reply);
  }

  async setLastValues(values: ReadonlyMap<string, string>): Promise<void> {
    if (values.size === 0) return;
    if (!this.#clustered) {
      const keys: string[] = [];
      const args: string[] = [];
      for (const [ticker, json] of values) {
        keys.push(lastValueKey(ticker));
        args.push(json);
      }
      await this.#client.send(['EVAL', SET_LAST_VALUES, String(keys.length), ...keys, ...args, String(LAST_VALUE_TTL_MS)], undefined);
      return;
    }
    // One SET a ticker, issued together (node-redis pipelines them): each goes to the shard
    // of its ticker.
    await Promise.all([...values].map(([ticker, json]) => this.#client.send(['SET', lastValueKey(ticker), json, 'PX', String(LAST_VALUE_TTL_MS)], lastValueKey(ticker))));
  }

  async lastValue(ticker: string): Promise<string | undefined> {
    return (await this.#client.send<string | null>(['GET', lastValueKey(ticker)], lastValueKey(ticker))) ?? undefined;
  }

  async claimOrder(clientOrderId: string, broker: string): Promise<string> {
    const key = orderClaimKey(clientOrderId);
    // SET NX, then a GET only when it was taken: no script, so it works for users that may not run them.
    if ((await this.#client.send<string | null>(['SET', key, broker, 'NX', 'PX', String(ORDER_CLAIM_TTL_MS)], key)) !== null) return broker;
    return (await this.#client.send<string | null>(['GET', key], key)) ?? broker;
  }

  async addPosition(strategyId: string, symbol: string, delta: number): Promise<number> {
    const key = positionsKey(strategyId);
    // HINCRBY is atomic: brokers of a group that fill the same strategy's orders add up.
    const qty = await this.#client.send<number>(['HINCRBY', key, symbol, String(delta)], key);
    await this.#client.send(['PEXPIRE', key, String(POSITIONS_TTL_MS)], key);
    return Number(qty);
  }

  async close(): Promise<void> {
    await this.#client.close();
  }
}

/**
 * [member, score, member, score, …] (RESP2, and a script's reply) or [[member, score], …]
 * (RESP3) as leases; an infinite score is a lease without expiry.
 */
function pairs(reply: readonly unknown[]): RegistrationLease[] {
  const flat = reply.length > 0 && Array.isArray(reply[0]) ? (reply as unknown[][]).flat() : reply;
  const out: RegistrationLease[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const score = String(flat[i + 1]).toLowerCase();
    out.push(parseMember(String(flat[i]), score === 'inf' || score === '+inf' || score === 'infinity' ? Infinity : Number(score)));
  }
  return out;
}

export class MemoryBrokerStore implements BrokerStore {
  readonly #leases = new Map<string, RegistrationLease>();
  readonly #last = new Map<string, string>();
  readonly #claims = new Map<string, string>();
  readonly #positions = new Map<string, number>();

  acquire(lease: RegistrationLease): Promise<void> {
    this.#leases.set(member(lease.ticker, lease.holder), lease);
    return Promise.resolve();
  }
  release(ticker: string, holder: string): Promise<boolean> {
    return Promise.resolve(this.#leases.delete(member(ticker, holder)));
  }
  leases(now: number): Promise<RegistrationLease[]> {
    return Promise.resolve([...this.#leases.values()].filter((l) => l.expiresAt === null || l.expiresAt > now));
  }
  sweep(now: number): Promise<RegistrationLease[]> {
    const expired = [...this.#leases.entries()].filter(([, l]) => l.expiresAt !== null && l.expiresAt <= now);
    for (const [k] of expired) this.#leases.delete(k);
    return Promise.resolve(expired.map(([, l]) => l));
  }
  setLastValues(values: ReadonlyMap<string, string>): Promise<void> {
    for (const [k, v] of values) this.#last.set(k, v);
    return Promise.resolve();
  }
  lastValue(ticker: string): Promise<string | undefined> {
    return Promise.resolve(this.#last.get(ticker));
  }
  claimOrder(clientOrderId: string, broker: string): Promise<string> {
    if (!this.#claims.has(clientOrderId)) this.#claims.set(clientOrderId, broker);
    return Promise.resolve(this.#claims.get(clientOrderId) ?? broker);
  }
  addPosition(strategyId: string, symbol: string, delta: number): Promise<number> {
    const key = `${strategyId}\u0000${symbol}`;
    const qty = (this.#positions.get(key) ?? 0) + delta;
    this.#positions.set(key, qty);
    return Promise.resolve(qty);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
