// parseRequest never throws, whatever a frame holds: a hostile op (an object whose toString
// is null made String() throw, and the request got no reply) is a bad request with its id.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequest } from './requests.ts';

describe('parseRequest', () => {
  it('answers an op that is an object with no usable toString as a bad request, with its id', () => {
    for (const op of [{ toString: null }, { toString: null, valueOf: null }, [{ toString: null }], { toString: 'x' }]) {
      const parsed = parseRequest(JSON.stringify({ op, id: 7 }));
      assert.equal(parsed.ok, false);
      if (parsed.ok) continue;
      assert.deepEqual({ id: parsed.id, code: parsed.code }, { id: 7, code: 'TB_ERR_BAD_REQUEST' });
      assert.match(parsed.message, /^Unknown op "/);
    }
  });

  it('names a bad field of a known op without calling its toString', () => {
    const parsed = parseRequest(JSON.stringify({ op: 'subscribe', symbols: { toString: null }, since: [{ toString: null }], id: 'a' }));
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.match(parsed.message, /^Bad subscribe request: /);
  });
});
