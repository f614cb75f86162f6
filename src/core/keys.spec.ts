// docs/wire-format.md's key table is what users audit a shared Redis with: it must list
// exactly the keys KEY_SPACE names, with the same type, writer and lifetime.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BROKER_LEASES_KEY, deadLetterKey, jobBridgeClaimKey, fenceCounterKey, jobKey, KEY_SPACE, lastValueKey, luaChannelKey, orderClaimKey, ownerKey, streamKey, userJobsKey, type KeySpec } from './keys.ts';

const DOC = new URL('../../docs/wire-format.md', import.meta.url);

/** The cells of one markdown table row (`\|` inside a cell is a literal bar). */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** The rows of the table under "## Keys and their lifetimes". */
function docKeyTable(): Array<Omit<KeySpec, 'persistent'>> {
  const text = readFileSync(DOC, 'utf8');
  const section = text.split(/^## /m).find((s) => s.startsWith('Keys and their lifetimes'));
  assert.ok(section, 'docs/wire-format.md has a "## Keys and their lifetimes" section');
  const rows = section.split('\n').filter((l) => l.startsWith('|'));
  assert.deepEqual(cells(rows[0] ?? ''), ['key', 'type', 'written by', 'lifetime', 'why'], 'the key table\'s columns');
  return rows.slice(2).map((row) => {
    const [key = '', type = '', writtenBy = '', lifetime = ''] = cells(row);
    return { pattern: key.replace(/^`|`$/g, ''), type, writtenBy, lifetime };
  });
}

const row = (s: KeySpec): string => `| \`${s.pattern}\` | ${s.type.replace(/\|/g, '\\|')} | ${s.writtenBy} | ${s.lifetime} | … |`;

describe('KEY_SPACE and docs/wire-format.md', () => {
  it('the doc\'s key table lists the same keys, in the same order, with the same type, writer and lifetime', () => {
    const doc = docKeyTable();
    const expected = KEY_SPACE.map(({ persistent: _, ...rest }) => rest);
    assert.deepEqual(doc, expected, `docs/wire-format.md's key table disagrees with src/core/keys.ts (KEY_SPACE); its rows should read:\n${KEY_SPACE.map(row).join('\n')}`);
  });

  it('a key is persistent exactly when its lifetime says so', () => {
    for (const spec of KEY_SPACE) assert.equal(/^(\*\*)?persistent/i.test(spec.lifetime), spec.persistent, spec.pattern);
  });

  it('is frozen', () => {
    assert.ok(Object.isFrozen(KEY_SPACE));
    for (const spec of KEY_SPACE) assert.ok(Object.isFrozen(spec), spec.pattern);
  });
});

describe('key builders', () => {
  it('keep the names other services and existing data use', () => {
    assert.equal(streamKey('TICKER_UPDATES_AAPL'), 'tickbus:{TICKER_UPDATES_AAPL}:stream');
    assert.equal(deadLetterKey('orders'), 'tickbus:{orders}:dead');
    assert.equal(ownerKey('TICKER_UPDATES_AAPL'), 'tickbus:{TICKER_UPDATES_AAPL}:owner');
    assert.equal(fenceCounterKey('TICKER_UPDATES_AAPL'), 'tickbus:{TICKER_UPDATES_AAPL}:fence');
    assert.equal(lastValueKey('AAPL'), 'tickbus:last:{AAPL}');
    assert.equal(orderClaimKey('o-1'), 'tickbus:order:{o-1}');
    assert.equal(BROKER_LEASES_KEY, 'tickbus:{broker}:leases');
    // seed 003's format, without the tickbus prefix
    assert.equal(jobKey('j1'), 'job:j1');
    assert.equal(userJobsKey('u1'), 'jobs:user:u1');
    assert.equal(jobBridgeClaimKey('bt_1'), 'tickbus:job-bridge:{bt_1}');
  });

  it('luaChannelKey is the Lua expression of the same key', () => {
    assert.equal(luaChannelKey('ch', 'owner'), "'tickbus:{' .. ch .. '}:owner'");
    // Evaluated the way Lua concatenates: the literal parts around the channel name.
    const [head, tail] = luaChannelKey('ch', 'stream').split(' .. ch .. ').map((s) => s.slice(1, -1));
    assert.equal(`${head}TICKER_UPDATES_AAPL${tail}`, streamKey('TICKER_UPDATES_AAPL'));
  });
});
