// Every Redis key tickbus reads or writes is named here, and nowhere else: the builders the
// code calls, and KEY_SPACE, the table of what each key is (type, who writes it, how long
// it lives) that docs/wire-format.md's "Keys and their lifetimes" must agree with
// (keys.spec.ts compares the two). A shared Redis can then be audited from one file, and a
// key renamed in one place. Core imports nothing of tickbus, so every layer may use it.
//
// Hash tags (the `{…}` part) decide the cluster slot: a channel's keys carry the channel
// name, so its stream, dead letters, owner key and fencing counter share the channel's slot
// (one script can touch them together); the broker group's keys and the health keys each
// sit on one shard; order claims and last values spread by id and ticker.

/** What every tickbus key but the job keys starts with. */
export const KEY_PREFIX = 'tickbus:';

/** The keys that carry a channel's name as their hash tag: `tickbus:{<channel>}:<part>`. */
export type ChannelKeyPart = 'stream' | 'dead' | 'owner' | 'fence';

function channelKey(channelName: string, part: ChannelKeyPart): string {
  return `${KEY_PREFIX}{${channelName}}:${part}`;
}

/** The Redis key of a channel's stream; the hash tag keeps it in the channel's cluster slot. */
export function streamKey(channelName: string): string {
  return channelKey(channelName, 'stream');
}

/** Where a durable channel's dead letters go. */
export function deadLetterKey(channelName: string): string {
  return channelKey(channelName, 'dead');
}

/**
 * The key whose value a fenced publish on `channel` must match (same slot as the channel):
 * a broker's lease on a ticker, `<member>:<token>`.
 */
export function ownerKey(channelName: string): string {
  return channelKey(channelName, 'owner');
}

/** The counter a ticker's fencing tokens come from (same slot as its owner key). */
export function fenceCounterKey(channelName: string): string {
  return channelKey(channelName, 'fence');
}

/**
 * For a Lua script that builds a channel's key from the channel name it was given (the
 * batch scripts carry many channels in ARGV, so the keys cannot all come in KEYS[]): the Lua
 * expression of `channelKey(<luaVariable>, part)`. The result is the same string the
 * builders above return.
 */
export function luaChannelKey(luaVariable: string, part: ChannelKeyPart): string {
  return `'${KEY_PREFIX}{' .. ${luaVariable} .. '}:${part}'`;
}

/** The broker group's members: a sorted set, member id → expiry (epoch ms). */
export const BROKER_MEMBERS_KEY = `${KEY_PREFIX}{broker}:members`;

/** Registrations and bot leases: a sorted set `<ticker>|<holder>` → expiry (epoch ms, +inf for none). */
export const BROKER_LEASES_KEY = `${KEY_PREFIX}{broker}:leases`;

/** A ticker's last price (JSON), for new subscribers; one key per ticker, spread across shards. */
export function lastValueKey(ticker: string): string {
  return `${KEY_PREFIX}last:{${ticker}}`;
}

/** Which broker placed an order: a client_order_id claimed once across the broker group. */
export function orderClaimKey(clientOrderId: string): string {
  return `${KEY_PREFIX}order:{${clientOrderId}}`;
}

/**
 * An order placed from a browser, claimed by the gateway that forwards it (`SET NX`): its
 * value is the user, so a resend is answered without placing it again and only its owner
 * may cancel it. Hash-tagged by the client_order_id, so claims spread.
 */
export function webOrderClaimKey(clientOrderId: string): string {
  return `${KEY_PREFIX}web-order:{${clientOrderId}}`;
}

/** A strategy's (a bot's client_id) position per symbol: a hash symbol → whole shares, kept by the broker from fills. */
export function positionsKey(strategyId: string): string {
  return `${KEY_PREFIX}positions:{${strategyId}}`;
}

/** Where the latest beat of every instance is kept: field = instance, value = JSON. */
export const HEARTBEATS_KEY = `${KEY_PREFIX}{health}:heartbeats`;

/** When each instance's beat expires: member = instance, score = epoch ms (same slot as the hash). */
export const HEARTBEAT_EXPIRY_KEY = `${KEY_PREFIX}{health}:heartbeat-expiry`;

// The job keys are seed 003's (its JobManager writes `HSET job:<id>` and the per-user index
// `jobs:user:<id>`), deliberately without the tickbus prefix or a hash tag: services written
// against the seed read the same records. On a cluster a record and its user's index may
// sit on different shards, which the job store allows for.

/** A job's record: a hash (seed 003's format, no tickbus prefix). */
export function jobKey(jobId: string): string {
  return `job:${jobId}`;
}

/** A user's jobs: a sorted set by creation time (seed 003's format, no tickbus prefix). */
export function userJobsKey(userId: string): string {
  return `jobs:user:${userId}`;
}

/**
 * A job published the seed's way (PUBLISH tickstock.jobs.backtest) claimed by the job bridge
 * that queues it: `SET NX` makes one bridge of many append it to the stream, once per job id.
 * tickbus's own key (prefixed), its hash tag the job id, so claims spread across shards.
 */
export function jobBridgeClaimKey(jobId: string): string {
  return `${KEY_PREFIX}job-bridge:{${jobId}}`;
}

// The inbox is seed 003's (`queue_for_offline_user`: XADD user_messages:<user_id>, 7-day
// expiry), so it keeps the seed's name, without prefix or hash tag, as the job keys do.

/** A user's inbox: a stream of alerts and job results not yet acknowledged (seed 003's format, no tickbus prefix). */
export function userMessagesKey(userId: string): string {
  return `user_messages:${userId}`;
}

/** Every user's alert preferences: a hash, field user id → JSON {symbols, patterns, min_confidence}. */
export const ALERT_PREFS_KEY = `${KEY_PREFIX}alert-prefs`;

/**
 * A pattern event or a job result claimed by the one gateway that routes it to inboxes
 * (`SET NX`): `<digest>` is a hash of the event. Hash-tagged by the digest, so claims spread.
 */
export function alertClaimKey(digest: string): string {
  return `${KEY_PREFIX}alert-claim:{${digest}}`;
}

/** One kind of key: what docs/wire-format.md's key table says about it, column by column. */
export interface KeySpec {
  /** The key with its variable parts as `<placeholders>`, built by the builder above. */
  readonly pattern: string;
  /** Its Redis type, and what its members or value are. */
  readonly type: string;
  /** Who writes it. */
  readonly writtenBy: string;
  /** How long it lives: an expiry, or **persistent** with what bounds it. */
  readonly lifetime: string;
  /** Left without an expiry after a clean stop (test/e2e/key-lifetimes.test.ts checks the rest expire). */
  readonly persistent: boolean;
}

/**
 * Every key tickbus writes, in the order of docs/wire-format.md's table (whose "why" column
 * stays in the doc). The cells are the doc's text, markdown included.
 */
export const KEY_SPACE: readonly KeySpec[] = Object.freeze(
  [
    {
      pattern: streamKey('<channel>'),
      type: 'stream',
      writtenBy: 'publishers of history and durable channels',
      lifetime: '**persistent**, bounded by `MAXLEN ~` (ticker history: 1,000) and/or `MINID`',
      persistent: true,
    },
    { pattern: deadLetterKey('<channel>'), type: 'stream', writtenBy: 'durable consumers', lifetime: '**persistent**, `MAXLEN ~` 10,000', persistent: true },
    {
      pattern: ownerKey('TICKER_UPDATES_<T>'),
      type: 'string `<member>:<token>`',
      writtenBy: 'brokers',
      lifetime: '`PX` lease (3 s, `--failover-ms`), renewed each round; deleted on a clean stop',
      persistent: false,
    },
    { pattern: orderClaimKey('<client_order_id>'), type: 'string `<broker>`', writtenBy: 'brokers, before placing an order', lifetime: '24 hours', persistent: false },
    { pattern: webOrderClaimKey('<client_order_id>'), type: 'string `<user>`', writtenBy: 'gateways, before forwarding an order from a browser', lifetime: '24 hours', persistent: false },
    { pattern: positionsKey('<strategy_id>'), type: 'hash symbol → shares', writtenBy: 'brokers, on each fill', lifetime: "7 days after the strategy's last fill", persistent: false },
    { pattern: fenceCounterKey('TICKER_UPDATES_<T>'), type: 'counter', writtenBy: 'brokers, on taking a lease', lifetime: '24 hours after the last lease taken', persistent: false },
    {
      pattern: BROKER_MEMBERS_KEY,
      type: 'sorted set (score: expiry ms)',
      writtenBy: 'brokers, each round',
      lifetime: 'members expire by score (one lease); the key expires with its last member; a clean stop removes its member',
      persistent: false,
    },
    {
      pattern: BROKER_LEASES_KEY,
      type: 'sorted set `<ticker>|<holder>` (score: expiry ms, `+inf` for none)',
      writtenBy: 'brokers, for registrations and bot leases',
      lifetime: "each lease by its score (bots: 60 s renewed while they run; anonymous: 24 h, `--lease-ttl`); the key an hour after its longest lease (time for a running broker's sweep to see each expire)",
      persistent: false,
    },
    { pattern: lastValueKey('<ticker>'), type: 'string (JSON of the latest price)', writtenBy: 'brokers, on every price', lifetime: "24 hours after the ticker's last price", persistent: false },
    {
      pattern: HEARTBEATS_KEY,
      type: 'hash instance → beat JSON',
      writtenBy: "every service's heartbeat",
      lifetime: 'each beat six intervals (30 s by default; pruned by the next beat of any service), the key with its longest-lived beat; a clean stop removes its beat',
      persistent: false,
    },
    { pattern: HEARTBEAT_EXPIRY_KEY, type: 'sorted set instance → expiry ms', writtenBy: 'same', lifetime: 'same as the hash', persistent: false },
    { pattern: jobKey('<job_id>'), type: 'hash', writtenBy: '`tickbus jobs submit`, workers', lifetime: '24 hours', persistent: false },
    { pattern: userJobsKey('<user_id>'), type: 'sorted set', writtenBy: 'same', lifetime: "24 hours after the user's last submission", persistent: false },
    { pattern: ALERT_PREFS_KEY, type: 'hash user → preferences JSON', writtenBy: 'gateways, from `tickstock.jobs.alerts`', lifetime: '**persistent**, one field per user (removed by an `unsubscribe`)', persistent: true },
    { pattern: alertClaimKey('<digest>'), type: 'string `<gateway>`', writtenBy: 'gateways, before routing an alert or job result', lifetime: '1 hour', persistent: false },
    { pattern: userMessagesKey('<user_id>'), type: 'stream (fields `kind`, `data`)', writtenBy: 'gateways, routing alerts and job results', lifetime: "7 days after the user's last entry; `MAXLEN ~` 1,000; acknowledged entries trimmed", persistent: false },
    { pattern: jobBridgeClaimKey('<job_id>'), type: 'string `<bridge>`', writtenBy: 'job bridges, before queuing a published job', lifetime: '24 hours', persistent: false },
    // One stream of the first row, listed for its role: the job queue (catalog tickstock).
    { pattern: streamKey('tickstock.jobs.backtest'), type: 'stream', writtenBy: 'job submitters', lifetime: 'persistent, like every durable stream', persistent: true },
  ].map((spec) => Object.freeze(spec)),
);
