// The publisher's fallback buffer (seed 004): while Redis is unreachable, messages wait
// here, bounded by count and by bytes, and are sent in order once it is back. Optionally
// every buffered message is also written to an append-only journal file, so that a
// publisher that crashes during an outage sends them when it starts again.
//
// The journal is one JSON object a line: {"q":seq,"c":channel,"p":payload,"s":stream} when
// a message is buffered, {"done":seq} when it was sent or dropped. Loading replays the lines
// and keeps what is not done; the file is emptied whenever the buffer is.
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { BufferFullError, ConfigError } from '../core/errors.ts';
import type { Outbound, StreamWrite } from '../transports/transport.ts';

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'reject';

export interface FallbackOptions {
  /** Messages held at most. @default 10000 */
  maxMessages?: number;
  /** Payload bytes (UTF-16 units, a close bound) held at most. @default 16 MiB */
  maxBytes?: number;
  /** What a full buffer does with one more message. @default 'drop-oldest' */
  overflow?: OverflowPolicy;
  /** An append-only journal file: buffered messages survive a crash of the publisher. */
  file?: string;
  /** fsync the journal after each write (survives a power loss too, at a cost). @default false */
  fsync?: boolean;
}

export interface ResolvedFallback {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly overflow: OverflowPolicy;
  readonly file: string | undefined;
  readonly fsync: boolean;
}

export function resolveFallback(options: FallbackOptions | boolean | undefined): ResolvedFallback | undefined {
  if (!options) return undefined;
  const o = options === true ? {} : options;
  const maxMessages = o.maxMessages ?? 10_000;
  const maxBytes = o.maxBytes ?? 16 * 1024 * 1024;
  for (const [name, value] of [['maxMessages', maxMessages], ['maxBytes', maxBytes]] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(`fallback.${name} must be a positive integer, got ${String(value)}.`);
  }
  const overflow = o.overflow ?? 'drop-oldest';
  if (!['drop-oldest', 'drop-newest', 'reject'].includes(overflow)) {
    throw new ConfigError(`fallback.overflow must be 'drop-oldest', 'drop-newest' or 'reject', got "${String(overflow)}".`);
  }
  return Object.freeze({ maxMessages, maxBytes, overflow, file: o.file, fsync: o.fsync ?? false });
}

export interface Buffered extends Outbound {
  readonly seq: number;
}

/** What push() did. `dropped` names a message that was given up to make room (or this one). */
export interface PushResult {
  readonly kept: boolean;
  readonly dropped: Buffered | undefined;
}

export class FallbackBuffer {
  readonly options: ResolvedFallback;
  /** Ordered by seq. */
  #items: Buffered[] = [];
  #head = 0;
  #bytes = 0;
  #fd: number | undefined;
  #nextSeq = 1;

  constructor(options: ResolvedFallback) {
    this.options = options;
    if (options.file) this.#openJournal(options.file);
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** A sequence number for a message about to be sent, so that a failed one can be put back in its place. */
  nextSeq(): number {
    return this.#nextSeq++;
  }

  /** Keeps a message, applying the overflow policy when full. Throws BufferFullError under 'reject'. */
  push(message: Outbound, seq: number = this.nextSeq()): PushResult {
    const item: Buffered = { seq, channel: message.channel, payload: message.payload, stream: message.stream };
    const size = item.payload.length;
    let dropped: Buffered | undefined;
    if (this.size >= this.options.maxMessages || this.#bytes + size > this.options.maxBytes) {
      if (this.options.overflow === 'reject') {
        throw new BufferFullError(
          `The fallback buffer is full (${this.size} messages, ${this.#bytes} bytes) while Redis is unreachable; "${message.channel}" was not kept. Raise fallback.maxMessages / maxBytes, or choose overflow 'drop-oldest'.`,
          message.channel,
        );
      }
      if (this.options.overflow === 'drop-newest' || this.size === 0) return { kept: false, dropped: item };
      dropped = this.#shift();
      if (dropped) this.#journal({ done: dropped.seq });
      // One large message may need more than one old one gone: keep dropping the oldest.
      while (this.size > 0 && this.#bytes + size > this.options.maxBytes) {
        const more = this.#shift();
        if (more) this.#journal({ done: more.seq });
      }
      if (this.#bytes + size > this.options.maxBytes) return { kept: false, dropped: item };
    }
    this.#insert(item);
    this.#journal({ q: item.seq, c: item.channel, p: item.payload, s: item.stream });
    return { kept: true, dropped };
  }

  /** The oldest messages, up to `count`, without removing them. */
  peek(count: number): Buffered[] {
    return this.#items.slice(this.#head, this.#head + count);
  }

  /** Removes messages that were sent. */
  remove(sent: readonly Buffered[]): void {
    if (sent.length === 0) return;
    const done = new Set(sent.map((m) => m.seq));
    const rest = this.#items.slice(this.#head).filter((m) => !done.has(m.seq));
    this.#items = rest;
    this.#head = 0;
    this.#bytes = rest.reduce((n, m) => n + m.payload.length, 0);
    for (const m of sent) this.#journal({ done: m.seq });
    if (this.size === 0) this.#truncate();
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #shift(): Buffered | undefined {
    if (this.size === 0) return undefined;
    const item = this.#items[this.#head] as Buffered;
    this.#head++;
    this.#bytes -= item.payload.length;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** In seq order: a message that failed in flight goes back before those buffered after it. */
  #insert(item: Buffered): void {
    let i = this.#items.length;
    while (i > this.#head && (this.#items[i - 1] as Buffered).seq > item.seq) i--;
    this.#items.splice(i, 0, item);
    this.#bytes += item.payload.length;
  }

  #openJournal(file: string): void {
    if (existsSync(file)) {
      const pending = new Map<number, Buffered>();
      const lines = readFileSync(file, 'utf8').split('\n');
      for (const [n, line] of lines.entries()) {
        if (line.trim() === '') continue;
        let rec: { q?: number; c?: string; p?: string; s?: StreamWrite; done?: number };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          // A line cut short by the crash itself: the message it held was never confirmed.
          if (n === lines.length - 1 || lines.slice(n + 1).every((l) => l.trim() === '')) continue;
          throw new ConfigError(`The fallback journal ${file} is damaged at line ${n + 1}; move it aside to start empty.`);
        }
        if (typeof rec.done === 'number') pending.delete(rec.done);
        else if (typeof rec.q === 'number' && typeof rec.c === 'string' && typeof rec.p === 'string') pending.set(rec.q, { seq: rec.q, channel: rec.c, payload: rec.p, stream: rec.s });
      }
      const restored = [...pending.values()].sort((a, b) => a.seq - b.seq);
      // Renumbered from 1, and the journal rewritten to hold just them.
      closeSync(openSync(file, 'w'));
      this.#fd = openSync(file, 'a');
      for (const m of restored) {
        const item = { ...m, seq: this.#nextSeq++ };
        this.#insert(item);
        this.#journal({ q: item.seq, c: item.channel, p: item.payload, s: item.stream });
      }
      return;
    }
    this.#fd = openSync(file, 'a');
  }

  #journal(record: object): void {
    if (this.#fd === undefined) return;
    writeSync(this.#fd, `${JSON.stringify(record)}\n`);
    if (this.options.fsync) fsyncSync(this.#fd);
  }

  #truncate(): void {
    if (this.#fd === undefined) return;
    ftruncateSync(this.#fd, 0);
  }
}
