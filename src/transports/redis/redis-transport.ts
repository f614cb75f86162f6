// The Redis transport, on node-redis. Publishers and subscribers get connections of their
// own (a subscribed connection can run nothing but pub/sub commands). node-redis
// re-subscribes every channel and pattern after a reconnection; this layer turns its
// socket events into the bus's disconnected / reconnected events and its errors into
// typed ones.
import type { MessageSink, Outbound, PublishLink, PublishReceipt, StreamLink, StreamWrite, SubscribeLink, Transport } from '../transport.ts';
import { isErrorReply, RedisLink, type RedisTransportOptions } from './redis-link.ts';
import { RedisStreamLink } from './redis-stream-link.ts';

export type { RedisTransportOptions };

/**
 * Publishes several messages in one command: a Lua script that PUBLISHes each pair of its
 * arguments and returns the receiver counts. node-redis's cost per command (a promise, a
 * queue entry, a reply to parse) is most of what a publish costs the client; publishes
 * issued in the same turn of the event loop share one command instead. EVAL (not EVALSHA)
 * keeps it stateless: nothing to reload after SCRIPT FLUSH or a restart.
 */
// pcall, not call: a refused PUBLISH (an ACL on one channel) must not abort the rest of the
// batch half-way, since a script has no rollback; its error comes back in its place.
const PUBLISH_MANY =
  "local n = {} for i = 1, #ARGV, 2 do local r = redis.pcall('PUBLISH', ARGV[i], ARGV[i + 1]) if type(r) == 'table' then n[#n + 1] = tostring(r.err) else n[#n + 1] = r end end return n";

/**
 * The same for messages that write a stream entry, five arguments each: channel ('' for a
 * durable channel: no PUBLISH), payload, stream key ('' for none), MAXLEN ('' for none),
 * MINID ('' for none). A history message is appended first, and then published with its new
 * position added to the envelope (the payload's closing brace replaced), in one atomic step:
 * a subscriber never sees a position history does not hold. Each reply is {receivers,
 * position} or {-1, error}.
 */
const STREAM_MANY = `local out = {}
for i = 1, #ARGV, 5 do
  local ch, p, key, maxlen, minid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local r
  if key == '' then
    r = redis.pcall('PUBLISH', ch, p)
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
        n = redis.pcall('PUBLISH', ch, string.sub(p, 1, -2) .. ',"position":"' .. id .. '"}')
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
 * channel. Two arguments a message (channel, payload) after the MAXLEN, and a flat reply of
 * receivers and position a message: less for node-redis to encode and parse, and for Redis.
 */
const HISTORY_MANY = `local maxlen = ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local ch, p = ARGV[i], ARGV[i + 1]
  local id = redis.pcall('XADD', 'tickbus:{' .. ch .. '}:stream', 'MAXLEN', '~', maxlen, '*', 'payload', p)
  if type(id) == 'table' then
    out[#out + 1] = -1
    out[#out + 1] = tostring(id.err)
  else
    local n = redis.pcall('PUBLISH', ch, string.sub(p, 1, -2) .. ',"position":"' .. id .. '"}')
    if type(n) == 'table' then n = -1 end
    out[#out + 1] = n
    out[#out + 1] = id
  end
end
return out`;

/** The MAXLEN every message of the chunk shares, when HISTORY_MANY can carry the chunk. */
function sharedHistoryMaxLen(chunk: readonly PendingPublish[]): number | undefined {
  const first = chunk[0]?.stream;
  if (!first?.publish || first.maxLen === undefined || first.maxAgeMs !== undefined) return undefined;
  for (const p of chunk) {
    const s = p.stream;
    if (!s?.publish || s.maxLen !== first.maxLen || s.maxAgeMs !== undefined || s.key !== `tickbus:{${p.channel}}:stream`) return undefined;
  }
  return first.maxLen;
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
  readonly resolve: (receipt: PublishReceipt) => void;
  readonly reject: (error: Error) => void;
}

/** A receipt for a plain PUBLISH. */
function sent(receivers: number): PublishReceipt {
  return { status: 'sent', receivers, position: undefined };
}

/** The five script arguments of one message. */
function streamArgs(args: string[], channel: string, payload: string, stream: StreamWrite | undefined): void {
  if (!stream) {
    args.push(channel, payload, '', '', '');
    return;
  }
  args.push(
    stream.publish ? channel : '',
    payload,
    stream.key,
    stream.maxLen === undefined ? '' : String(stream.maxLen),
    // Trimmed by the publisher's clock: a skewed clock keeps history a little longer or shorter.
    stream.maxAgeMs === undefined ? '' : `${Date.now() - stream.maxAgeMs}-0`,
  );
}

/** Turns one STREAM_MANY reply into a receipt, or the error Redis gave. */
function streamReceipt(reply: unknown): PublishReceipt | Error {
  const [n, second] = reply as [number, string];
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

  constructor(options: RedisTransportOptions) {
    super(options, 'pub');
    this.#mode = options.coalescePublishes === false ? 'plain' : 'script';
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
      await this.client.sendCommand(['EVAL', 'return 1', '0']);
    } catch (error) {
      if (isErrorReply(error)) this.#mode = 'plain'; // NOPERM, scripting disabled, a proxy
    }
  }

  publish(channel: string, payload: string, stream?: StreamWrite): Promise<PublishReceipt> {
    // A durable append is one XADD: no script to batch it in (Redis runs a command faster
    // than a script), and node-redis pipelines what is issued together anyway. Every message
    // of a channel takes the same path, so a channel's order holds.
    if (stream !== undefined && !stream.publish && (stream.maxLen === undefined || stream.maxAgeMs === undefined)) return this.#append(stream, payload);
    if (this.#mode === 'plain') {
      if (stream) return this.#plainStream(channel, payload, stream);
      return this.client.publish(channel, payload).then(sent, this.#rethrow);
    }
    // Nothing queued or scripted ahead of it (order holds) and the connection is not busy:
    // send it now (a history message as a script of one), with no batching delay.
    if (this.#pending.length === 0 && this.#scriptsInFlight === 0 && this.#inFlight < DIRECT_IN_FLIGHT) {
      if (stream !== undefined) return new Promise<PublishReceipt>((resolve, reject) => this.#send([{ channel, payload, stream, resolve, reject }]));
      this.#inFlight++;
      return this.client.publish(channel, payload).then(this.#sentOne, this.#failedOne);
    }
    return new Promise<PublishReceipt>((resolve, reject) => {
      this.#pending.push({ channel, payload, stream, resolve, reject });
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
    if (this.#inFlight > 0 && this.client.isReady) await new Promise<void>((resolve) => this.#idle.push(resolve));
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
  };

  #send(chunk: PendingPublish[]): void {
    if (this.#mode === 'plain') {
      for (const p of chunk) this.publish(p.channel, p.payload, p.stream).then(p.resolve, p.reject);
      return;
    }
    const withStream = chunk.some((p) => p.stream !== undefined);
    if (chunk.length === 1 && !withStream) {
      const p = chunk[0] as PendingPublish;
      this.#inFlight++;
      this.client.publish(p.channel, p.payload).then(
        (receivers) => {
          this.#answered();
          p.resolve(sent(receivers));
        },
        (error: unknown) => {
          this.#answered();
          this.#fail(p, error);
        },
      );
      return;
    }
    const historyMaxLen = withStream ? sharedHistoryMaxLen(chunk) : undefined;
    let args: string[];
    if (historyMaxLen !== undefined) {
      args = ['EVAL', HISTORY_MANY, '0', String(historyMaxLen)];
      for (const p of chunk) args.push(p.channel, p.payload);
    } else {
      args = ['EVAL', withStream ? STREAM_MANY : PUBLISH_MANY, '0'];
      if (withStream) for (const p of chunk) streamArgs(args, p.channel, p.payload, p.stream);
      else for (const p of chunk) args.push(p.channel, p.payload);
    }
    this.#inFlight++;
    this.#scriptsInFlight++;
    this.client.sendCommand<unknown[]>(args).then(
      (replies) => {
        this.#scriptsInFlight--;
        for (let i = 0; i < chunk.length; i++) {
          const p = chunk[i] as PendingPublish;
          if (historyMaxLen !== undefined) {
            const receipt = streamReceipt([replies[2 * i], replies[2 * i + 1]]);
            if (receipt instanceof Error) this.#fail(p, receipt);
            else p.resolve(receipt);
            continue;
          }
          const reply = replies[i];
          if (withStream) {
            const receipt = streamReceipt(reply);
            if (receipt instanceof Error) this.#fail(p, receipt);
            else p.resolve(receipt);
          } else if (typeof reply === 'number') p.resolve(sent(reply));
          else this.#fail(p, new Error(String(reply)));
        }
        this.#answered();
      },
      (error: unknown) => {
        this.#scriptsInFlight--;
        if (isErrorReply(error)) {
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
    return this.client.sendCommand<string>(args).then(this.#appended, this.#failedOne);
  }

  readonly #appended = (position: string): PublishReceipt => {
    this.#answered();
    return { status: 'sent', receivers: 0, position };
  };

  /** Without scripts: XADD, then PUBLISH with the position; not atomic, but in order. */
  #plainStream(channel: string, payload: string, stream: StreamWrite): Promise<PublishReceipt> {
    const run = async (): Promise<PublishReceipt> => {
      const xadd = [stream.key];
      if (stream.maxLen !== undefined) xadd.push('MAXLEN', '~', String(stream.maxLen));
      const position = await this.client.sendCommand<string>(['XADD', ...xadd, '*', 'payload', payload]);
      if (stream.maxAgeMs !== undefined) await this.client.sendCommand(['XTRIM', stream.key, 'MINID', '~', `${Date.now() - stream.maxAgeMs}-0`]);
      const receivers = stream.publish ? await this.client.publish(channel, `${payload.slice(0, -1)},"position":"${position}"}`) : 0;
      return { status: 'sent', receivers, position };
    };
    const result = this.#plainChain.then(run, run).catch(this.#rethrow);
    this.#plainChain = result.catch(() => undefined);
    return result;
  }

  #fail(p: PendingPublish, error: unknown): void {
    const translated = this.translate(error);
    this.emit('publishFailed', translated);
    p.reject(translated);
  }
}

class RedisSubscribeLink extends RedisLink implements SubscribeLink {
  readonly #sink: MessageSink;
  readonly #exact = (message: string, channel: string) => this.#sink(channel, message, undefined);
  readonly #patternListeners = new Map<string, (message: string, channel: string) => void>();

  constructor(options: RedisTransportOptions, sink: MessageSink) {
    super(options, 'sub');
    this.#sink = sink;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    try {
      await this.client.subscribe([...channels], this.#exact);
    } catch (error) {
      throw this.translate(error);
    }
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    if (channels.length === 0) return;
    try {
      await this.client.unsubscribe([...channels], this.#exact);
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
        await this.client.pSubscribe(pattern, listener);
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
        await this.client.pUnsubscribe(pattern, listener);
      }
    } catch (error) {
      throw this.translate(error);
    }
  }
}

export class RedisTransport implements Transport {
  readonly kind = 'redis';
  readonly target: string;
  readonly options: RedisTransportOptions;

  constructor(options: RedisTransportOptions) {
    this.options = options;
    this.target = options.redis.display;
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
