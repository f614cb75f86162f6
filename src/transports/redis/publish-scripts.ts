// The publish path's Lua scripts: their text, the EVAL call that carries a chunk of
// messages (which script, its keys, its arguments) and what each message's reply means.
// Pure: it sends nothing; RedisPublishLink (redis-publish-link.ts) does. Key names in the
// scripts come from core/keys.ts (luaChannelKey), like every other key of the library.
import type { PublishReceipt, StreamWrite } from '../transport.ts';
import { FencedError } from '../../core/errors.ts';
import { luaChannelKey, streamKey } from '../../core/keys.ts';

/** What a script needs of a message. */
export interface ScriptMessage {
  readonly channel: string;
  readonly payload: string;
  readonly stream: StreamWrite | undefined;
  /** SPUBLISH on a cluster. */
  readonly sharded: boolean;
}

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
 * command, '1' when fenced; then channel, payload (and the token, when fenced: '' for the same
 * token as the channel's message before it in the chunk) a message.
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
local tokens = {}
local streams = {}
for i = 4, #ARGV, step do
  local ch, p = ARGV[i], ARGV[i + 1]
  local fenced = false
  if step == 3 then
    -- One GET a channel per chunk while its token holds: a script runs alone, so the answer
    -- holds. (Keyed by the channel, not by a string built a message: Lua interns every
    -- string it builds.)
    local token = ARGV[i + 2]
    if token == '' then token = tokens[ch] else tokens[ch] = token end
    if held[ch] ~= token then
      if redis.call('GET', ${luaChannelKey('ch', 'owner')}) == token then held[ch] = token else fenced = true end
    end
  end
  if fenced then
    out[#out + 1] = -2
    out[#out + 1] = 'FENCED'
  else
    local key = streams[ch]
    if key == nil then
      key = ${luaChannelKey('ch', 'stream')}
      streams[ch] = key
    end
    local id = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, '*', 'payload', p)
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

/**
 * Stream writes seen to name their channel's standard stream key, by the channel: the
 * publisher keeps one frozen write a channel, so the key is built and compared once, not
 * once a message (it was 2 % of the broker's replay).
 */
const STANDARD_KEY = new WeakMap<StreamWrite, string>();

function hasStandardKey(s: StreamWrite, channel: string): boolean {
  if (STANDARD_KEY.get(s) === channel) return true;
  if (s.key !== streamKey(channel)) return false;
  if (Object.isFrozen(s)) STANDARD_KEY.set(s, channel);
  return true;
}

/** The MAXLEN every message of the chunk shares, when HISTORY_MANY can carry the chunk. */
function sharedHistoryMaxLen(chunk: readonly ScriptMessage[]): number | undefined {
  const first = chunk[0];
  const s0 = first?.stream;
  if (!first || !s0?.publish || s0.maxLen === undefined || s0.maxAgeMs !== undefined) return undefined;
  const fenced = s0.fence !== undefined;
  for (const p of chunk) {
    const s = p.stream;
    if (!s?.publish || s.maxLen !== s0.maxLen || s.maxAgeMs !== undefined || p.sharded !== first.sharded || (s.fence !== undefined) !== fenced || !hasStandardKey(s, p.channel)) return undefined;
  }
  return s0.maxLen;
}

/** The seven script arguments of one message. */
function streamArgs(args: string[], p: ScriptMessage): void {
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

/**
 * On a cluster the publish scripts may touch keys (and shard channels) of several slots,
 * all served by the node they run on (Redis 7 script flags).
 */
const CROSS_SLOT = '#!lua flags=allow-cross-slot-keys\n';

/** A script's per-message error that means "not on this node": send it again, routed. */
export const MISPLACED = /non local key|MOVED|ASK|CROSSSLOT|TRYAGAIN|CLUSTERDOWN|not served/i;

/** Replies that mean "not now" rather than "scripts are refused". */
export const NOT_READY_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|MOVED|ASK)\b/;

/** A receipt for a plain PUBLISH. */
export function sent(receivers: number): PublishReceipt {
  return { status: 'sent', receivers, position: undefined };
}

/** One EVAL of a chunk: its command, the key that routes it, and which script it runs. */
export interface ScriptCall {
  readonly args: string[];
  /** On a cluster, the key the call is routed by; undefined on one Redis. */
  readonly route: string | undefined;
  /** Which script the call runs, which says how its replies read. */
  readonly script: 'history' | 'stream' | 'publish';
}

/** The script call that publishes a chunk (on a cluster, one slot's messages). */
export function scriptCall(chunk: readonly ScriptMessage[], clustered: boolean): ScriptCall {
  const first = chunk[0] as ScriptMessage;
  const withStream = chunk.some((p) => p.stream !== undefined);
  // On a cluster the chunk is one slot's: its first stream key (or channel) routes it. A
  // script that writes a stream or SPUBLISHes declares it, so that while the slot migrates
  // Redis sends the script (ASK) to whichever node holds the stream.
  const route = clustered ? (first.stream?.key ?? first.channel) : undefined;
  const keys = route === undefined || !(withStream || first.sharded) ? ['0'] : ['1', route];
  const historyMaxLen = withStream ? sharedHistoryMaxLen(chunk) : undefined;
  const flags = clustered ? CROSS_SLOT : '';
  if (historyMaxLen !== undefined) {
    const fenced = first.stream?.fence !== undefined;
    const args = ['EVAL', flags + HISTORY_MANY, ...keys, String(historyMaxLen), first.sharded ? 'SPUBLISH' : 'PUBLISH', fenced ? '1' : '0'];
    if (fenced) {
      // A token goes once a channel and chunk ('' after: the same as before), not with every
      // message: it is longer than most of what else a message carries besides its payload.
      const sent = new Map<string, string>();
      for (const p of chunk) {
        const token = p.stream?.fence as string;
        const same = sent.get(p.channel) === token;
        if (!same) sent.set(p.channel, token);
        args.push(p.channel, p.payload, same ? '' : token);
      }
    } else for (const p of chunk) args.push(p.channel, p.payload);
    return { args, route, script: 'history' };
  }
  if (withStream) {
    const args = ['EVAL', flags + STREAM_MANY, ...keys];
    for (const p of chunk) streamArgs(args, p);
    return { args, route, script: 'stream' };
  }
  const args = ['EVAL', flags + PUBLISH_MANY, ...keys, first.sharded ? 'SPUBLISH' : 'PUBLISH'];
  for (const p of chunk) args.push(p.channel, p.payload);
  return { args, route, script: 'publish' };
}

/** The receipt of the call's `i`th message from the call's replies, or the error Redis gave. */
export function scriptReceipt(call: ScriptCall, replies: readonly unknown[], i: number, channel: string): PublishReceipt | Error {
  if (call.script === 'history') return streamReceipt([replies[2 * i], replies[2 * i + 1]], channel);
  const reply = replies[i];
  if (call.script === 'stream') return streamReceipt(reply, channel);
  return typeof reply === 'number' ? sent(reply) : new Error(String(reply));
}
