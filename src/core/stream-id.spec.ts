import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareStreamIds, isStreamId } from './stream-id.ts';

describe('stream ids', () => {
  it('orders numerically, not as text', () => {
    assert.equal(compareStreamIds('9-0', '10-0'), -1);
    assert.equal(compareStreamIds('10-2', '10-10'), -1);
    assert.equal(compareStreamIds('10-10', '10-10'), 0);
    assert.equal(compareStreamIds('1795312820570-1', '1795312820570-0'), 1);
  });

  it('agrees with ordering the (ms, seq) pairs', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (am, as, bm, bs) => {
        const expected = am !== bm ? (am < bm ? -1 : 1) : as !== bs ? (as < bs ? -1 : 1) : 0;
        assert.equal(compareStreamIds(`${am}-${as}`, `${bm}-${bs}`), expected);
        assert.equal(compareStreamIds(`00${am}-0${as}`, `${bm}-${bs}`), expected, 'leading zeros change nothing');
      }),
    );
  });

  it('recognises ids and nothing else', () => {
    assert.ok(isStreamId('0-0'));
    assert.ok(isStreamId('1795312820570-12'));
    assert.ok(isStreamId('18446744073709551615-18446744073709551615'), 'the largest id Redis takes');
    assert.ok(isStreamId('000018446744073709551615-0'), 'leading zeros do not count');
    for (const bad of ['', '1', '1-', '-1', '1-2-3', 'a-1', '1-0\n', ' 1-0', '$', '>', '18446744073709551616-0', '0-18446744073709551616', '99999999999999999999999-99999999999999999999']) assert.ok(!isStreamId(bad), bad);
    assert.throws(() => compareStreamIds('x', '1-0'), TypeError);
  });
});
