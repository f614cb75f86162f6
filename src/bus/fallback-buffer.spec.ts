import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FallbackBuffer, resolveFallback, type FallbackOptions } from './fallback-buffer.ts';
import { BufferFullError, ConfigError, ErrorCode } from '../core/errors.ts';

const msg = (n: number, size = 1) => ({ channel: `C${n}`, payload: String(n).padEnd(size, '.'), stream: undefined });
const buffer = (o: FallbackOptions = {}) => new FallbackBuffer(resolveFallback(o) as NonNullable<ReturnType<typeof resolveFallback>>);
const channels = (b: FallbackBuffer) => b.peek(1_000_000).map((m) => m.channel);

function tempFile(): { file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tickbus-fallback-'));
  return { file: join(dir, 'journal.ndjson'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('fallback buffer', () => {
  it('keeps messages in order and hands them back oldest first', () => {
    const b = buffer();
    for (let n = 0; n < 5; n++) assert.deepEqual(b.push(msg(n)), { kept: true, dropped: undefined });
    assert.equal(b.size, 5);
    assert.deepEqual(channels(b), ['C0', 'C1', 'C2', 'C3', 'C4']);
    b.remove(b.peek(2));
    assert.deepEqual(channels(b), ['C2', 'C3', 'C4']);
  });

  it('drop-oldest gives up the oldest to make room, and says which', () => {
    const b = buffer({ maxMessages: 3 });
    for (let n = 0; n < 3; n++) b.push(msg(n));
    const r = b.push(msg(3));
    assert.equal(r.kept, true);
    assert.equal(r.dropped?.channel, 'C0');
    assert.deepEqual(channels(b), ['C1', 'C2', 'C3']);
  });

  it('drop-newest keeps what it has and refuses the new one', () => {
    const b = buffer({ maxMessages: 2, overflow: 'drop-newest' });
    b.push(msg(0));
    b.push(msg(1));
    const r = b.push(msg(2));
    assert.equal(r.kept, false);
    assert.equal(r.dropped?.channel, 'C2');
    assert.deepEqual(channels(b), ['C0', 'C1']);
  });

  it('reject throws a typed error and keeps nothing new', () => {
    const b = buffer({ maxMessages: 1, overflow: 'reject' });
    b.push(msg(0));
    assert.throws(
      () => b.push(msg(1)),
      (e: unknown) => e instanceof BufferFullError && e.code === ErrorCode.BufferFull && /Raise fallback.maxMessages/.test(e.message),
    );
    assert.deepEqual(channels(b), ['C0']);
  });

  it('bounds bytes as well as count, dropping as many old ones as one large message needs', () => {
    const b = buffer({ maxBytes: 100 });
    for (let n = 0; n < 10; n++) b.push(msg(n, 10));
    assert.equal(b.bytes, 100);
    b.push(msg(10, 35));
    assert.ok(b.bytes <= 100);
    assert.deepEqual(channels(b), ['C4', 'C5', 'C6', 'C7', 'C8', 'C9', 'C10']);
    // Larger than the whole buffer: not kept at all.
    const r = b.push(msg(11, 101));
    assert.equal(r.kept, false);
  });

  it('puts a message that failed in flight back in its place by sequence number', () => {
    const b = buffer();
    const early = b.nextSeq();
    b.push(msg(1));
    b.push(msg(2));
    b.push(msg(0), early);
    assert.deepEqual(channels(b), ['C0', 'C1', 'C2']);
  });

  it('never exceeds its bounds, whatever arrives (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 300 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 50, max: 400 }), (sizes, maxMessages, maxBytes) => {
        const b = buffer({ maxMessages, maxBytes });
        sizes.forEach((s, n) => b.push(msg(n, s)));
        assert.ok(b.size <= maxMessages);
        assert.ok(b.bytes <= maxBytes);
        const seqs = b.peek(1_000).map((m) => m.seq);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
      }),
    );
  });

  it('refuses bad options with a ConfigError', () => {
    assert.throws(() => resolveFallback({ maxMessages: 0 }), ConfigError);
    assert.throws(() => resolveFallback({ maxBytes: 1.5 }), ConfigError);
    assert.throws(() => resolveFallback({ overflow: 'drop-all' as never }), ConfigError);
    assert.equal(resolveFallback(false), undefined);
    assert.equal(resolveFallback(true)?.overflow, 'drop-oldest');
  });
});

describe('fallback journal', () => {
  it('restores what was buffered and not sent, in order, after a crash', () => {
    const { file, done } = tempFile();
    try {
      const before = buffer({ file });
      for (let n = 0; n < 5; n++) before.push(msg(n));
      before.remove(before.peek(2)); // C0, C1 sent
      // No close(): the process died.
      const after = buffer({ file });
      assert.deepEqual(channels(after), ['C2', 'C3', 'C4']);
      after.close();
    } finally {
      done();
    }
  });

  it('empties the file when the buffer drains', () => {
    const { file, done } = tempFile();
    try {
      const b = buffer({ file });
      for (let n = 0; n < 3; n++) b.push(msg(n));
      assert.ok(readFileSync(file, 'utf8').length > 0);
      b.remove(b.peek(3));
      assert.equal(readFileSync(file, 'utf8'), '');
      b.push(msg(9));
      b.close();
      assert.deepEqual(channels(buffer({ file })), ['C9'], 'written after the truncation, at the start of the file');
    } finally {
      done();
    }
  });

  it('ignores a last line cut short by the crash, and refuses a damaged file with advice', () => {
    const { file, done } = tempFile();
    try {
      const b = buffer({ file });
      b.push(msg(0));
      b.close();
      appendFileSync(file, '{"q":2,"c":"C1","p":"1');
      assert.deepEqual(channels(buffer({ file })), ['C0']);
      writeFileSync(file, 'garbage\n{"q":1,"c":"C0","p":"0"}\n');
      assert.throws(() => buffer({ file }), (e: unknown) => e instanceof ConfigError && /move it aside/.test(e.message));
    } finally {
      done();
    }
  });

  it('remembers drops, so a dropped message is not resurrected', () => {
    const { file, done } = tempFile();
    try {
      const b = buffer({ file, maxMessages: 2 });
      for (let n = 0; n < 4; n++) b.push(msg(n));
      b.close();
      assert.deepEqual(channels(buffer({ file, maxMessages: 2 })), ['C2', 'C3']);
    } finally {
      done();
    }
  });
});
