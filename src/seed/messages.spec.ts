// The seed 001 pure functions (CHANNELS, MESSAGE_SCHEMAS, the message functions) with no server.
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RegistrationSchema, TickerUpdateSchema } from '../catalogs/broker.ts';
import { BusError, ChannelParamError, DecodeError, ErrorCode, UnknownChannelError, ValidationError } from '../core/errors.ts';
import { CHANNELS } from './channels.ts';
import { MESSAGE_SCHEMAS } from './message-schemas.ts';
import { MessageValidationError, createMessage, extractData, formatForChannel, parseMessage, validateMessage } from './messages.ts';

const price = { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'AAPL', price: 150 };
const isoInstant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const savedSender = process.env.TICKBUS_SENDER;
beforeEach(() => {
  delete process.env.TICKBUS_SENDER;
});
afterEach(() => {
  if (savedSender === undefined) delete process.env.TICKBUS_SENDER;
  else process.env.TICKBUS_SENDER = savedSender;
});

describe('CHANNELS', () => {
  it('names the registration channel and builds ticker channels', () => {
    assert.equal(CHANNELS.BROKER_REGISTRATION, 'BROKER_REGISTRATION');
    assert.equal(CHANNELS.getTickerChannel('AAPL'), 'TICKER_UPDATES_AAPL');
    assert.equal(CHANNELS.getTickerChannel(' brk.b '), 'TICKER_UPDATES_BRK.B', 'normalised like the catalog does');
  });

  it('refuses tickers that would put glob characters or spaces into a channel name', () => {
    for (const bad of ['AA PL', 'A*', 'A?', '[A]', '', 'X'.repeat(16), 'A\r\nB']) {
      assert.throws(() => CHANNELS.getTickerChannel(bad), (e: unknown) => e instanceof ChannelParamError && e.code === ErrorCode.InvalidChannelParam, JSON.stringify(bad));
    }
  });

  it('gives the catalog schema of concrete channel names and refuses unknown ones', () => {
    assert.equal(CHANNELS.getSchema(CHANNELS.BROKER_REGISTRATION), RegistrationSchema);
    assert.equal(CHANNELS.getSchema(CHANNELS.getTickerChannel('MSFT')), TickerUpdateSchema);
    for (const unknown of ['NOPE', 'TICKER_UPDATES_', 'TICKER_UPDATES_aapl', 'TICKER_UPDATES_{ticker}']) {
      assert.throws(() => CHANNELS.getSchema(unknown), (e: unknown) => e instanceof UnknownChannelError && e.code === ErrorCode.UnknownChannel && e.channel === unknown);
    }
  });
});

describe('MESSAGE_SCHEMAS', () => {
  it('holds the two broker schemas and looks them up by schema or channel name', () => {
    assert.equal(MESSAGE_SCHEMAS.BROKER_REGISTRATION, RegistrationSchema);
    assert.equal(MESSAGE_SCHEMAS.TICKER_UPDATES, TickerUpdateSchema);
    assert.equal(MESSAGE_SCHEMAS.get(CHANNELS.BROKER_REGISTRATION), RegistrationSchema);
    assert.equal(MESSAGE_SCHEMAS.get('TICKER_UPDATES'), TickerUpdateSchema);
    assert.equal(MESSAGE_SCHEMAS.get('TICKER_UPDATES_AAPL'), TickerUpdateSchema);
    assert.equal(MESSAGE_SCHEMAS.get('NOPE'), undefined);
    assert.equal(MESSAGE_SCHEMAS.get('get'), undefined, 'method names are not schema names');
  });
});

describe('validateMessage', () => {
  it('returns the validated data, normalised by the schema', () => {
    assert.deepEqual(validateMessage('TICKER_UPDATES_AAPL', price), price);
    assert.deepEqual(validateMessage('BROKER_REGISTRATION', { action: 'subscribe', ticker: ' msft ' }), { action: 'subscribe', ticker: 'MSFT' });
  });

  it('throws MessageValidationError, which is ValidationError, with every issue', () => {
    assert.equal(MessageValidationError, ValidationError);
    assert.throws(
      () => validateMessage('TICKER_UPDATES_AAPL', { symbol: 'AAPL', price: -1 }),
      (e: unknown) =>
        e instanceof MessageValidationError &&
        e instanceof BusError &&
        e.code === ErrorCode.Validation &&
        e.channel === 'TICKER_UPDATES_AAPL' &&
        e.issues.some((i) => i.path === 'type'),
    );
    assert.throws(() => validateMessage('BROKER_REGISTRATION', { action: 'register', ticker: 'AAPL' }), (e: unknown) => e instanceof MessageValidationError && e.issues.some((i) => i.path === 'action'));
  });

  it('throws UnknownChannelError for channels no catalog defines', () => {
    assert.throws(() => validateMessage('NOPE', {}), (e: unknown) => e instanceof UnknownChannelError && e instanceof BusError);
  });
});

describe('createMessage', () => {
  it('wraps data with an ISO-8601 timestamp and the sender', () => {
    const before = Date.now();
    const m = createMessage(price, 'broker_service');
    assert.deepEqual(Object.keys(m).sort(), ['data', 'sender', 'timestamp']);
    assert.equal(m.data, price);
    assert.equal(m.sender, 'broker_service');
    assert.match(m.timestamp, isoInstant);
    assert.ok(Date.parse(m.timestamp) >= before - 1 && Date.parse(m.timestamp) <= Date.now() + 1);
  });

  it('defaults the sender like the bus: TICKBUS_SENDER, else tickbus', () => {
    assert.equal(createMessage(1).sender, 'tickbus');
    process.env.TICKBUS_SENDER = 'bot-7';
    assert.equal(createMessage(1).sender, 'bot-7');
  });

  it('refuses an empty sender', () => {
    assert.throws(() => createMessage(1, ''), (e: unknown) => e instanceof BusError && e.code === ErrorCode.Config);
  });
});

describe('formatForChannel, parseMessage, extractData', () => {
  it('round-trips: the JSON is the documented envelope and parses back to it', () => {
    const json = formatForChannel('TICKER_UPDATES_AAPL', price, 'broker_service');
    const raw = JSON.parse(json) as Record<string, unknown>;
    assert.deepEqual(Object.keys(raw).sort(), ['data', 'sender', 'timestamp']);
    assert.deepEqual(raw.data, price);
    assert.equal(raw.sender, 'broker_service');
    const parsed = parseMessage(json);
    assert.deepEqual(parsed, raw);
    assert.deepEqual(extractData(parsed), price);
  });

  it('validates before formatting', () => {
    assert.throws(() => formatForChannel('TICKER_UPDATES_AAPL', { price: 1 }), MessageValidationError);
    assert.throws(() => formatForChannel('NOPE', price), UnknownChannelError);
    assert.equal((JSON.parse(formatForChannel('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'tsla' })) as { data: { ticker: string } }).data.ticker, 'TSLA');
  });

  it('writes bare-wire channels bare, as their readers expect', () => {
    const tick = { symbol: 'AAPL', price: 1.5, volume: 10, timestamp: 1_700_000_000 };
    assert.deepEqual(JSON.parse(formatForChannel('tickstock:market:ticks', tick)), tick);
  });

  it('parseMessage throws a typed DecodeError on bad JSON and non-envelopes', () => {
    const cases: [string, string][] = [
      ['not json', ErrorCode.InvalidJson],
      ['[1,2]', ErrorCode.InvalidEnvelope],
      ['null', ErrorCode.InvalidEnvelope],
      ['{"timestamp":"t","sender":"s"}', ErrorCode.InvalidEnvelope],
      ['{"data":1,"sender":"s"}', ErrorCode.InvalidEnvelope],
      ['{"data":1,"timestamp":"t"}', ErrorCode.InvalidEnvelope],
    ];
    for (const [json, code] of cases) {
      assert.throws(() => parseMessage(json), (e: unknown) => e instanceof DecodeError && e.code === code && e.channel === undefined, json);
    }
    assert.throws(() => parseMessage('{', 'TICKER_UPDATES_AAPL'), (e: unknown) => e instanceof DecodeError && e.channel === 'TICKER_UPDATES_AAPL');
  });

  it('parseMessage keeps an id and ignores unknown fields', () => {
    assert.deepEqual(parseMessage('{"data":{"a":1},"timestamp":"t","sender":"s","id":"m-1","extra":true}'), { data: { a: 1 }, timestamp: 't', sender: 's', id: 'm-1' });
  });
});
