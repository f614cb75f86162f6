// globMatch must decide exactly as Redis's stringmatchlen (PSUBSCRIBE, KEYS) does. The
// fixed cases were checked against redis-server 7.0; the properties compare with a
// line-by-line port of stringmatchlen (src/util.c) below.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { globMatch } from './glob.ts';
import { escapeGlob } from '../../core/channel.ts';

const STAR = 42; // *
const QUESTION = 63; // ?
const LBRACKET = 91; // [
const RBRACKET = 93; // ]
const BACKSLASH = 92; // \
const CARET = 94; // ^
const DASH = 45; // -

/**
 * Redis's stringmatchlen, ported as literally as JavaScript allows: reading past the end of
 * the pattern yields 0, as the NUL terminator of an sds string does in C.
 */
function redisStringMatch(pattern: string, text: string): boolean {
  const state = { skipLongerMatches: false };
  return stringMatchImpl(pattern, 0, text, 0, state, 0);
}

function stringMatchImpl(pat: string, p: number, str: string, s: number, state: { skipLongerMatches: boolean }, nesting: number): boolean {
  if (nesting > 1000) return false;
  const at = (i: number): number => (i < pat.length ? pat.charCodeAt(i) : 0);
  let plen = pat.length - p;
  let slen = str.length - s;
  while (plen > 0 && slen > 0) {
    const ch = at(p);
    if (ch === STAR) {
      while (plen > 0 && at(p + 1) === STAR) {
        p++;
        plen--;
      }
      if (plen === 1) return true;
      while (slen > 0) {
        if (stringMatchImpl(pat, p + 1, str, s, state, nesting + 1)) return true;
        if (state.skipLongerMatches) return false;
        s++;
        slen--;
      }
      state.skipLongerMatches = true;
      return false;
    } else if (ch === QUESTION) {
      s++;
      slen--;
    } else if (ch === LBRACKET) {
      p++;
      plen--;
      const not = at(p) === CARET;
      if (not) {
        p++;
        plen--;
      }
      let match = false;
      for (;;) {
        if (at(p) === BACKSLASH && plen >= 2) {
          p++;
          plen--;
          if (at(p) === str.charCodeAt(s)) match = true;
        } else if (at(p) === RBRACKET) {
          break;
        } else if (plen === 0) {
          p--;
          plen++;
          break;
        } else if (plen >= 3 && at(p + 1) === DASH) {
          let start = at(p);
          let end = at(p + 2);
          const c = str.charCodeAt(s);
          if (start > end) [start, end] = [end, start];
          p += 2;
          plen -= 2;
          if (c >= start && c <= end) match = true;
        } else if (at(p) === str.charCodeAt(s)) {
          match = true;
        }
        p++;
        plen--;
      }
      if (not) match = !match;
      if (!match) return false;
      s++;
      slen--;
    } else {
      if (ch === BACKSLASH && plen >= 2) {
        p++;
        plen--;
      }
      if (at(p) !== str.charCodeAt(s)) return false;
      s++;
      slen--;
    }
    p++;
    plen--;
    if (slen === 0) {
      while (at(p) === STAR) {
        p++;
        plen--;
      }
      break;
    }
  }
  return plen === 0 && slen === 0;
}

/** The characters that make globs interesting, plus a few plain ones. */
const GLOB_ALPHABET = ['a', 'b', 'c', '-', '^', ']', '[', '\\', '*', '?'];
const globChar = fc.constantFrom(...GLOB_ALPHABET);
/** One glob character or one printable ASCII character. */
const mixedChar = fc.oneof(globChar, fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }));

function check(cases: ReadonlyArray<readonly [pattern: string, text: string, expected: boolean]>): void {
  for (const [pattern, text, expected] of cases) {
    assert.equal(globMatch(pattern, text), expected, `globMatch(${JSON.stringify(pattern)}, ${JSON.stringify(text)})`);
  }
}

describe('globMatch: Redis glob semantics', () => {
  it('matches literals exactly and case-sensitively', () => {
    check([
      ['TICKER_UPDATES_AAPL', 'TICKER_UPDATES_AAPL', true],
      ['TICKER_UPDATES_AAPL', 'TICKER_UPDATES_aapl', false],
      ['TICKER_UPDATES_AAPL', 'TICKER_UPDATES_AAP', false],
      ['TICKER_UPDATES_AAPL', 'TICKER_UPDATES_AAPLX', false],
      ['', '', true],
      ['', 'a', false],
      ['a', '', false],
    ]);
  });

  it('* matches any sequence, including an empty one inside a name', () => {
    check([
      ['*', 'anything at all', true],
      ['**', 'x', true],
      ['TICKER_UPDATES_*', 'TICKER_UPDATES_BRK.B', true],
      ['TICKER_UPDATES_*', 'TICKER_UPDATES_', true],
      ['TICKER_UPDATES_*', 'TICKER_UPDATE_AAPL', false],
      ['a*b', 'ab', true],
      ['a*b', 'axxxb', true],
      ['a*b', 'axxxbc', false],
      ['*a', 'a', true],
      ['*a*b*c', 'xaybzc', true],
      ['*a*b*c', 'xaybzcx', false],
      ['a*a*a*b', 'aaaaaaaaaa', false],
      ['tickstock:*:streaming', 'tickstock:patterns:streaming', true],
      ['tickstock:*:streaming', 'tickstock:patterns:detected', false],
    ]);
  });

  it('? matches exactly one character', () => {
    check([
      ['h?llo', 'hello', true],
      ['h?llo', 'hllo', false],
      ['h?llo', 'heello', false],
      ['???', 'abc', true],
      ['???', 'ab', false],
      ['?', '', false],
    ]);
  });

  it('[abc] and [^abc] match one character of, or not of, the class', () => {
    check([
      ['h[ae]llo', 'hello', true],
      ['h[ae]llo', 'hallo', true],
      ['h[ae]llo', 'hillo', false],
      ['h[ae]llo', 'hllo', false],
      ['h[^e]llo', 'hallo', true],
      ['h[^e]llo', 'hello', false],
      ['h[^e]llo', 'hllo', false],
      ['[*?]', '*', true],
      ['[*?]', '?', true],
      ['[*?]', 'a', false],
      // `^` is only a negation when it comes first.
      ['[a^]', '^', true],
      ['[a^]', 'b', false],
      // An empty class matches nothing; a negated empty class matches any one character.
      ['[]', 'a', false],
      ['[]a]', 'a]', false],
      ['[^]', 'z', true],
      ['[^]', '', false],
    ]);
  });

  it('[a-z] ranges, reversed ranges and a trailing dash', () => {
    check([
      ['h[a-b]llo', 'hallo', true],
      ['h[a-b]llo', 'hbllo', true],
      ['h[a-b]llo', 'hcllo', false],
      ['[0-9]', '5', true],
      ['[0-9]', 'a', false],
      // Redis swaps the ends of a reversed range.
      ['h[z-a]llo', 'hmllo', true],
      ['[9-0]', '5', true],
      ['[9-0]', 'x', false],
      ['[^a-c]', 'b', false],
      ['[^a-c]', 'd', true],
      // `[a-]` is the range from `a` to `]` (reversed: 0x5d..0x61), then an unterminated class.
      ['[a-]', '_', true],
      ['[a-]', '-', false],
      ['[a-]', 'b', false],
      // A dash first is a literal.
      ['[-a]', '-', true],
    ]);
  });

  it('a backslash escapes the next character, inside and outside classes', () => {
    check([
      ['a\\*b', 'a*b', true],
      ['a\\*b', 'axb', false],
      ['a\\*b', 'ab', false],
      ['\\?', '?', true],
      ['\\?', 'x', false],
      ['\\[a]', '[a]', true],
      ['\\[a]', 'a', false],
      ['\\\\', '\\', true],
      ['\\a', 'a', true],
      ['[\\]]', ']', true],
      ['[\\]]', '\\', false],
      ['[\\*]', '*', true],
      ['[\\*]', 'a', false],
      // An escaped dash is a member, not a range.
      ['[a\\-z]', '-', true],
      ['[a\\-z]', 'm', false],
      ['[a\\-z]', 'z', true],
      ['[\\^a]', '^', true],
      ['[\\^a]', 'b', false],
    ]);
  });

  it('a trailing backslash is a literal backslash', () => {
    check([
      ['a\\', 'a\\', true],
      ['a\\', 'a', false],
      ['a\\', 'ab', false],
      ['\\', '\\', true],
      ['\\', 'x', false],
      ['*\\', 'xyz\\', true],
      ['*\\', 'xyz', false],
      // Last in a class, it is a member.
      ['[a\\', '\\', true],
      ['[a\\', 'a', true],
    ]);
  });

  it('an unterminated class ends with the pattern', () => {
    check([
      ['[abc', 'b', true],
      ['[abc', 'd', false],
      ['[abc', 'bc', false],
      ['x[ab', 'xa', true],
      ['x[ab', 'x', false],
      ['[', 'a', false],
      ['[', '[', false],
      ['[^', 'z', true],
      ['[^a', 'b', true],
      ['[^a', 'a', false],
      ['[a-c', 'b', true],
      ['[\\]', ']', true],
      ['[\\]', '\\', false],
    ]);
  });

  it('does not backtrack exponentially on patterns with many stars', () => {
    const pattern = `${'*a'.repeat(30)}b`;
    const text = 'a'.repeat(20_000);
    const started = process.hrtime.bigint();
    assert.equal(globMatch(pattern, text), false);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(elapsedMs < 2000, `took ${elapsedMs.toFixed(0)} ms`);
  });
});

describe('globMatch: properties', () => {
  it('a string escaped with escapeGlob matches itself and nothing else', () => {
    fc.assert(
      fc.property(fc.string({ unit: mixedChar }), fc.string({ unit: mixedChar }), (s, other) => {
        const pattern = escapeGlob(s);
        assert.equal(globMatch(pattern, s), true);
        assert.equal(globMatch(pattern, other), s === other);
        assert.equal(globMatch(pattern, `${s}x`), false);
      }),
      { numRuns: 500 },
    );
  });

  it('* matches every non-empty string', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: mixedChar, minLength: 1 }), fc.string({ unit: 'binary', minLength: 1 })), (s) => {
        assert.equal(globMatch('*', s), true);
        assert.equal(globMatch('**', s), true);
      }),
    );
  });

  it('an escaped prefix followed by * matches every extension of the prefix', () => {
    fc.assert(
      fc.property(fc.string({ unit: mixedChar }), fc.string({ unit: mixedChar, minLength: 1 }), (prefix, rest) => {
        assert.equal(globMatch(`${escapeGlob(prefix)}*`, prefix + rest), true);
      }),
    );
  });

  it('n question marks match exactly the strings of length n', () => {
    fc.assert(
      fc.property(fc.nat(8), fc.string({ unit: mixedChar, maxLength: 10 }), (n, s) => {
        assert.equal(globMatch('?'.repeat(n), s), s.length === n);
      }),
    );
  });

  it('[^B] matches exactly the characters that [B] does not', () => {
    const body = fc
      .string({ unit: fc.constantFrom('a', 'b', 'c', '-', '\\', '*', '?', '[', '^'), maxLength: 6 })
      .filter((b) => !b.startsWith('^'));
    fc.assert(
      fc.property(body, fc.constantFrom(...GLOB_ALPHABET, 'd', '_'), (b, c) => {
        assert.equal(globMatch(`[^${b}]`, c), !globMatch(`[${b}]`, c));
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with a port of Redis stringmatchlen on random patterns and names', () => {
    fc.assert(
      fc.property(fc.string({ unit: globChar, maxLength: 10 }), fc.string({ unit: globChar, minLength: 1, maxLength: 8 }), (pattern, text) => {
        assert.equal(globMatch(pattern, text), redisStringMatch(pattern, text));
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with the port when the name is built to partly fit the pattern', () => {
    // Random pairs rarely match; deriving the name from the pattern makes matches common.
    const pair = fc.string({ unit: globChar, maxLength: 10 }).chain((pattern) =>
      fc
        .array(fc.oneof(globChar, fc.constant('')), { minLength: pattern.length, maxLength: pattern.length })
        .map((extra) => {
          let text = '';
          for (let i = 0; i < pattern.length; i++) {
            const c = pattern[i] as string;
            text += c === '*' || c === '?' || c === '[' || c === '\\' ? (extra[i] as string) : c;
          }
          return [pattern, text.length > 0 ? text : 'a'] as const;
        }),
    );
    fc.assert(
      fc.property(pair, ([pattern, text]) => {
        assert.equal(globMatch(pattern, text), redisStringMatch(pattern, text));
      }),
      { numRuns: 3000 },
    );
  });

  it('matches an empty name only with the empty pattern, as Redis does', () => {
    assert.equal(globMatch('', ''), true);
    assert.equal(globMatch('*', ''), false);
    assert.equal(globMatch('**', ''), false);
    assert.equal(globMatch('?', ''), false);
  });
});
