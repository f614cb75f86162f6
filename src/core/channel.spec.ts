import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { defineChannel, escapeGlob } from './channel.ts';
import { IDENTIFIER, TICKER, defineParam } from './channel-param.ts';
import { ChannelParamError, ConfigError, ErrorCode } from './errors.ts';
import { globMatch } from '../transports/memory/glob.ts';

const empty = z.object({});
const Ticker = defineChannel({ name: 'TICKER_UPDATES_{ticker}', schema: empty, params: { ticker: TICKER } });
const Fixed = defineChannel({ name: 'BROKER_REGISTRATION', schema: empty });

const TICKER_CHARS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./-'];
const validTicker = fc.string({ unit: fc.constantFrom(...TICKER_CHARS), minLength: 1, maxLength: 15 });

/** Calls `fn` and returns the ChannelParamError it must throw. */
function paramError(fn: () => unknown): ChannelParamError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ChannelParamError, `expected a ChannelParamError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ChannelParamError, but nothing was thrown');
}

describe('defineChannel: fixed names', () => {
  it('has its template as its only name, and a glob that matches only it', () => {
    assert.equal(Fixed.isTemplate, false);
    assert.deepEqual(Fixed.paramNames, []);
    assert.equal(Fixed.name(), 'BROKER_REGISTRATION');
    assert.equal(Fixed.pattern(), 'BROKER_REGISTRATION');
    assert.deepEqual(Fixed.parse('BROKER_REGISTRATION'), {});
    assert.equal(Fixed.parse('BROKER_REGISTRATIONS'), undefined);
    assert.equal(Fixed.parse('broker_registration'), undefined);
    assert.equal(Fixed.wire, 'envelope');
    assert.equal(Fixed.description, '');
    assert.ok(Object.isFrozen(Fixed));
  });

  it('escapes glob characters of a fixed name in its pattern', () => {
    const odd = defineChannel({ name: 'odd*name?[x]\\', schema: empty });
    assert.equal(odd.pattern(), 'odd\\*name\\?\\[x\\]\\\\');
    assert.equal(globMatch(odd.pattern(), 'odd*name?[x]\\'), true);
    assert.equal(globMatch(odd.pattern(), 'oddXnameY[x]\\'), false);
    assert.equal(globMatch(odd.pattern(), 'oddnamex\\'), false);
    assert.deepEqual(odd.parse('odd*name?[x]\\'), {});
    assert.equal(odd.parse('oddXname?[x]\\'), undefined);
  });

  it('of() returns a frozen reference to the channel', () => {
    const ref = Fixed.of();
    assert.equal(ref.kind, 'ref');
    assert.equal(ref.name, 'BROKER_REGISTRATION');
    assert.equal(ref.channel, Fixed);
    assert.deepEqual(ref.params, {});
    assert.ok(Object.isFrozen(ref));
  });
});

describe('defineChannel: templates', () => {
  it('builds the concrete name, normalising the parameter', () => {
    assert.equal(Ticker.isTemplate, true);
    assert.deepEqual(Ticker.paramNames, ['ticker']);
    assert.equal(Ticker.name({ ticker: 'AAPL' }), 'TICKER_UPDATES_AAPL');
    assert.equal(Ticker.name({ ticker: ' brk.b ' }), 'TICKER_UPDATES_BRK.B');
    assert.equal(Ticker.name({ ticker: 'btc/usd' }), 'TICKER_UPDATES_BTC/USD');
    assert.equal(Ticker.name({ ticker: '\tbf-b\n' }), 'TICKER_UPDATES_BF-B');
  });

  it('of() hands out the same frozen reference for the same parameters', () => {
    assert.equal(Ticker.of({ ticker: 'AAPL' }), Ticker.of({ ticker: 'AAPL' }));
    assert.equal(Fixed.of(), Fixed.of());
    assert.notEqual(Ticker.of({ ticker: 'AAPL' }), Ticker.of({ ticker: 'MSFT' }));
    assert.throws(() => Ticker.of({ ticker: 'A*' }), ChannelParamError, 'an invalid ticker is never cached');
    assert.throws(() => Ticker.of({ ticker: 'A*' }), ChannelParamError);
  });

  it('of() carries the normalised parameters', () => {
    const ref = Ticker.of({ ticker: ' brk.b ' });
    assert.equal(ref.kind, 'ref');
    assert.equal(ref.name, 'TICKER_UPDATES_BRK.B');
    assert.deepEqual(ref.params, { ticker: 'BRK.B' });
    assert.equal(ref.channel, Ticker);
    assert.ok(Object.isFrozen(ref));
  });

  it('has a glob with the literal parts escaped and a * per parameter', () => {
    assert.equal(Ticker.pattern(), 'TICKER_UPDATES_*');
    const weird = defineChannel({ name: 'a*b?[c]\\_{ticker}_x', schema: empty, params: { ticker: TICKER } });
    assert.equal(weird.pattern(), 'a\\*b\\?\\[c\\]\\\\_*_x');
    const name = weird.name({ ticker: 'aapl' });
    assert.equal(name, 'a*b?[c]\\_AAPL_x');
    assert.equal(globMatch(weird.pattern(), name), true);
    assert.equal(globMatch(weird.pattern(), 'aXbY[c]\\_AAPL_x'), false);
    assert.deepEqual(weird.parse(name), { ticker: 'AAPL' });
  });

  it('parses a concrete name back to its parameters', () => {
    assert.deepEqual(Ticker.parse('TICKER_UPDATES_AAPL'), { ticker: 'AAPL' });
    assert.deepEqual(Ticker.parse('TICKER_UPDATES_BRK.B'), { ticker: 'BRK.B' });
    const price = defineChannel({ name: 'price.updated.{symbol}', schema: empty, params: { symbol: TICKER } });
    assert.deepEqual(price.parse('price.updated.BRK.B'), { symbol: 'BRK.B' });
    assert.equal(price.parse('price-updated-AAPL'), undefined, 'the dots of the template are literal, not regex wildcards');
  });

  it('parse rejects names that are not canonical or not ours', () => {
    for (const name of [
      'TICKER_UPDATES_aapl',
      'TICKER_UPDATES_ AAPL',
      'TICKER_UPDATES_AAPL ',
      'TICKER_UPDATES_',
      'TICKER_UPDATES_AAPL*',
      'TICKER_UPDATES_A?PL',
      'TICKER_UPDATES_A B',
      'TICKER_UPDATES_AAPL\r\nPUBLISH x y',
      'TICKER_UPDATES_AAPL\n',
      `TICKER_UPDATES_${'A'.repeat(16)}`,
      `TICKER_UPDATES_${'A'.repeat(10_000)}`,
      'XTICKER_UPDATES_AAPL',
      'ticker_updates_AAPL',
      'TICKER_UPDATES',
      '',
    ]) {
      assert.equal(Ticker.parse(name), undefined, JSON.stringify(name.slice(0, 40)));
    }
  });

  it('parse round-trips every valid ticker', () => {
    fc.assert(
      fc.property(validTicker, (t) => {
        const name = Ticker.name({ ticker: t });
        assert.equal(name, `TICKER_UPDATES_${t}`);
        assert.deepEqual(Ticker.parse(name), { ticker: t });
        assert.equal(globMatch(Ticker.pattern(), name), true);
      }),
    );
  });

  it('parse accepts only names that name() would build', () => {
    const candidate = fc.oneof(
      fc.string({ unit: fc.constantFrom(...TICKER_CHARS, 'a', ' ', '*', '\n', '_'), maxLength: 20 }).map((s) => `TICKER_UPDATES_${s}`),
      fc.string(),
    );
    fc.assert(
      fc.property(candidate, (name) => {
        const params = Ticker.parse(name);
        if (params !== undefined) assert.equal(Ticker.name(params), name);
      }),
      { numRuns: 500 },
    );
  });
});

describe('defineChannel: hostile parameters', () => {
  const hostile: Array<[what: string, value: unknown]> = [
    ['a glob star', 'AAPL*'],
    ['a glob question mark', 'AAP?'],
    ['a glob class', 'AAP[L]'],
    ['an inner space', 'A B'],
    ['a CRLF injection', 'AAPL\r\nPUBLISH BROKER_REGISTRATION x'],
    ['an empty string', ''],
    ['only whitespace', '   '],
    ['16 characters', 'A'.repeat(16)],
    ['10 kB', 'A'.repeat(10_240)],
    ['a NUL byte', 'AA\u0000PL'],
    ['a look-alike letter', '\u0391APL'],
    ['an underscore', 'BRK_B'],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an array', ['AAPL']],
    ['an object', { toString: () => 'AAPL' }],
  ];
  for (const [what, value] of hostile) {
    it(`rejects ${what} with ChannelParamError`, () => {
      const error = paramError(() => Ticker.name({ ticker: value as string }));
      assert.equal(error.code, ErrorCode.InvalidChannelParam);
      assert.equal(error.code, 'TB_ERR_INVALID_CHANNEL_PARAM');
      assert.equal(error.param, 'ticker');
      // The message names the rule, stays short, and cannot forge log lines.
      assert.match(error.message, /ticker/);
      assert.ok(error.message.length < 300, `message is ${error.message.length} characters long`);
      assert.doesNotMatch(error.message, /[\r\n]/);
      assert.ok(!error.message.includes('\u0000'), 'no NUL in the message');
      // of() checks the same way.
      assert.throws(() => Ticker.of({ ticker: value as string }), ChannelParamError);
    });
  }

  it('says what is allowed', () => {
    const error = paramError(() => Ticker.name({ ticker: 'AAPL*' }));
    assert.ok(error.message.includes(TICKER.rule), error.message);
    assert.match(paramError(() => Ticker.name({ ticker: 42 as unknown as string })).message, /must be a string, got number/);
  });

  it('rejects missing parameters', () => {
    const loose = Ticker as unknown as { name(params?: unknown): string };
    assert.throws(() => loose.name(), (error: unknown) => error instanceof ChannelParamError && /needs parameters: ticker/.test(error.message));
    assert.throws(() => loose.name(null), ChannelParamError);
    assert.throws(() => loose.name('AAPL'), ChannelParamError);
    assert.throws(() => loose.name({}), ChannelParamError);
    assert.throws(() => loose.name({ symbol: 'AAPL' }), ChannelParamError);
  });

  it('never builds a name outside the allow-list, whatever the input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), validTicker, fc.anything()), (raw) => {
        let name: string;
        try {
          name = Ticker.name({ ticker: raw as string });
        } catch (error) {
          assert.ok(error instanceof ChannelParamError);
          return;
        }
        assert.match(name, /^TICKER_UPDATES_[A-Z0-9./-]{1,15}$/);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('defineChannel: definition errors', () => {
  it('throws ConfigError when a parameter has no rule', () => {
    assert.throws(
      () => defineChannel({ name: 'TICKER_UPDATES_{ticker}', schema: empty }),
      (error: unknown) => error instanceof ConfigError && error.code === ErrorCode.Config && /\{ticker\}/.test(error.message) && /params/.test(error.message),
    );
    assert.throws(
      () => defineChannel({ name: 'A_{x}_{y}', schema: empty, params: { x: TICKER } as never }),
      (error: unknown) => error instanceof ConfigError && /\{y\}/.test(error.message),
    );
  });

  it('throws ConfigError when a parameter is repeated', () => {
    assert.throws(
      () => defineChannel({ name: 'A_{x}_{x}', schema: empty, params: { x: TICKER } }),
      (error: unknown) => error instanceof ConfigError && /repeats/.test(error.message),
    );
  });

  it('keeps description and wire format', () => {
    const ch = defineChannel({ name: 'x', schema: empty, wire: 'bare', description: 'd' });
    assert.equal(ch.wire, 'bare');
    assert.equal(ch.description, 'd');
    assert.equal(ch.schema, empty);
  });
});

describe('defineChannel: several parameters', () => {
  const Desk = defineChannel({
    name: 'desk#{user}#{ticker}#fills',
    schema: empty,
    params: { user: IDENTIFIER, ticker: TICKER },
  });
  const validUser = fc.string({ unit: fc.constantFrom(...'abcXYZ019_.:-'), minLength: 1, maxLength: 64 });

  it('builds, globs and parses every parameter', () => {
    assert.deepEqual(Desk.paramNames, ['user', 'ticker']);
    assert.equal(Desk.name({ user: 'trader-7', ticker: ' msft ' }), 'desk#trader-7#MSFT#fills');
    assert.equal(Desk.pattern(), 'desk#*#*#fills');
    assert.deepEqual(Desk.of({ user: 'trader-7', ticker: 'msft' }).params, { user: 'trader-7', ticker: 'MSFT' });
    assert.deepEqual(Desk.parse('desk#trader-7#MSFT#fills'), { user: 'trader-7', ticker: 'MSFT' });
    assert.equal(Desk.parse('desk#trader-7#msft#fills'), undefined);
    assert.equal(Desk.parse('desk#trader 7#MSFT#fills'), undefined);
    assert.equal(Desk.parse('desk##MSFT#fills'), undefined);
  });

  it('checks each parameter with its own rule', () => {
    // IDENTIFIER does not normalise: upper case stays, spaces are refused.
    assert.equal(Desk.name({ user: 'Trader', ticker: 'aapl' }), 'desk#Trader#AAPL#fills');
    assert.equal(paramError(() => Desk.name({ user: ' trader', ticker: 'AAPL' })).param, 'user');
    assert.equal(paramError(() => Desk.name({ user: 'trader', ticker: 'AAPL*' })).param, 'ticker');
    assert.equal(paramError(() => Desk.name({ user: 'x'.repeat(65), ticker: 'AAPL' })).param, 'user');
  });

  it('round-trips every valid pair of parameters', () => {
    fc.assert(
      fc.property(validUser, validTicker, (user, ticker) => {
        const name = Desk.name({ user, ticker });
        assert.deepEqual(Desk.parse(name), { user, ticker });
        assert.equal(globMatch(Desk.pattern(), name), true);
      }),
    );
  });

  it('uses a custom parameter rule and its normaliser', () => {
    const lower = defineParam({ label: 'venue', allow: /^[a-z]{2,8}$/, maxLength: 8, rule: '2 to 8 lower-case letters', normalize: (r) => r.toLowerCase() });
    const Venue = defineChannel({ name: 'venue:{venue}:{ticker}', schema: empty, params: { venue: lower, ticker: TICKER } });
    assert.equal(Venue.name({ venue: 'NYSE', ticker: 'ibm' }), 'venue:nyse:IBM');
    assert.deepEqual(Venue.parse('venue:nyse:IBM'), { venue: 'nyse', ticker: 'IBM' });
    assert.equal(Venue.parse('venue:NYSE:IBM'), undefined);
    assert.match(paramError(() => Venue.name({ venue: 'n', ticker: 'IBM' })).message, /venue.*2 to 8 lower-case letters/);
  });
});

describe('defineChannel: ambiguous templates', () => {
  it('refuses a separator that a neighbouring parameter may contain', () => {
    // IDENTIFIER allows "_" and ".", so jobs_a_b_c could be {a_b, c} or {a, b_c}.
    assert.throws(() => defineChannel({ name: 'jobs_{user}_{job}', schema: empty, params: { user: IDENTIFIER, job: IDENTIFIER } }), ConfigError);
    assert.throws(() => defineChannel({ name: 'orders.{account}.{symbol}', schema: empty, params: { account: IDENTIFIER, symbol: TICKER } }), ConfigError);
    assert.throws(() => defineChannel({ name: 'x{a}{b}', schema: empty, params: { a: TICKER, b: TICKER } }), ConfigError);
  });

  it('accepts a separator neither parameter allows', () => {
    const ok = defineChannel({ name: 'jobs#{user}#{job}', schema: empty, params: { user: IDENTIFIER, job: IDENTIFIER } });
    assert.deepEqual(ok.parse(ok.name({ user: 'a_b', job: 'c' })), { user: 'a_b', job: 'c' });
  });
});

describe('escapeGlob', () => {
  it('escapes exactly *, ?, [, ] and backslash', () => {
    assert.equal(escapeGlob('a*b?c[d]e\\f'), 'a\\*b\\?c\\[d\\]e\\\\f');
    assert.equal(escapeGlob('plain.name:with-chars^{}'), 'plain.name:with-chars^{}');
  });
});
