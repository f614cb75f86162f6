import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createEnvelope, decodePayload, encodePayload, exceedsBytes, type DecodedPayload } from './envelope.ts';
import { DecodeError, ErrorCode } from './errors.ts';

const MAX = 1024 * 1024;
const CH = 'TICKER_UPDATES_AAPL';

/** Decodes and asserts a DecodeError with the given code; returns it. */
function decodeError(payload: string, code: string, wire: 'envelope' | 'bare' = 'envelope', maxBytes = MAX, channel = CH): DecodeError {
  const result = decodePayload(payload, channel, wire, maxBytes);
  assert.ok(result instanceof DecodeError, `expected a DecodeError for ${JSON.stringify(payload.slice(0, 60))}, got ${JSON.stringify(result)}`);
  assert.equal(result.code, code);
  assert.equal(result.channel, channel);
  return result;
}

function decoded(payload: string, wire: 'envelope' | 'bare' = 'envelope', maxBytes = MAX): DecodedPayload {
  const result = decodePayload(payload, CH, wire, maxBytes);
  assert.ok(!(result instanceof DecodeError), `expected a payload, got ${result instanceof DecodeError ? result.message : ''}`);
  // Only the five fields are the contract (the decoder may hand back the parsed object itself).
  return { data: result.data, timestamp: result.timestamp, sender: result.sender, id: result.id, position: result.position };
}

/** Strings over 1-, 2-, 3- and 4-byte UTF-8 characters and lone surrogates. */
const utf8Mix = fc.string({
  unit: fc.oneof(
    fc.constantFrom('a', '"', '\\', '\n'),
    fc.constantFrom('é', 'ß', 'ж'), // 2 bytes
    fc.constantFrom('€', '中', '\u2028'), // 3 bytes
    fc.constantFrom('😀', '𝄞'), // 4 bytes, two UTF-16 units
    fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), // lone surrogate: 3 bytes (U+FFFD)
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
  maxLength: 40,
});

describe('decodePayload: envelopes', () => {
  it('decodes a seed 001 envelope', () => {
    const payload = JSON.stringify({
      data: { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150.0, volume: 1000, symbol: 'AAPL' },
      timestamp: '2025-04-24T09:45:01.123456',
      sender: 'broker',
    });
    assert.deepEqual(decoded(payload), {
      data: { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150, volume: 1000, symbol: 'AAPL' },
      timestamp: '2025-04-24T09:45:01.123456',
      sender: 'broker',
      id: undefined,
      position: undefined,
    });
  });

  it('keeps an optional string id and ignores unknown fields', () => {
    const out = decoded('{"data":{"x":1},"timestamp":"t","sender":"s","id":"m-1","stream":"1-0"}');
    assert.equal(out.id, 'm-1');
    assert.deepEqual(out.data, { x: 1 });
  });

  it('accepts falsy data other than undefined', () => {
    assert.equal(decoded('{"data":null,"timestamp":"t","sender":"s"}').data, null);
    assert.equal(decoded('{"data":0,"timestamp":"t","sender":"s"}').data, 0);
    assert.equal(decoded('{"data":"","timestamp":"","sender":""}').data, '');
  });

  it('reports invalid JSON with its cause', () => {
    for (const payload of ['', '{', '{"data":1', 'not json', "{'data':1}", '{"data":1}}', 'NaN']) {
      const error = decodeError(payload, ErrorCode.InvalidJson);
      assert.equal(error.code, 'TB_ERR_INVALID_JSON');
      assert.ok(error.cause instanceof SyntaxError, payload);
      assert.match(error.message, /is not valid JSON/);
      assert.match(error.message, /TICKER_UPDATES_AAPL/);
    }
  });

  it('reports JSON that is not an object', () => {
    for (const payload of ['[]', '[{"data":1}]', '42', 'null', '"text"', 'true']) {
      const error = decodeError(payload, ErrorCode.InvalidEnvelope);
      assert.equal(error.code, 'TB_ERR_INVALID_ENVELOPE');
      assert.match(error.message, /not a JSON object/, payload);
    }
  });

  it('reports a missing data field', () => {
    assert.match(decodeError('{"timestamp":"t","sender":"s"}', ErrorCode.InvalidEnvelope).message, /no "data" field/);
    assert.match(decodeError('{}', ErrorCode.InvalidEnvelope).message, /no "data" field/);
  });

  it('reports a missing or non-string timestamp', () => {
    for (const ts of ['', ',"timestamp":1714000000', ',"timestamp":null', ',"timestamp":{}']) {
      const error = decodeError(`{"data":{}${ts},"sender":"s"}`, ErrorCode.InvalidEnvelope);
      assert.match(error.message, /"timestamp" is missing or not a string/);
    }
  });

  it('reports a missing or non-string sender', () => {
    for (const sender of ['', ',"sender":7', ',"sender":null', ',"sender":["s"]']) {
      const error = decodeError(`{"data":{},"timestamp":"t"${sender}}`, ErrorCode.InvalidEnvelope);
      assert.match(error.message, /"sender" is missing or not a string/);
    }
  });

  it('reports a non-string id', () => {
    for (const id of ['1', 'null', '{}', 'true']) {
      const error = decodeError(`{"data":{},"timestamp":"t","sender":"s","id":${id}}`, ErrorCode.InvalidEnvelope);
      assert.match(error.message, /"id" is not a string/);
    }
  });

  it('previews the payload briefly and without control characters', () => {
    // JSON allows CR and LF between tokens, so a hostile writer can put them in the preview.
    const payload = `{\r\n"data":{},"timestamp":"t","sender":7,"junk":"${'x'.repeat(5000)}"}`;
    const error = decodeError(payload, ErrorCode.InvalidEnvelope, 'envelope', MAX, 'evil\r\nchannel');
    assert.ok(error.preview.length < 100, `preview is ${error.preview.length} characters`);
    assert.ok(error.preview.startsWith('{\\x0d\\x0a"data":{}'), error.preview);
    assert.doesNotMatch(error.preview, /[\r\n]/);
    assert.doesNotMatch(error.message, /[\r\n]/);
    assert.match(error.message, /evil\\x0d\\x0achannel/);
  });

  it('never throws, whatever arrives', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), utf8Mix, fc.jsonValue().map((v) => JSON.stringify(v))),
        fc.constantFrom('envelope' as const, 'bare' as const),
        fc.integer({ min: 1, max: 200 }),
        (payload, wire, maxBytes) => {
          const result = decodePayload(payload, CH, wire, maxBytes);
          if (result instanceof DecodeError) assert.ok(Object.values(ErrorCode).includes(result.code));
          else assert.ok('data' in result);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('decodePayload: bare wire', () => {
  it('returns the parsed JSON itself, with no envelope fields', () => {
    assert.deepEqual(decoded('{"pattern_name":"doji","confidence":85.5}', 'bare'), {
      data: { pattern_name: 'doji', confidence: 85.5 },
      timestamp: undefined,
      sender: undefined,
      id: undefined,
      position: undefined,
    });
  });

  it('does not look for an envelope', () => {
    assert.deepEqual(decoded('{"data":{"x":1},"timestamp":"t","sender":"s"}', 'bare').data, { data: { x: 1 }, timestamp: 't', sender: 's' });
    assert.deepEqual(decoded('[1,2]', 'bare').data, [1, 2]);
    assert.equal(decoded('null', 'bare').data, null);
    assert.equal(decoded('{"timestamp":5}', 'bare').sender, undefined);
  });

  it('still rejects invalid JSON and oversized payloads', () => {
    decodeError('{"x":', ErrorCode.InvalidJson, 'bare');
    decodeError('{"x":"0123456789"}', ErrorCode.MessageTooLarge, 'bare', 10);
  });
});

describe('decodePayload: size limit', () => {
  it('rejects payloads over the limit before parsing them', () => {
    // Invalid JSON too, so the size check must come first to produce this code.
    const error = decodeError(`{${'x'.repeat(2000)}`, ErrorCode.MessageTooLarge, 'envelope', 1000);
    assert.equal(error.code, 'TB_ERR_MESSAGE_TOO_LARGE');
    assert.match(error.message, /1000-byte limit/);
    assert.ok(error.preview.length < 100);
  });

  it('counts UTF-8 bytes, not characters', () => {
    // 5 characters of 2 bytes each plus 2 quotes: 7 characters, 12 bytes.
    const payload = JSON.stringify('ééééé');
    assert.equal(payload.length, 7);
    assert.equal(Buffer.byteLength(payload), 12);
    decodeError(payload, ErrorCode.MessageTooLarge, 'bare', 11);
    assert.equal(decoded(payload, 'bare', 12).data, 'ééééé');
    // 3-byte characters: 4 characters, 3·2 + 2 = 8 bytes.
    const euro = JSON.stringify('€€');
    decodeError(euro, ErrorCode.MessageTooLarge, 'bare', 7);
    assert.equal(decoded(euro, 'bare', 8).data, '€€');
    // An emoji is two UTF-16 units and four bytes.
    const emoji = JSON.stringify('😀😀');
    assert.equal(emoji.length, 6);
    decodeError(emoji, ErrorCode.MessageTooLarge, 'bare', 9);
    assert.equal(decoded(emoji, 'bare', 10).data, '😀😀');
  });

  it('applies to multi-byte payloads right at the limit of a real envelope', () => {
    const payload = encodePayload('envelope', { note: 'ж'.repeat(500) }, 'svc');
    const bytes = Buffer.byteLength(payload);
    assert.ok(payload.length < bytes);
    decodeError(payload, ErrorCode.MessageTooLarge, 'envelope', bytes - 1);
    assert.deepEqual(decoded(payload, 'envelope', bytes).data, { note: 'ж'.repeat(500) });
    // A limit between the character count and the byte count must reject.
    decodeError(payload, ErrorCode.MessageTooLarge, 'envelope', payload.length + 1);
  });
});

describe('exceedsBytes', () => {
  it('agrees with Buffer.byteLength for every string and limit', () => {
    fc.assert(
      fc.property(utf8Mix, fc.integer({ min: -4, max: 4 }), fc.nat(200), fc.boolean(), (text, delta, anyMax, near) => {
        const bytes = Buffer.byteLength(text, 'utf8');
        const max = near ? Math.max(0, bytes + delta) : anyMax;
        assert.equal(exceedsBytes(text, max), bytes > max, `${JSON.stringify(text)} (${bytes} bytes) vs ${max}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('handles the edges', () => {
    assert.equal(exceedsBytes('', 0), false);
    assert.equal(exceedsBytes('a', 0), true);
    assert.equal(exceedsBytes('abc', 3), false);
    assert.equal(exceedsBytes('abcd', 3), true);
    assert.equal(exceedsBytes('é', 1), true);
    assert.equal(exceedsBytes('é', 2), false);
    assert.equal(exceedsBytes('\ud800', 2), true);
    assert.equal(exceedsBytes('\ud800', 3), false);
  });
});

describe('encodePayload', () => {
  it('round-trips any JSON data through an envelope', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ minLength: 1, maxLength: 128 }), (data, sender) => {
        const before = Date.now();
        const payload = encodePayload('envelope', data, sender);
        const out = decoded(payload, 'envelope');
        assert.deepEqual(out.data, JSON.parse(JSON.stringify(data)));
        assert.equal(out.sender, sender);
        assert.equal(out.id, undefined);
        const at = Date.parse(out.timestamp ?? '');
        assert.ok(at >= before - 1 && at <= Date.now() + 1, `timestamp ${out.timestamp} is now`);
        assert.equal(new Date(at).toISOString(), out.timestamp, 'timestamp is ISO-8601 UTC');
      }),
      { numRuns: 300 },
    );
  });

  it('writes exactly the envelope fields', () => {
    const parsed = JSON.parse(encodePayload('envelope', { ticker: 'AAPL' }, 'bot-1')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(parsed).sort(), ['data', 'sender', 'timestamp']);
    assert.deepEqual(parsed.data, { ticker: 'AAPL' });
  });

  it('writes bare data unchanged', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (data) => {
        const payload = encodePayload('bare', data, 'ignored');
        assert.equal(payload, JSON.stringify(data));
        assert.deepEqual(decoded(payload, 'bare').data, JSON.parse(payload));
      }),
    );
  });
});

describe('createEnvelope', () => {
  it('stamps the given time and sender', () => {
    const now = new Date('2025-04-24T09:45:01.123Z');
    assert.deepEqual(createEnvelope({ a: 1 }, 'svc', now), { data: { a: 1 }, timestamp: '2025-04-24T09:45:01.123Z', sender: 'svc' });
  });
});
