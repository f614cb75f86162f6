// The in-memory transport's glob matcher against the real one: random key names and
// random patterns over an alphabet of glob metacharacters, compared with KEYS on a
// private redis-server. KEYS and PSUBSCRIBE share Redis's matcher (stringmatchlen).
//
// Key names are never empty: Redis special-cases KEYS "*" (it returns every key, the
// empty one included) while stringmatchlen itself does not match "" with "*", so an
// empty key would make KEYS disagree with PSUBSCRIBE.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createClient } from 'redis';
import { globMatch } from '../../src/transports/memory/glob.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';

const ALPHABET = ['a', 'b', 'c', '-', '^', ']', '[', '\\', '*', '?'];
const unit = fc.constantFrom(...ALPHABET);

describe('globMatch agrees with Redis KEYS', () => {
  let server: RedisServer;
  let client: ReturnType<typeof createClient>;
  const clientErrors: unknown[] = [];
  let keys: string[] = [];

  before(async () => {
    server = await startRedis();
    client = createClient({ url: server.url });
    client.on('error', (error: unknown) => clientErrors.push(error));
    await client.connect();
    // A few hundred distinct names, most of them short so that random patterns match some.
    const names = new Set(fc.sample(fc.string({ unit, minLength: 1, maxLength: 5 }), { numRuns: 600 }));
    for (const c of ALPHABET) names.add(c); // every one-character name
    keys = [...names].sort();
    await client.mSet(keys.map((k) => [k, '1'] as [string, string]));
    assert.equal(await client.dbSize(), keys.length, 'every generated key was stored');
  });

  after(async () => {
    await client?.quit();
    await server?.stop();
  });

  it('selects the same keys for random patterns over *, ?, [, ], ^, - and backslash', async () => {
    let matchedSomething = 0;
    await fc.assert(
      fc.asyncProperty(fc.string({ unit, maxLength: 8 }), async (pattern) => {
        const fromRedis = (await client.keys(pattern)).sort();
        const ours = keys.filter((k) => globMatch(pattern, k));
        if (ours.length > 0) matchedSomething++;
        assert.deepEqual(ours, fromRedis, `pattern ${JSON.stringify(pattern)}`);
      }),
      { numRuns: 400, interruptAfterTimeLimit: 8000 },
    );
    // Guard against a vacuous pass (e.g. no keys stored, or patterns that never match).
    assert.ok(matchedSomething > 40, `only ${matchedSomething} patterns matched any key`);
    assert.deepEqual(clientErrors, []);
  });

  it('selects the same keys for patterns built from the stored names', async () => {
    // Turn a stored name into a pattern by swapping some characters for glob syntax, so
    // that most patterns match several keys and the interesting branches are exercised.
    const derived = fc
      .tuple(fc.integer({ min: 0, max: keys.length - 1 }), fc.array(fc.constantFrom('keep', '*', '?', '[', '[^', '\\', 'range'), { maxLength: 5 }))
      .map(([index, edits]) => {
        const name = keys[index] as string;
        let out = '';
        for (let i = 0; i < name.length; i++) {
          const c = name[i] as string;
          const edit = edits[i] ?? 'keep';
          if (edit === '*' || edit === '?') out += edit;
          else if (edit === '[') out += `[${c}b]`;
          else if (edit === '[^') out += `[^${c}]`;
          else if (edit === '\\') out += `\\${c}`;
          else if (edit === 'range') out += `[${c}-a]`;
          else out += c;
        }
        return out;
      });
    await fc.assert(
      fc.asyncProperty(derived, async (pattern) => {
        const fromRedis = (await client.keys(pattern)).sort();
        const ours = keys.filter((k) => globMatch(pattern, k));
        assert.deepEqual(ours, fromRedis, `pattern ${JSON.stringify(pattern)}`);
      }),
      { numRuns: 400, interruptAfterTimeLimit: 8000 },
    );
    assert.deepEqual(clientErrors, []);
  });
});
