// The flusher's timing, with members that record when they were flushed: adaptive timing
// flushes a quiet gateway's update on the next turn, spaces flushes by their measured cost
// under load (never past batchMs), and interval timing keeps its period.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Flusher, type FlusherOptions } from './flush.ts';
import type { Room, RoomMember } from './rooms.ts';

/** A member with one queued update after each push; its flush may take `costMs` of CPU time. */
class Member implements RoomMember {
  queued = 0;
  readonly flushedAt: number[] = [];
  costMs = 0;
  push(): boolean {
    this.queued++;
    return true;
  }
  canShare(): boolean {
    return false;
  }
  actsFor(): boolean {
    return false;
  }
  flush(): void {
    this.flushedAt.push(performance.now());
    this.queued = 0;
    // Busy for costMs of CPU time (what the flusher measures), as a flush writing to many
    // sockets is; on a loaded machine that takes longer by the clock.
    const start = process.cpuUsage();
    for (;;) {
      const spent = process.cpuUsage(start);
      if ((spent.user + spent.system) / 1000 >= this.costMs) break;
    }
  }
}

function flusher(options: Partial<FlusherOptions>): Flusher {
  const rooms = new Map<string, Room>();
  return new Flusher({ batchMs: 250, timing: 'adaptive', flushBudget: 0.2, ...options }, () => rooms);
}

const turn = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(1);
  }
}

/** One update at a time, each waited for until it was flushed: `times` flushes. */
async function flushEach(f: Flusher, m: Member, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    m.push();
    f.markDirty(m);
    const n = m.flushedAt.length;
    await until(() => m.flushedAt.length > n);
  }
}

describe('Flusher', () => {
  it('adaptive: an update to a quiet gateway is flushed on the next turn, with what else came in that turn', async () => {
    const f = flusher({});
    f.start();
    const a = new Member();
    const b = new Member();
    a.push();
    f.markDirty(a);
    b.push();
    f.markDirty(b);
    assert.equal(a.flushedAt.length, 0, 'not within the turn itself');
    await turn();
    await turn();
    assert.deepEqual([a.flushedAt.length, b.flushedAt.length], [1, 1]);
    f.stop();
  });

  it('adaptive: under load, flushes are spaced so that they take at most the budget, and never more than batchMs apart', async () => {
    const f = flusher({ batchMs: 250, flushBudget: 0.2 });
    const m = new Member();
    m.costMs = 10;
    // Each flush takes 10 ms (more on a loaded machine): spaced by 40 ms (4 x its cost) once the smoothed cost has caught up.
    await flushEach(f, m, 12);
    assert.ok(f.adaptiveGapMs > 30 && f.adaptiveGapMs <= 250, `gap ${f.adaptiveGapMs} ms after 10 ms flushes at a 0.2 budget`);
    const last = m.flushedAt.at(-1) ?? 0;
    const gap = f.adaptiveGapMs;
    m.push();
    f.markDirty(m);
    await until(() => m.flushedAt.length === 13);
    const waited = (m.flushedAt.at(-1) ?? 0) - last;
    // From one flush's start to the next: its 10 ms, then the gap.
    assert.ok(waited >= 10 + gap - 1, `the next flush waited ${waited.toFixed(1)} ms`);

    const capped = flusher({ batchMs: 30, flushBudget: 0.05 });
    m.costMs = 10;
    await flushEach(capped, m, 12);
    assert.equal(capped.adaptiveGapMs, 30, 'the gap is capped at batchMs (10 ms at 5 % would be 190 ms)');
    f.stop();
    capped.stop();
  });

  it('adaptive: cheap flushes keep the gap near zero, so light load is never held back', async () => {
    const f = flusher({});
    const m = new Member();
    await flushEach(f, m, 20);
    assert.ok(f.adaptiveGapMs < 5, `gap ${f.adaptiveGapMs} ms for flushes of next to nothing`);
    f.stop();
  });

  it('interval: flushes every batchMs whatever the load, and not on demand', async () => {
    const f = flusher({ batchMs: 40, timing: 'interval' });
    const m = new Member();
    m.push();
    f.markDirty(m);
    await turn();
    await turn();
    assert.equal(m.flushedAt.length, 0, 'waits for the interval');
    f.start();
    await until(() => m.flushedAt.length === 1);
    f.stop();
  });

  it('stops: nothing is flushed after stop()', async () => {
    const f = flusher({});
    const m = new Member();
    m.push();
    f.markDirty(m);
    f.stop();
    await sleep(20);
    assert.equal(m.flushedAt.length, 0);
  });
});
