import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeliveryLanes, type LaneHooks } from './delivery-lane.ts';

interface Msg {
  key: string;
  n: number;
}

/** Hooks that record what they are told. */
function recorder<M>(): LaneHooks<M> & { errors: Array<[unknown, M]>; drops: M[] } {
  const errors: Array<[unknown, M]> = [];
  const drops: M[] = [];
  return { errors, drops, onError: (error, message) => errors.push([error, message]), onDrop: (message) => drops.push(message) };
}

/** A promise with its resolve and reject exposed. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets queued promise callbacks and timers run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('DeliveryLanes: synchronous handlers', () => {
  it('delivers at once, in order, and keeps no lane', () => {
    const seen: number[] = [];
    const hooks = recorder<number>();
    const lanes = new DeliveryLanes<number>((n) => void seen.push(n), hooks, 10);
    for (let i = 0; i < 100; i++) lanes.deliver(i % 2 === 0 ? 'A' : 'B', i);
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(lanes.pending, 0);
    assert.deepEqual(hooks.errors, []);
    assert.deepEqual(hooks.drops, []);
  });

  it('reports a throw and goes on with the next message', () => {
    const seen: number[] = [];
    const hooks = recorder<number>();
    const boom = new Error('boom');
    const lanes = new DeliveryLanes<number>(
      (n) => {
        if (n === 2) throw boom;
        seen.push(n);
      },
      hooks,
      10,
    );
    for (const n of [1, 2, 3]) lanes.deliver('A', n);
    assert.deepEqual(seen, [1, 3]);
    assert.deepEqual(hooks.errors, [[boom, 2]]);
  });

  it('treats a non-thenable object as a synchronous result', () => {
    const seen: number[] = [];
    const lanes = new DeliveryLanes<number>((n) => (seen.push(n), { then: 'not a function' }), recorder(), 10);
    lanes.deliver('A', 1);
    lanes.deliver('A', 2);
    assert.deepEqual(seen, [1, 2]);
    assert.equal(lanes.pending, 0);
  });
});

describe('DeliveryLanes: asynchronous handlers', () => {
  it('keeps the order of one key, one message at a time', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('A', 'B', 'C'), fc.nat(3)), { minLength: 1, maxLength: 40 }), async (plan) => {
        const seen = new Map<string, number[]>();
        const inFlight = new Map<string, number>();
        let maxInFlightPerKey = 0;
        const hooks = recorder<Msg>();
        const lanes = new DeliveryLanes<Msg>(
          async (m) => {
            const now = (inFlight.get(m.key) ?? 0) + 1;
            inFlight.set(m.key, now);
            maxInFlightPerKey = Math.max(maxInFlightPerKey, now);
            const delay = plan[m.n]?.[1] ?? 0;
            for (let i = 0; i < delay; i++) await settle();
            seen.set(m.key, [...(seen.get(m.key) ?? []), m.n]);
            inFlight.set(m.key, now - 1);
          },
          hooks,
          1000,
        );
        plan.forEach(([key], n) => lanes.deliver(key, { key, n }));
        for (let i = 0; i < 4 * plan.length + 4 && lanes.pending + [...inFlight.values()].reduce((a, b) => a + b, 0) > 0; i++) await settle();
        assert.equal(maxInFlightPerKey, 1, 'one message of a key at a time');
        for (const key of ['A', 'B', 'C']) {
          const expected = plan.flatMap(([k], n) => (k === key ? [n] : []));
          assert.deepEqual(seen.get(key) ?? [], expected, `order of ${key}`);
        }
        assert.deepEqual(hooks.errors, []);
        assert.equal(lanes.pending, 0);
      }),
      { numRuns: 100 },
    );
  });

  it('does not let a stuck key stall the others', async () => {
    const gate = deferred();
    const seen: string[] = [];
    const lanes = new DeliveryLanes<Msg>(
      (m) => {
        seen.push(`${m.key}${m.n}`);
        return m.key === 'AAPL' && m.n === 1 ? gate.promise : undefined;
      },
      recorder(),
      10,
    );
    lanes.deliver('AAPL', { key: 'AAPL', n: 1 });
    lanes.deliver('AAPL', { key: 'AAPL', n: 2 });
    lanes.deliver('MSFT', { key: 'MSFT', n: 1 });
    lanes.deliver('MSFT', { key: 'MSFT', n: 2 });
    await settle();
    assert.deepEqual(seen, ['AAPL1', 'MSFT1', 'MSFT2']);
    assert.equal(lanes.pending, 1);
    gate.resolve();
    await settle();
    assert.deepEqual(seen, ['AAPL1', 'MSFT1', 'MSFT2', 'AAPL2']);
    assert.equal(lanes.pending, 0);
  });

  it('runs the next message only after the previous one settled', async () => {
    const gates = [deferred(), deferred()];
    const log: string[] = [];
    const lanes = new DeliveryLanes<number>(
      async (n) => {
        log.push(`start ${n}`);
        await gates[n]?.promise;
        log.push(`end ${n}`);
      },
      recorder(),
      10,
    );
    lanes.deliver('A', 0);
    lanes.deliver('A', 1);
    lanes.deliver('A', 2);
    await settle();
    assert.deepEqual(log, ['start 0']);
    gates[0]?.resolve();
    await settle();
    assert.deepEqual(log, ['start 0', 'end 0', 'start 1']);
    gates[1]?.resolve();
    await settle();
    assert.deepEqual(log, ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('reports rejections and sync throws of queued messages, then goes on', async () => {
    const gate = deferred();
    const seen: number[] = [];
    const hooks = recorder<number>();
    const rejected = new Error('rejected');
    const thrown = new Error('thrown');
    const lanes = new DeliveryLanes<number>(
      (n) => {
        seen.push(n);
        if (n === 1) return gate.promise;
        if (n === 2) throw thrown;
        if (n === 3) return Promise.reject(rejected);
        return undefined;
      },
      hooks,
      10,
    );
    for (const n of [1, 2, 3, 4]) lanes.deliver('A', n);
    assert.deepEqual(seen, [1]);
    gate.reject('first failed');
    await settle();
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.deepEqual(hooks.errors, [
      ['first failed', 1],
      [thrown, 2],
      [rejected, 3],
    ]);
    assert.equal(lanes.pending, 0);
  });

  it('accepts a thenable that is not a Promise', async () => {
    let release!: () => void;
    const thenable = { then: (onOk: () => void) => void (release = onOk) };
    const seen: number[] = [];
    const lanes = new DeliveryLanes<number>((n) => (seen.push(n), n === 1 ? thenable : undefined), recorder(), 10);
    lanes.deliver('A', 1);
    lanes.deliver('A', 2);
    assert.deepEqual(seen, [1]);
    release();
    await settle();
    assert.deepEqual(seen, [1, 2]);
  });
});

describe('DeliveryLanes: back-pressure and close', () => {
  it('drops the oldest queued message when a lane is full', async () => {
    const gate = deferred();
    const seen: number[] = [];
    const hooks = recorder<number>();
    const lanes = new DeliveryLanes<number>((n) => (seen.push(n), n === 1 ? gate.promise : undefined), hooks, 3);
    for (let n = 1; n <= 7; n++) lanes.deliver('A', n);
    assert.equal(lanes.pending, 3, 'at most maxPending wait');
    assert.deepEqual(hooks.drops, [2, 3, 4]);
    lanes.deliver('B', 100); // another key is unaffected
    assert.deepEqual(seen, [1, 100]);
    gate.resolve();
    await settle();
    assert.deepEqual(seen, [1, 100, 5, 6, 7], 'the newest messages win');
    assert.equal(lanes.pending, 0);
  });

  it('counts pending over every lane', async () => {
    const gate = deferred();
    const lanes = new DeliveryLanes<number>(() => gate.promise, recorder(), 100);
    for (const key of ['A', 'B', 'C']) for (let n = 0; n < 4; n++) lanes.deliver(key, n);
    assert.equal(lanes.pending, 9);
    gate.resolve();
    await settle();
    assert.equal(lanes.pending, 0);
  });

  it('close() discards queued messages and ignores later ones', async () => {
    const gate = deferred();
    const seen: number[] = [];
    const lanes = new DeliveryLanes<number>((n) => (seen.push(n), n === 1 ? gate.promise : undefined), recorder(), 10);
    lanes.deliver('A', 1);
    lanes.deliver('A', 2);
    lanes.deliver('A', 3);
    lanes.close();
    assert.equal(lanes.pending, 0);
    lanes.deliver('A', 4);
    lanes.deliver('B', 5);
    gate.resolve();
    await settle();
    assert.deepEqual(seen, [1]);
  });

  it('drains 50 000 queued synchronous messages without recursion', async () => {
    const gate = deferred();
    const count = 50_000;
    let handled = 0;
    let inOrder = true;
    const hooks = recorder<number>();
    const lanes = new DeliveryLanes<number>(
      (n) => {
        if (n !== handled) inOrder = false;
        handled++;
        return n === 0 ? gate.promise : undefined;
      },
      hooks,
      count,
    );
    for (let n = 0; n <= count; n++) lanes.deliver('A', n);
    assert.equal(lanes.pending, count);
    assert.deepEqual(hooks.drops, []);
    gate.resolve();
    await settle();
    assert.equal(handled, count + 1);
    assert.ok(inOrder, 'handled in order');
    assert.equal(lanes.pending, 0);
    assert.deepEqual(hooks.errors, []);
  });

  it('drains 50 000 queued messages that each go async', async () => {
    const gate = deferred();
    const count = 50_000;
    const seen: number[] = [];
    const lanes = new DeliveryLanes<number>((n) => (seen.push(n), n === 0 ? gate.promise : Promise.resolve()), recorder(), count);
    for (let n = 0; n <= count; n++) lanes.deliver('A', n);
    gate.resolve();
    for (let i = 0; i < 100 && seen.length <= count; i++) await settle();
    assert.equal(seen.length, count + 1);
    assert.ok(seen.every((n, i) => n === i), 'handled in order');
    assert.equal(lanes.pending, 0);
  });
});
