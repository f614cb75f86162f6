// The Redis transport, on node-redis. Publishers and subscribers get connections of their
// own (a subscribed connection can run nothing but pub/sub commands). node-redis
// re-subscribes every channel and pattern after a reconnection; this layer turns its
// socket events into the bus's disconnected / reconnected events and its errors into
// typed ones.
import type { RedisConfig } from '../../core/config.ts';
import type { MessageSink, Outbound, PublishLink, PublishReceipt, StreamLink, StreamWrite, SubscribeLink, Transport } from '../transport.ts';
import { isErrorReply, RedisLink, type RedisTransportOptions } from './redis-link.ts';
import { FencedError, TransportError } from '../../core/errors.ts';
import { RedisStreamLink } from './redis-stream-link.ts';
import { luaChannelKey, streamKey } from '../../core/keys.ts';

export type { RedisTransportOptions };

/**
 * Publishes several messages in one command: a Lua script that PUBLISHes (or, ARGV[1],
 * SPUBLISHes) each pair of the other arguments and returns the receiver counts.
 * node-redis's cost per command (a promise, a queue entry, a reply to parse) is most of
 * what a publish costs the client; publishes issued in the same turn of the event loop share
 * one command instead. EVAL (not EVALSHA) keeps it stateless: nothing to reload after
 * SCRIPT FLUSH, a restart or a failover.
 */
// pcall, not call: a refused PUBLISH (an ACL on one channel) must not abort the rest of the
// batch half-way, since a script has no rollback; its error comes back in its place.
const PUBLISH_MANY =
  "local cmd = ARGV[1] local n = {} for i = 2, #ARGV, 2 do local r = redis.pcall(cmd, ARGV[i], ARGV[i + 1]) if type(r) == 'table' then n[#n + 1] = tostring(r.err) else n[#n + 1] = r end end return n";

/**
 * The same for messages that write a stream entry, seven arguments each: channel ('' for a
 * durable channel: no PUBLISH), payload, stream key ('' for none), MAXLEN ('' for none),
 * MINID ('' for none), the publish command (PUBLISH or SPUBLISH) and a fencing token ('' for
 * none). A history message is appended first, and then published with its new position
 * added to the envelope (the payload's closing brace replaced), in one atomic step: a
 * subscriber never sees a position history does not hold. A fenced message is written only
 * while its channel's owner key holds the token. Each reply is {receivers, position},
 * {-1, error} or {-2, 'FENCED'}.
 */
const STREAM_MANY = `local out = {}
for i = 1, #ARGV, 7 do
  local ch, p, key, maxlen, minid, cmd, fence = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local r
  if fence ~= '' and redis.call('GET', ${luaChannelKey('ch', 'owner')}) ~= fence then
    r = {-2, 'FENCED'}
  elseif key == '' then
    r = redis.pcall(cmd, ch, p)
    if type(r) == 'table' then r = {-1, tostring(r.err)} else r = {r, ''} end
  else
    local id
    if maxlen ~= '' then id = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '*', 'payload', p)
    else id = redis.pcall('XADD', key, '*', 'payload', p) end
    if type(id) == 'table' then r = {-1, tostring(id.err)}
    else
      if minid ~= '' then redis.pcall('XTRIM', key, 'MINID', '~', minid) end
      local n = 0
      if ch ~= '' then
        n = redis.pcall(cmd, ch, string.sub(p, 1, -2) .. ',"position":"' .. id .. '"}')
        if type(n) == 'table' then n = -1 end
      end
      r = {n, id}
    end
  end
  out[#out + 1] = r
end
return out`;

/**
 * The common case of STREAM_MANY, in fewer arguments: every message of the chunk is a
 * history message with the same MAXLEN and no age bound, on the standard stream key of its
 * channel, published by the same command, all fenced or none. ARGV: MAXLEN, the publish
 * command, '1' when fenced; then channel, payload (and the token, when fenced) a message.
 * A flat reply of receivers and position a message: less for node-redis to encode and
 * parse, and for Redis. The keys are built here from the channel name (by core/keys.ts's
 * Lua expressions); on a cluster the chunk is one slot's and KEYS[1] routes it (the hash
 * tag is the channel name, so a channel, its stream and its owner key share the slot).
 */
const HISTORY_MANY = `local maxlen, cmd = ARGV[1], ARGV[2]
local step = 2
if ARGV[3] == '1' then step = 3 end
local out = {}
local held = {}
for i = 4, #ARGV, step do
  local ch, p = ARGV[i], ARGV[i + 1]
  local fenced = false
  if step == 3 then
    -- One GET a channel and token per chunk: a script runs alone, so the answer holds.
    local key = ch .. '\0' .. ARGV[i + 2]
    if held[key] == nil then held[key] = redis.call('GET', ${luaChannelKey('ch', 'owner')}) == ARGV[i + 2] end
    fenced = not held[key]
  end
  if fenced then
    out[#out + 1] = -2
    out[#out + 1] = 'FENCED'
  else
    local id = redis.pcall('XADD', ${luaChannelKey('ch', 'stream')}, 'MAXLEN', '~', maxlen, '*', 'payload', p)
    if type(id) == 'table' then
      out[#out + 1] = -1
      out[#out + 1] = tostring(id.err)
    else
      local n = redis.pcall(cmd, ch, string.sub(p, 1, -2) .. ',"position":"' .. id .. '"}')
      if type(n) == 'table' then n = -1 end
      out[#out + 1] = n
      out[#out + 1] = id
    end
  end
end
return out`;

/** The MAXLEN every message of the chunk shares, when HISTORY_MANY can carry the chunk. */
function sharedHistoryMaxLen(chunk: readonly PendingPublish[]): number | undefined {
  const first = chunk[0];
  const s0 = first?.stream;
  if (!first || !s0?.publish || s0.maxLen === undefined || s0.maxAgeMs !== undefined) return undefined;
  const fenced = s0.fence !== undefined;
  for (const p of chunk) {
    const s = p.stream;
    if (!s?.publish || s.maxLen !== s0.maxLen || s.maxAgeMs !== undefined || s.key !== streamKey(p.channel) || p.sharded !== first.sharded || (s.fence !== undefined) !== fenced) return undefined;
  }
  return s0.maxLen;
}

/**
 * Below this many commands in flight a publish is sent on its own, at once: an unloaded
 * publisher pays no batching delay. Above it, publishes queue and go out together.
 */
const DIRECT_IN_FLIGHT = 8;

/** Messages per script call, and characters of payload per call, at most. */
const CHUNK_MESSAGES = 256;
const CHUNK_CHARS = 1 << 20;

interface PendingPublish {
  readonly channel: string;
  readonly payload: string;
  readonly stream: StreamWrite | undefined;
  /** SPUBLISH on a cluster. */
  readonly sharded: boolean;
  readonly resolve: (receipt: PublishReceipt) => void;
  readonly reject: (error: Error) => void;
  /** Sent again on its own after a node refused it (slots moved): once only. */
  readonly resent?: boolean;
}

/** A receipt for a plain PUBLISH. */
function sent(receivers: number): PublishReceipt {
  return { status: 'sent', receivers, position: undefined };
}

/** The seven script arguments of one message. */
function streamArgs(args: string[], p: PendingPublish): void {
  const { channel, payload, stream } = p;
  const cmd = p.sharded ? 'SPUBLISH' : 'PUBLISH';
  if (!stream) {
    args.push(channel, payload, '', '', '', cmd, '');
    return;
  }
  args.push(
    stream.publish ? channel : '',
    payload,
    stream.key,
    stream.maxLen === undefined ? '' : String(stream.maxLen),
    // Trimmed by the publisher's clock: a skewed clock keeps history a little longer or shorter.
    stream.maxAgeMs === undefined ? '' : `${Date.now() - stream.maxAgeMs}-0`,
    cmd,
    stream.fence ?? '',
  );
}

/** Turns one STREAM_MANY reply into a receipt, or the error Redis gave. */
function streamReceipt(reply: unknown, channel: string): PublishReceipt | Error {
  const [n, second] = reply as [number, string];
  if (n === -2) return new FencedError(channel);
  if (n === -1 && second && !/^\d+-\d+$/.test(second)) return new Error(second);
  if (n === -1) return new Error('PUBLISH refused after the history entry was written');
  return { status: 'sent', receivers: n, position: second === '' ? undefined : second };
}

class RedisPublishLink extends RedisLink implements PublishLink {
  #pending: PendingPublish[] = [];
  #scheduled = false;
  /** Commands sent and not yet answered (resends included). */
  #inFlight = 0;
  /** Scripted batches not yet answered: while any is, nothing may overtake it. */
  #scriptsInFlight = 0;
  #idle: Array<() => void> = [];
  /** 'script' coalesces; 'plain' sends one command per message (scripts off, or not allowed). */
  #mode: 'script' | 'plain';
  /** In plain mode, stream messages take two commands each: chained, to keep their order. */
  #plainChain: Promise<unknown> = Promise.resolve();
  readonly #isSharded: (channel: string) => boolean;

  constructor(options: RedisTransportOptions) {
    super(options, 'pub');
    this.#mode = options.coalescePublishes === false ? 'plain' : 'script';
    // Sharded pub/sub exists only on a cluster; on one Redis the seeds' services SUBSCRIBE.
    this.#isSharded = this.clustered && options.isSharded ? options.isSharded : () => false;
  }

  readonly #rethrow = (error: unknown): never => {
    const translated = this.translate(error);
    this.emit('publishFailed', translated);
    throw translated;
  };

  readonly #sentOne = (receivers: number): PublishReceipt => {
    this.#answered();
    return { status: 'sent', receivers, position: undefined };
  };
  readonly #failedOne = (error: unknown): never => {
    this.#answered();
    return this.#rethrow(error);
  };

  /** Decides once whether scripts may run, before any message depends on it. */
  override async connect(): Promise<void> {
    await super.connect();
    if (this.#mode !== 'script') return;
    try {
      await this.conn.send(['EVAL', 'return 1', '0'], undefined);
    } catch (error) {
      if (isErrorReply(error)) this.#mode = 'plain'; // NOPERM, scripting disabled, a proxy
    }
  }

  publish(channel: string, payload: string, stream?: StreamWrite): Promise<PublishReceipt> {
    // A durable append is one XADD: no script to batch it in (Redis runs a command faster
    // than a script), and node-redis pipelines what is issued together anyway. Every message
    // of a channel takes the same path, so a channel's order holds.
    if (stream !== undefined && !stream.publish && stream.fence === undefined && (stream.maxLen === undefined || stream.maxAgeMs === undefined)) return this.#append(stream, payload);
    const sharded = this.#isSharded(channel);
    if (this.#mode === 'plain') {
      if (stream) return this.#plainStream(channel, payload, stream, sharded);
      return this.conn.publish(channel, payload, sharded).then(sent, this.#rethrow);
    }
    // Nothing queued or scripted ahead of it (order holds) and the connection is not busy:
    // send it now (a history message as a script of one), with no batching delay.
    if (this.#pending.length === 0 && this.#scriptsInFlight === 0 && this.#inFlight < DIRECT_IN_FLIGHT) {
      if (stream !== undefined) return new Promise<PublishReceipt>((resolve, reject) => this.#send([{ channel, payload, stream, sharded, resolve, reject }]));
      this.#inFlight++;
      return this.conn.publish(channel, payload, sharded).then(this.#sentOne, this.#failedOne);
    }
    return new Promise<PublishReceipt>((resolve, reject) => {
      this.#pending.push({ channel, payload, stream, sharded, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flush);
      }
    });
  }

  /** Through the same queue as publish(), so the two keep their relative order. */
  publishBatch(messages: readonly Outbound[]): Promise<PublishReceipt[]> {
    return Promise.all(messages.map((m) => this.publish(m.channel, m.payload, m.stream)));
  }

  /** Sends what is queued and waits for every answer (resends included) before closing. */
  override async close(): Promise<void> {
    this.#flush();
    if (this.#inFlight > 0 && this.conn.isReady) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#plainChain.catch(() => undefined);
    await super.close();
  }

  #answered(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const all = this.#pending;
    this.#pending = [];
    if (!this.clustered) {
      this.#chunked(all);
      return;
    }
    // A script runs on one node: group by the node that serves the channel's slot (a
    // channel's messages keep their order: they all go to one node, on one connection).
    // The scripts declare they may touch keys of several slots of that node. Classic
    // publishes too, though any node could take them, so that two of one channel never
    // take two routes.
    const groups = new Map<string, PendingPublish[]>();
    for (const p of all) {
      const slot = this.conn.nodeOf(p.channel);
      const group = groups.get(slot);
      if (group) group.push(p);
      else groups.set(slot, [p]);
    }
    for (const group of groups.values()) this.#chunked(group);
  };

  /** Sends messages in chunks bounded by count and size. */
  #chunked(all: PendingPublish[]): void {
    let start = 0;
    while (start < all.length) {
      let end = start;
      let chars = 0;
      while (end < all.length && end - start < CHUNK_MESSAGES && (end === start || chars < CHUNK_CHARS)) {
        chars += (all[end] as PendingPublish).payload.length;
        end++;
      }
      this.#send(all.slice(start, end));
      start = end;
    }
  }

  #send(chunk: PendingPublish[]): void {
    if (this.#mode === 'plain') {
      for (const p of chunk) this.publish(p.channel, p.payload, p.stream).then(p.resolve, p.reject);
      return;
    }
    const first = chunk[0] as PendingPublish;
    const withStream = chunk.some((p) => p.stream !== undefined);
    if (chunk.length === 1 && !withStream) {
      this.#inFlight++;
      this.conn.publish(first.channel, first.payload, first.sharded).then(
        (receivers) => {
          this.#answered();
          first.resolve(sent(receivers));
        },
        (error: unknown) => {
          this.#answered();
          this.#fail(first, error);
        },
      );
      return;
    }
    // On a cluster the chunk is one slot's: its first stream key (or channel) routes it. A
    // script that writes a stream or SPUBLISHes declares it, so that while the slot migrates
    // Redis sends the script (ASK) to whichever node holds the stream.
    const route = this.clustered ? (first.stream?.key ?? first.channel) : undefined;
    const keys = route === undefined || !(withStream || first.sharded) ? ['0'] : ['1', route];
    const historyMaxLen = withStream ? sharedHistoryMaxLen(chunk) : undefined;
    let args: string[];
    const flags = this.clustered ? CROSS_SLOT : '';
    if (historyMaxLen !== undefined) {
      const fenced = first.stream?.fence !== undefined;
      args = ['EVAL', flags + HISTORY_MANY, ...keys, String(historyMaxLen), first.sharded ? 'SPUBLISH' : 'PUBLISH', fenced ? '1' : '0'];
      if (fenced) for (const p of chunk) args.push(p.channel, p.payload, p.stream?.fence as string);
      else for (const p of chunk) args.push(p.channel, p.payload);
    } else if (withStream) {
      args = ['EVAL', flags + STREAM_MANY, ...keys];
      for (const p of chunk) streamArgs(args, p);
    } else {
      args = ['EVAL', flags + PUBLISH_MANY, ...keys, first.sharded ? 'SPUBLISH' : 'PUBLISH'];
      for (const p of chunk) args.push(p.channel, p.payload);
    }
    this.#inFlight++;
    this.#scriptsInFlight++;
    this.conn.send<unknown[]>(args, route).then(
      (replies) => {
        this.#scriptsInFlight--;
        // On a cluster whose slots moved since the chunk was grouped, the node refuses the
        // messages whose keys it no longer serves: they go again, one at a time, by the
        // cluster client, which follows the redirection (their order within a channel holds).
        const misplaced: PendingPublish[] = [];
        const settle = (p: PendingPublish, receipt: PublishReceipt | Error) => {
          if (!(receipt instanceof Error)) p.resolve(receipt);
          else if (this.clustered && p.resent !== true && MISPLACED.test(receipt.message)) misplaced.push(p);
          else this.#fail(p, receipt);
        };
        for (let i = 0; i < chunk.length; i++) {
          const p = chunk[i] as PendingPublish;
          if (historyMaxLen !== undefined) {
            settle(p, streamReceipt([replies[2 * i], replies[2 * i + 1]], p.channel));
            continue;
          }
          const reply = replies[i];
          if (withStream) settle(p, streamReceipt(reply, p.channel));
          else if (typeof reply === 'number') p.resolve(sent(reply));
          else settle(p, new Error(String(reply)));
        }
        for (const p of misplaced) this.#send([{ ...p, resent: true }]);
        this.#answered();
      },
      (error: unknown) => {
        this.#scriptsInFlight--;
        if (isErrorReply(error) && !NOT_READY_REPLY.test(String((error as Error).message))) {
          // The script did not run (scripts became unavailable after connect): publish one
          // by one from now on, starting with this chunk, in its place in the order.
          this.#mode = 'plain';
          this.#send(chunk);
        } else {
          for (const p of chunk) this.#fail(p, error);
        }
        this.#answered();
      },
    );
  }

  #append(stream: StreamWrite, payload: string): Promise<PublishReceipt> {
    const args = stream.maxLen !== undefined ? ['XADD', stream.key, 'MAXLEN', '~', String(stream.maxLen)] : ['XADD', stream.key, 'MINID', '~', `${Date.now() - (stream.maxAgeMs as number)}-0`];
    args.push('*', 'payload', payload);
    this.#inFlight++;
    return this.conn.send<string>(args, stream.key).then(this.#appended, this.#failedOne);
  }

  readonly #appended = (position: string): PublishReceipt => {
    this.#answered();
    return { status: 'sent', receivers: 0, position };
  };

  /** Without scripts: XADD, then PUBLISH with the position; not atomic, but in order. */
  #plainStream(channel: string, payload: string, stream: StreamWrite, sharded: boolean): Promise<PublishReceipt> {
    const run = async (): Promise<PublishReceipt> => {
      // A fence needs the check and the write in one step; without scripts there is none.
      if (stream.fence !== undefined) throw new TransportError(`Fenced publishing on "${channel}" needs Lua scripts (EVAL), which this Redis refuses.`, { channel });
      const xadd = [stream.key];
      if (stream.maxLen !== undefined) xadd.push('MAXLEN', '~', String(stream.maxLen));
      const position = await this.conn.send<string>(['XADD', ...xadd, '*', 'payload', payload], stream.key);
      if (stream.maxAgeMs !== undefined) await this.conn.send(['XTRIM', stream.key, 'MINID', '~', `${Date.now() - stream.maxAgeMs}-0`], stream.key);
      const receivers = stream.publish ? await this.conn.publish(channel, `${payload.slice(0, -1)},"position":"${position}"}`, sharded) : 0;
      return { status: 'sent', receivers, position };
    };
    const result = this.#plainChain.then(run, run).catch(this.#rethrow);
    this.#plainChain = result.catch(() => undefined);
    return result;
  }

  #fail(p: PendingPublish, error: unknown): void {
    const translated = error instanceof FencedError ? error : this.translate(error);
    this.emit('publishFailed', translated);
    p.reject(translated);
  }
}

/**
 * On a cluster the publish scripts may touch keys (and shard channels) of several slots,
 * all served by the node they run on (Redis 7 script flags).
 */
const CROSS_SLOT = '#!lua flags=allow-cross-slot-keys\n';

/** A script's per-message error that means "not on this node": send it again, routed. */
const MISPLACED = /non local key|MOVED|ASK|CROSSSLOT|TRYAGAIN|CLUSTERDOWN|not served/i;

/** Replies that mean "not now" rather than "scripts are refused". */
const NOT_READY_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|MOVED|ASK)\b/;

class RedisSubscribeLink extends RedisLink implements SubscribeLink {
  readonly #sink: MessageSink;
  readonly #exact = (message: string, channel: string) => this.#sink(channel, message, undefined);
  readonly #patternListeners = new Map<string, (message: string, channel: string) => void>();
  readonly #isSharded: (channel: string) => boolean;

  constructor(options: RedisTransportOptions, sink: MessageSink) {
    super(options, 'sub');
    this.#sink = sink;
    this.#isSharded = this.clustered && options.isSharded ? options.isSharded : () => false;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    try {
      // One call a channel: on a cluster each sharded channel goes to its own shard.
      await Promise.all(channels.map((c) => this.conn.subscribe(c, this.#exact, this.#isSharded(c))));
    } catch (error) {
      throw this.translate(error);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    try {
      await Promise.all(channels.map((c) => this.conn.unsubscribe(c, this.#exact, this.#isSharded(c))));
    } catch (error) {
      throw this.translate(error);
    }
  }

  async psubscribe(patterns: readonly string[]): Promise<void> {
    try {
      for (const pattern of patterns) {
        if (this.#patternListeners.has(pattern)) continue;
        // node-redis does not pass the pattern to the listener: bind it here.
        const listener = (message: string, channel: string) => this.#sink(channel, message, pattern);
        this.#patternListeners.set(pattern, listener);
        await this.conn.pSubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }

  async punsubscribe(patterns: readonly string[]): Promise<void> {
    try {
      for (const pattern of patterns) {
        const listener = this.#patternListeners.get(pattern);
        if (!listener) continue;
        this.#patternListeners.delete(pattern);
        await this.conn.pUnsubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }
}

export class RedisTransport implements Transport {
  readonly kind = 'redis';
  readonly target: string;
  readonly shardedPubSub: boolean;
  readonly redis: RedisConfig;
  readonly options: RedisTransportOptions;

  constructor(options: RedisTransportOptions) {
    this.options = options;
    this.target = options.redis.display;
    this.shardedPubSub = options.redis.cluster !== undefined;
    this.redis = options.redis;
  }

  createPublishLink(): PublishLink {
    return new RedisPublishLink(this.options);
  }

  createSubscribeLink(sink: MessageSink): SubscribeLink {
    return new RedisSubscribeLink(this.options, sink);
  }

  createStreamLink(): StreamLink {
    return new RedisStreamLink(this.options);
  }
}
