import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SubscriptionTable, type SubscriptionKind } from './subscription-table.ts';

describe('SubscriptionTable', () => {
  it('says subscribe on the first handler of a key only', () => {
    const t = new SubscriptionTable<string>();
    assert.equal(t.add('exact', 'TICKER_UPDATES_AAPL', 'h1'), true);
    assert.equal(t.add('exact', 'TICKER_UPDATES_AAPL', 'h2'), false);
    assert.equal(t.add('exact', 'TICKER_UPDATES_AAPL', 'h1'), false, 'the same handler twice is one handler');
    assert.deepEqual([...(t.handlers('exact', 'TICKER_UPDATES_AAPL') ?? [])], ['h1', 'h2']);
    assert.equal(t.size, 1);
  });

  it('says unsubscribe on the last handler of a key only', () => {
    const t = new SubscriptionTable<string>();
    t.add('exact', 'k', 'h1');
    t.add('exact', 'k', 'h2');
    assert.equal(t.remove('exact', 'k', 'h1'), false);
    assert.equal(t.remove('exact', 'k', 'h1'), false, 'removing twice does nothing');
    assert.equal(t.remove('exact', 'k', 'h2'), true);
    assert.equal(t.remove('exact', 'k', 'h2'), false, 'never unsubscribes twice');
    assert.equal(t.handlers('exact', 'k'), undefined);
    assert.deepEqual(t.keys('exact'), []);
    assert.equal(t.size, 0);
    assert.equal(t.add('exact', 'k', 'h1'), true, 'a key emptied and used again subscribes again');
  });

  it('ignores handlers and keys it does not know', () => {
    const t = new SubscriptionTable<string>();
    assert.equal(t.remove('exact', 'nope', 'h'), false);
    t.add('exact', 'k', 'h1');
    assert.equal(t.remove('exact', 'k', 'other'), false);
    assert.equal(t.handlers('exact', 'k')?.size, 1);
  });

  it('keeps exact channels and patterns apart', () => {
    const t = new SubscriptionTable<string>();
    assert.equal(t.add('exact', 'TICKER_UPDATES_*', 'h'), true);
    assert.equal(t.add('pattern', 'TICKER_UPDATES_*', 'h'), true, 'a pattern is a separate Redis subscription');
    assert.equal(t.size, 2);
    assert.deepEqual(t.keys('exact'), ['TICKER_UPDATES_*']);
    assert.deepEqual(t.keys('pattern'), ['TICKER_UPDATES_*']);
    assert.equal(t.remove('pattern', 'TICKER_UPDATES_*', 'h'), true);
    assert.equal(t.handlers('exact', 'TICKER_UPDATES_*')?.has('h'), true);
    assert.equal(t.size, 1);
  });

  it('clear() removes every handler of a key and returns them', () => {
    const t = new SubscriptionTable<string>();
    t.add('pattern', 'p*', 'a');
    t.add('pattern', 'p*', 'b');
    t.add('pattern', 'q*', 'c');
    assert.deepEqual(t.clear('pattern', 'p*').sort(), ['a', 'b']);
    assert.equal(t.handlers('pattern', 'p*'), undefined);
    assert.deepEqual(t.keys('pattern'), ['q*']);
    assert.deepEqual(t.clear('pattern', 'p*'), []);
    assert.equal(t.remove('pattern', 'p*', 'a'), false);
    assert.equal(t.add('pattern', 'p*', 'a'), true);
  });

  it('compares handlers by identity', () => {
    const t = new SubscriptionTable<() => void>();
    const f = () => {};
    const g = () => {};
    assert.equal(t.add('exact', 'k', f), true);
    assert.equal(t.add('exact', 'k', g), false);
    assert.equal(t.remove('exact', 'k', () => {}), false);
    assert.equal(t.remove('exact', 'k', f), false);
    assert.equal(t.remove('exact', 'k', g), true);
  });

  it('matches a model under any sequence of operations', () => {
    const kind = fc.constantFrom<SubscriptionKind>('exact', 'pattern');
    const key = fc.constantFrom('A', 'B', 'C*');
    const handler = fc.constantFrom('h1', 'h2', 'h3');
    const op = fc.oneof(
      fc.record({ op: fc.constant('add' as const), kind, key, handler }),
      fc.record({ op: fc.constant('remove' as const), kind, key, handler }),
      fc.record({ op: fc.constant('clear' as const), kind, key, handler }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const t = new SubscriptionTable<string>();
        const model = new Map<string, Set<string>>(); // `${kind}\0${key}` -> handlers
        // Redis-side subscriptions implied by the return values.
        const redis = new Set<string>();
        for (const { op: what, kind: k, key: name, handler: h } of ops) {
          const id = `${k}\0${name}`;
          const had = model.get(id);
          if (what === 'add') {
            const first = t.add(k, name, h);
            assert.equal(first, had === undefined);
            if (first) redis.add(id);
            model.set(id, new Set([...(had ?? []), h]));
          } else if (what === 'remove') {
            const last = t.remove(k, name, h);
            assert.equal(last, had !== undefined && had.has(h) && had.size === 1);
            if (last) redis.delete(id);
            if (had?.has(h)) {
              had.delete(h);
              if (had.size === 0) model.delete(id);
            }
          } else {
            assert.deepEqual(t.clear(k, name).sort(), [...(had ?? [])].sort());
            model.delete(id);
            redis.delete(id);
          }
          // The table and the model agree; Redis is subscribed to exactly the keys with handlers.
          assert.equal(t.size, model.size);
          assert.deepEqual(new Set(redis), new Set(model.keys()));
          for (const kk of ['exact', 'pattern'] as const) {
            assert.deepEqual(
              t.keys(kk).sort(),
              [...model.keys()].filter((m) => m.startsWith(`${kk}\0`)).map((m) => m.slice(kk.length + 1)).sort(),
            );
          }
          assert.deepEqual(new Set(t.handlers(k, name) ?? []), model.get(id) ?? new Set());
        }
      }),
      { numRuns: 300 },
    );
  });
});
