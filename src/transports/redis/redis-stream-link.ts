// Stream commands for durable channels and history, on two connections: one for blocking
// reads (XREADGROUP … BLOCK), created on first use, and one for everything else, so that
// an acknowledgement or a claim never waits behind a read that is blocked for a second.
// close() destroys the blocking connection: a pending read ends at once, and whatever
// Redis handed it stays pending in the group for this consumer or another to take.
import { ClosedError } from '../../core/errors.ts';
import type { GroupPosition, StreamEntry, StreamInfo, StreamLink } from '../transport.ts';
import { RedisLink, isErrorReply, type RedisTransportOptions } from './redis-link.ts';

/** Raw RESP2 shape of one entry: [id, [field, value, …]] (fields are nil once trimmed). */
type RawEntry = [string, string[] | null];

const PAYLOAD_FIELD = 'payload';

function toEntry(raw: RawEntry): StreamEntry {
  const [id, fields] = raw;
  let payload: string | undefined;
  if (fields) {
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === PAYLOAD_FIELD) {
        payload = fields[i + 1];
        break;
      }
    }
  }
  return { id, payload };
}

// XADD to the dead-letter stream and XACK in one step: a message is either still pending
// or dead-lettered, never both and never neither.
const DEAD_LETTER = `redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
return redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])`;

// Reads the letter, appends its payload to the stream, deletes the letter: one step.
const REQUEUE = `local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local f = e[1][2]
for i = 1, #f, 2 do
  if f[i] == 'payload' then
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'payload', f[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[1])
    return id
  end
end
return false`;

class BlockingReader extends RedisLink {
  constructor(options: RedisTransportOptions) {
    super(options, 'xread');
  }

  read(args: string[], key: string): Promise<unknown> {
    return this.conn.send(args, key).catch((error: unknown) => {
      throw this.translate(error);
    });
  }

  /** Ends a blocked read now instead of waiting for its timeout. */
  destroy(): void {
    // Also while it is still connecting (a cluster client opens a connection per node).
    this.conn.destroy();
  }
}

export class RedisStreamLink extends RedisLink implements StreamLink {
  readonly #options: RedisTransportOptions;
  #reader: BlockingReader | undefined;
  #readerConnecting: Promise<void> | undefined;
  #closed = false;

  constructor(options: RedisTransportOptions) {
    super(options, 'stream');
    this.#options = options;
  }

  /** One command, routed by `key` (its stream, on a cluster). */
  async #command<T>(args: string[], key: string): Promise<T> {
    try {
      return await this.conn.send<T>(args, key);
    } catch (error) {
      throw this.translate(error);
    }
  }

  async ensureGroup(key: string, group: string, start: string): Promise<boolean> {
    try {
      await this.conn.send(['XGROUP', 'CREATE', key, group, start, 'MKSTREAM'], key);
      return true;
    } catch (error) {
      if (isErrorReply(error) && String((error as Error).message).startsWith('BUSYGROUP')) return false;
      throw this.translate(error);
    }
  }

  async readGroup(key: string, group: string, consumer: string, from: string, count: number, blockMs: number): Promise<StreamEntry[]> {
    const reader = await this.#blockingReader();
    const args = ['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(count)];
    // Only new entries may block: a read of this consumer's own pending ones answers at once.
    if (from === '>' && blockMs > 0) args.push('BLOCK', String(blockMs));
    args.push('STREAMS', key, from);
    // node-redis hands the reply back as {key: entries} (a map), or as [[key, entries]].
    const reply = (await reader.read(args, key)) as Array<[string, RawEntry[]]> | Record<string, RawEntry[]> | null;
    if (!reply) return [];
    const entries = Array.isArray(reply) ? reply[0]?.[1] : reply[key];
    return (entries ?? []).map(toEntry);
  }

  ack(key: string, group: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return this.#command<number>(['XACK', key, group, ...ids], key);
  }

  async claim(key: string, group: string, consumer: string, minIdleMs: number, cursor: string, count: number): Promise<{ cursor: string; entries: StreamEntry[]; deleted: string[] }> {
    const [next, raw, deleted] = await this.#command<[string, RawEntry[], string[] | undefined]>(['XAUTOCLAIM', key, group, consumer, String(minIdleMs), cursor, 'COUNT', String(count)], key);
    return { cursor: next, entries: raw.map(toEntry), deleted: deleted ?? [] };
  }

  async reclaim(key: string, group: string, consumer: string, id: string): Promise<StreamEntry | undefined> {
    const raw = await this.#command<RawEntry[]>(['XCLAIM', key, group, consumer, '0', id], key);
    return raw[0] ? toEntry(raw[0]) : undefined;
  }

  async touch(key: string, group: string, consumer: string, id: string): Promise<void> {
    await this.#command(['XCLAIM', key, group, consumer, '0', id, 'JUSTID'], key);
  }

  async deliveries(key: string, group: string, ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const replies = await Promise.all(ids.map((id) => this.#command<Array<[string, string, number, number]>>(['XPENDING', key, group, id, id, '1'], key)));
    for (const reply of replies) {
      const row = reply[0];
      if (row) out.set(row[0], Number(row[3]));
    }
    return out;
  }

  async deadLetter(key: string, group: string, id: string, deadKey: string, fields: Readonly<Record<string, string>>, maxLen: number): Promise<void> {
    const flat = Object.entries(fields).flat();
    await this.#command(['EVAL', DEAD_LETTER, '2', key, deadKey, String(maxLen), group, id, ...flat], key);
  }

  async range(key: string, startId: string, count: number, exclusive: boolean): Promise<StreamEntry[]> {
    const raw = await this.#command<RawEntry[]>(['XRANGE', key, exclusive ? `(${startId}` : startId, '+', 'COUNT', String(count)], key);
    return raw.map(toEntry);
  }

  async rangeFields(key: string, startId: string, count: number): Promise<Array<{ id: string; fields: Record<string, string> }>> {
    const raw = await this.#command<RawEntry[]>(['XRANGE', key, startId, '+', 'COUNT', String(count)], key);
    return raw.map(([id, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; flat && i < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
      return { id, fields };
    });
  }

  async requeue(deadKey: string, key: string, id: string, maxLen: number): Promise<string | undefined> {
    const reply = await this.#command<string | null>(['EVAL', REQUEUE, '2', deadKey, key, id, String(maxLen)], deadKey);
    return reply ?? undefined;
  }

  async latest(key: string): Promise<StreamEntry | undefined> {
    const raw = await this.#command<RawEntry[]>(['XREVRANGE', key, '+', '-', 'COUNT', '1'], key);
    return raw[0] ? toEntry(raw[0]) : undefined;
  }

  async info(key: string): Promise<StreamInfo | undefined> {
    let reply: unknown[] | Record<string, unknown>;
    try {
      reply = await this.conn.send<unknown[] | Record<string, unknown>>(['XINFO', 'STREAM', key], key);
    } catch (error) {
      if (isErrorReply(error) && /no such key/i.test(String((error as Error).message))) return undefined;
      throw this.translate(error);
    }
    // A map reply (an object), or a flat list of field, value.
    const fields = new Map<string, string | number | RawEntry | null>();
    if (Array.isArray(reply)) for (let i = 0; i < reply.length; i += 2) fields.set(String(reply[i]), reply[i + 1] as string);
    else for (const [k, v] of Object.entries(reply)) fields.set(k, v as string);
    const first = fields.get('first-entry') as RawEntry | null | undefined;
    return {
      length: Number(fields.get('length')),
      firstId: first ? first[0] : undefined,
      lastId: fields.get('last-generated-id') as string,
      maxDeletedId: (fields.get('max-deleted-entry-id') as string | undefined) ?? '0-0',
      entriesAdded: Number(fields.get('entries-added') ?? 0),
    };
  }

  async groupPosition(key: string, group: string): Promise<GroupPosition | undefined> {
    // A list of maps (objects), or of flat field/value lists.
    const groups = await this.#command<Array<Record<string, unknown> | unknown[]>>(['XINFO', 'GROUPS', key], key);
    for (const g of groups) {
      const fields = Array.isArray(g) ? Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [String(g[2 * i]), g[2 * i + 1]])) : g;
      if (fields.name === group) {
        const read = fields['entries-read'];
        return { lastDeliveredId: fields['last-delivered-id'] as string, entriesRead: read === null || read === undefined ? undefined : Number(read) };
      }
    }
    return undefined;
  }

  abortReads(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    this.#readerConnecting = undefined;
    reader?.destroy();
  }

  override async close(): Promise<void> {
    this.#closed = true;
    this.abortReads();
    await super.close();
  }

  async #blockingReader(): Promise<BlockingReader> {
    if (this.#closed) throw new ClosedError('stream link');
    if (!this.#reader) {
      const reader = new BlockingReader(this.#options);
      // Its failures surface on the read itself; the command connection reports the rest.
      reader.on('error', () => undefined);
      this.#reader = reader;
      this.#readerConnecting = reader.connect().catch((error: unknown) => {
        this.#reader = undefined;
        this.#readerConnecting = undefined;
        throw error;
      });
    }
    await this.#readerConnecting;
    return this.#reader;
  }
}
