// Every code example of the seed 001 README, translated to TypeScript and run against a
// private redis-server. Each README step is kept in order; the checks after it show that
// what the README promises really happened on the wire.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, type RedisClientType } from 'redis';
import {
  BusError,
  CHANNELS,
  ChannelParamError,
  ClosedError,
  ErrorCode,
  MESSAGE_SCHEMAS,
  MessageValidationError,
  NotConnectedError,
  RedisConnection,
  RedisPublisher,
  RedisSubscriber,
  UnknownChannelError,
  ValidationError,
  createMessage,
  extractData,
  formatForChannel,
  parseMessage,
  validateMessage,
  type Registration,
  type SeedMessage,
  type TickerUpdate,
} from '../../src/seed/index.ts';
import type { StandardSchemaV1 } from '../../src/core/schema.ts';
import { freePort, startRedis, type RedisServer } from '../harness/redis-server.ts';
import { Inbox, sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

const logger = silentLogger;
const isoInstant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface WireMessage {
  channel: string;
  payload: string;
}

/** Whether a schema accepts a value (the shipped schemas validate synchronously). */
function accepts(schema: StandardSchemaV1, value: unknown): boolean {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) throw new Error('expected a synchronous schema');
  return result.issues === undefined;
}

describe('seed 001 README against redis-server', () => {
  let server: RedisServer;
  let rawPublisher: RedisClientType;
  const saved = { REDIS_URL: process.env.REDIS_URL, TICKBUS_SENDER: process.env.TICKBUS_SENDER };
  const cleanups: (() => Promise<unknown>)[] = [];

  /** A plain node-redis subscriber that records exactly what reaches Redis. */
  async function wireTap(...channels: string[]): Promise<Inbox<WireMessage>> {
    const inbox = new Inbox<WireMessage>();
    const client = createClient({ url: server.url });
    await client.connect();
    cleanups.push(() => client.close());
    await client.subscribe(channels, (payload, channel) => inbox.push({ channel, payload }));
    return inbox;
  }

  /** Closed after each test even when an assertion fails first; close() is idempotent. */
  function track<T extends { close(): Promise<void> }>(thing: T): T {
    cleanups.push(() => thing.close());
    return thing;
  }

  before(async () => {
    server = await startRedis();
    // The Quick Start constructs clients with no arguments: they must find Redis via REDIS_URL.
    process.env.REDIS_URL = server.url;
    delete process.env.TICKBUS_SENDER;
    rawPublisher = createClient({ url: server.url });
    await rawPublisher.connect();
  });

  afterEach(async () => {
    await Promise.all(cleanups.splice(0).map((c) => c()));
  });

  after(async () => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await rawPublisher.close();
    await server.stop();
  });

  describe('Quick Start', () => {
    it('Publishing Messages: the price update reaches Redis as the documented envelope', async () => {
      const wire = await wireTap('TICKER_UPDATES_AAPL');

      // --- README ---
      // Create a publisher
      const publisher = track(new RedisPublisher({ logger }));

      // Publish a price update to a ticker channel
      const ticker = 'AAPL';
      const tickerChannel = CHANNELS.getTickerChannel(ticker);
      const priceData = {
        type: 'price',
        timestamp: '2025-04-24T09:45:00.000Z',
        price: 150.0,
        volume: 1000,
        symbol: ticker,
      };
      const receivers = await publisher.publish(tickerChannel, priceData);

      // Close when done
      await publisher.close();
      // --- end ---

      assert.equal(receivers, 1, 'the wire tap received it');
      const [got] = await wire.waitFor(1);
      assert.equal(got?.channel, 'TICKER_UPDATES_AAPL');
      const envelope = JSON.parse(got?.payload ?? '') as Record<string, unknown>;
      // The seed's three fields, and the stream position the ticker channel's history adds.
      assert.deepEqual(Object.keys(envelope).sort(), ['data', 'position', 'sender', 'timestamp']);
      assert.match(String(envelope.position), /^\d+-\d+$/);
      assert.deepEqual(envelope.data, priceData);
      assert.equal(envelope.sender, 'tickbus', 'the bus default sender');
      assert.match(String(envelope.timestamp), isoInstant);
      await assert.rejects(publisher.publish(tickerChannel, priceData), ClosedError, 'closed means closed');
    });

    it('Subscribing to Messages: the handler runs with the data until close()', async () => {
      const feed = track(new RedisPublisher({ url: server.url, logger }));
      const printed: string[] = [];

      // --- README ---
      // Define a message handler
      const tickerHandler = (message: SeedMessage<TickerUpdate>): void => {
        const data = message.data;
        if (data.type === 'price') {
          printed.push(`Received price: $${data.price?.toFixed(2)} for ${data.symbol}`);
        }
      };

      // Create a subscriber
      const subscriber = track(new RedisSubscriber({ logger }));

      // Subscribe to ticker updates
      const ticker = 'AAPL';
      const tickerChannel = CHANNELS.getTickerChannel(ticker);
      await subscriber.subscribe(tickerChannel, tickerHandler);

      // Start listening for messages (in the background)
      await subscriber.startListening();

      // Keep your application running (here: until one price arrives)
      assert.equal(await feed.publish(tickerChannel, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150, volume: 1000, symbol: 'AAPL' }), 1);
      await waitFor(() => printed.length === 1, 'the price to be printed');
      // ...then the KeyboardInterrupt branch
      await subscriber.close();
      // --- end ---

      assert.deepEqual(printed, ['Received price: $150.00 for AAPL']);
      assert.equal(await feed.publish(tickerChannel, { type: 'price', timestamp: '2025-04-24T09:46:00.000Z', price: 151, symbol: 'AAPL' }), 0, 'close() released the subscription');
      await assert.rejects(subscriber.subscribe(tickerChannel, tickerHandler), ClosedError);
      await assert.rejects(subscriber.startListening(), ClosedError);
    });
  });

  describe('API Reference', () => {
    it('CHANNELS: fixed and ticker channel names, and their schemas', () => {
      // --- README ---
      // Fixed registration channel
      const registration = CHANNELS.BROKER_REGISTRATION; // "BROKER_REGISTRATION"

      // Dynamic ticker channels
      const tickerChannel = CHANNELS.getTickerChannel('AAPL'); // "TICKER_UPDATES_AAPL"

      // Get schema for a channel
      const schema = CHANNELS.getSchema(CHANNELS.BROKER_REGISTRATION);
      const tickerSchema = CHANNELS.getSchema(tickerChannel);
      // --- end ---

      assert.equal(registration, 'BROKER_REGISTRATION');
      assert.equal(tickerChannel, 'TICKER_UPDATES_AAPL');
      assert.ok(accepts(schema, { action: 'subscribe', ticker: 'AAPL' }));
      assert.ok(!accepts(schema, { action: 'register', ticker: 'AAPL' }), 'allowed actions: subscribe, unsubscribe');
      assert.ok(!accepts(schema, { action: 'subscribe' }), 'ticker is required');
      assert.ok(accepts(tickerSchema, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z' }), 'only type and timestamp are required');
      assert.ok(accepts(tickerSchema, { type: 'order', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'AAPL', order_data: { id: 'o-1' } }));
      assert.ok(!accepts(tickerSchema, { type: 'trade', timestamp: '2025-04-24T09:45:00.000Z' }), 'types: price, order');
      assert.throws(() => CHANNELS.getTickerChannel('AA PL*'), ChannelParamError);
      assert.throws(() => CHANNELS.getSchema('TICKER_UPDATES'), UnknownChannelError);
    });

    it('MESSAGE_SCHEMAS: the same schemas by name and by channel', () => {
      // --- README ---
      // Access schemas for validation
      const registrationSchema = MESSAGE_SCHEMAS.BROKER_REGISTRATION;
      const tickerUpdatesSchema = MESSAGE_SCHEMAS.TICKER_UPDATES;

      // Get schema dynamically
      const schema = MESSAGE_SCHEMAS.get(CHANNELS.BROKER_REGISTRATION);
      // --- end ---

      assert.equal(schema, registrationSchema);
      assert.equal(registrationSchema, CHANNELS.getSchema(CHANNELS.BROKER_REGISTRATION));
      assert.equal(tickerUpdatesSchema, CHANNELS.getSchema(CHANNELS.getTickerChannel('MSFT')));
      assert.ok(accepts(registrationSchema, { action: 'unsubscribe', ticker: 'MSFT' }));
      assert.ok(accepts(tickerUpdatesSchema, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 1 }));
      assert.equal(MESSAGE_SCHEMAS.get('NOT_A_CHANNEL'), undefined);
    });

    it('RedisConnection: a working client for host/port/db, closed by disconnect()', async () => {
      // --- README ---
      // Create a connection (JavaScript connects asynchronously: connect() before use)
      const connection = await new RedisConnection({ host: '127.0.0.1', port: server.port, db: 0, logger }).connect();
      cleanups.push(() => connection.disconnect());

      // Get the Redis client
      const redisClient = connection.connection;
      assert.equal(await redisClient.ping(), 'PONG');
      await redisClient.set('seed:readme', 'hello');

      // Close the connection when done
      await connection.disconnect();
      // --- end ---

      assert.equal(server.cli('GET', 'seed:readme'), 'hello', 'the SET reached this server, db 0');
      assert.equal(connection.isConnected, false);
      assert.equal(redisClient.isOpen, false);
      await connection.disconnect(); // twice is harmless
    });

    it('RedisConnection: db from the options, REDIS_URL fallback, unreachable Redis', async () => {
      const inDb2 = await new RedisConnection({ url: `${server.url}/2`, logger }).connect();
      cleanups.push(() => inDb2.disconnect());
      await inDb2.connection.set('seed:db', 'two');
      assert.equal(server.cli('-n', '2', 'GET', 'seed:db'), 'two');
      assert.equal(server.cli('-n', '0', 'EXISTS', 'seed:db'), '0');

      const fromEnv = new RedisConnection({ logger });
      assert.equal(fromEnv.config.port, server.port, 'no options: REDIS_URL');
      cleanups.push(() => fromEnv.disconnect());
      await fromEnv.connect();
      assert.equal(await fromEnv.connection.get('seed:readme'), 'hello');

      const nowhere = new RedisConnection({ port: await freePort(), logger });
      // Raced against a timer so that a connect() that retries forever fails this test
      // instead of hanging the run.
      const outcome = await Promise.race([nowhere.connect().then(() => 'connected', (e: unknown) => e), sleep(3000).then(() => 'still retrying')]);
      await nowhere.disconnect();
      assert.ok(outcome instanceof NotConnectedError, `fails fast with NotConnectedError, got ${String(outcome)}`);
      assert.equal(outcome.code, ErrorCode.NotConnected);
      assert.ok(outcome.message.includes(nowhere.config.display), 'the message says where');
    });

    it('RedisPublisher: a ticker update and a registration, both delivered', async () => {
      const wire = await wireTap('TICKER_UPDATES_MSFT', 'BROKER_REGISTRATION');
      const receivers: number[] = [];

      // --- README ---
      // Create a publisher
      const publisher = track(new RedisPublisher({ host: '127.0.0.1', port: server.port, db: 0, logger }));

      // Publish a ticker update message
      const tickerChannel = CHANNELS.getTickerChannel('MSFT');
      receivers.push(
        await publisher.publish(tickerChannel, {
          type: 'price',
          timestamp: '2025-04-24T09:45:00.000Z',
          symbol: 'MSFT',
          price: 300.5,
          volume: 2000,
        }),
      );

      // Publish a broker registration message
      receivers.push(
        await publisher.publish(CHANNELS.BROKER_REGISTRATION, {
          action: 'subscribe',
          ticker: 'MSFT',
        }),
      );

      // Clean up
      await publisher.close();
      // --- end ---

      assert.deepEqual(receivers, [1, 1]);
      const got = await wire.waitFor(2);
      assert.deepEqual(
        got.map((m) => [m.channel, (JSON.parse(m.payload) as { data: unknown }).data]),
        [
          ['TICKER_UPDATES_MSFT', { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'MSFT', price: 300.5, volume: 2000 }],
          ['BROKER_REGISTRATION', { action: 'subscribe', ticker: 'MSFT' }],
        ],
      );
    });

    it('RedisSubscriber: both handlers run, then unsubscribe(channel), unsubscribe() and close()', async () => {
      const feed = track(new RedisPublisher({ url: server.url, sender: 'broker_service', logger }));
      const printed: string[] = [];
      const seen: SeedMessage[] = [];

      // --- README ---
      // Create a subscriber
      const subscriber = track(new RedisSubscriber({ host: '127.0.0.1', port: server.port, db: 0, logger }));

      // Define handlers
      function tickerHandler(message: SeedMessage<TickerUpdate>): void {
        seen.push(message);
        // Process ticker updates (price or order)
        const data = message.data;
        if (data.type === 'price') {
          printed.push(`Price update for ${data.symbol}: ${data.price}`);
        } else if (data.type === 'order') {
          printed.push(`Order update for ${data.symbol}`);
        }
      }

      function registrationHandler(message: SeedMessage<Registration>): void {
        seen.push(message);
        // Process broker registration messages
        const data = message.data;
        printed.push(`Registration action: ${data.action} for ${data.ticker}`);
      }

      // Subscribe to channels
      const tickerChannel = CHANNELS.getTickerChannel('AAPL');
      await subscriber.subscribe(tickerChannel, tickerHandler);
      await subscriber.subscribe(CHANNELS.BROKER_REGISTRATION, registrationHandler);

      // Start listening for messages
      await subscriber.startListening();

      // (traffic from the broker)
      const at = '2025-04-24T09:45:00.000Z';
      assert.equal(await feed.publish(tickerChannel, { type: 'price', timestamp: at, symbol: 'AAPL', price: 150.5, volume: 10 }), 1);
      assert.equal(await feed.publish(tickerChannel, { type: 'order', timestamp: at, symbol: 'AAPL', order_data: { id: 'o-1', side: 'buy' } }), 1);
      assert.equal(await feed.publish(CHANNELS.BROKER_REGISTRATION, { action: 'subscribe', ticker: 'MSFT' }), 1);
      await waitFor(() => printed.length === 3, 'three handled messages');
      assert.deepEqual(printed, ['Price update for AAPL: 150.5', 'Order update for AAPL', 'Registration action: subscribe for MSFT']);

      // Unsubscribe from a specific channel
      await subscriber.unsubscribe(tickerChannel);
      assert.equal(await feed.publish(tickerChannel, { type: 'price', timestamp: at, symbol: 'AAPL', price: 1 }), 0);
      assert.equal(await feed.publish(CHANNELS.BROKER_REGISTRATION, { action: 'unsubscribe', ticker: 'MSFT' }), 1, 'the other channel stays');
      await waitFor(() => printed.length === 4, 'the registration after unsubscribe(channel)');

      // Unsubscribe from all channels
      await subscriber.unsubscribe();
      assert.equal(await feed.publish(CHANNELS.BROKER_REGISTRATION, { action: 'subscribe', ticker: 'TSLA' }), 0);

      // Stop listening and clean up
      await subscriber.close();
      // --- end ---

      assert.equal(printed[3], 'Registration action: unsubscribe for MSFT');
      await sleep(50);
      assert.equal(printed.length, 4, 'nothing after unsubscribe()');
      assert.deepEqual(
        seen.map((m) => [m.channel, m.sender]),
        [
          ['TICKER_UPDATES_AAPL', 'broker_service'],
          ['TICKER_UPDATES_AAPL', 'broker_service'],
          ['BROKER_REGISTRATION', 'broker_service'],
          ['BROKER_REGISTRATION', 'broker_service'],
        ],
      );
      for (const m of seen) assert.match(m.timestamp ?? '', isoInstant);
    });

    it('RedisSubscriber: subscribing after startListening is immediate; invalid messages never reach handlers', async () => {
      const subscriber = track(new RedisSubscriber({ logger }));
      const errors: BusError[] = [];
      subscriber.bus.on('error', (e) => errors.push(e));
      await subscriber.startListening();
      const inbox = new Inbox<SeedMessage>();
      const channel = CHANNELS.getTickerChannel('NVDA');
      await subscriber.subscribe(channel, inbox.push);
      // Resolved means subscribed: a publish right now has a receiver.
      assert.equal(await rawPublisher.publish(channel, 'not json'), 1);
      assert.equal(await rawPublisher.publish(channel, JSON.stringify(createMessage({ type: 'price' }))), 1, 'no timestamp: fails the schema');
      assert.equal(await rawPublisher.publish(channel, formatForChannel(channel, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 9 })), 1);
      await inbox.waitFor(1);
      await waitFor(() => errors.length === 2, 'two rejections');
      assert.deepEqual(inbox.items.map((m) => m.data), [{ type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 9 }]);
      assert.deepEqual(errors.map((e) => [e.code, e.channel]), [
        [ErrorCode.InvalidJson, channel],
        [ErrorCode.Validation, channel],
      ]);

      // Channel names are exact, never globs, and channels outside the catalogs pass through unvalidated.
      const other = new Inbox<SeedMessage>();
      await subscriber.subscribe('custom.*', other.push);
      assert.equal(await rawPublisher.publish('custom.x', JSON.stringify(createMessage(1, 'x'))), 0);
      assert.equal(await rawPublisher.publish('custom.*', JSON.stringify(createMessage({ any: 'thing' }, 'x'))), 1);
      const [only] = await other.waitFor(1);
      assert.deepEqual(only?.data, { any: 'thing' });
    });

    it('RedisSubscriber: unsubscribe() before startListening drops the registrations', async () => {
      const subscriber = track(new RedisSubscriber({ logger }));
      const inbox = new Inbox<SeedMessage>();
      await subscriber.subscribe(CHANNELS.getTickerChannel('AMD'), inbox.push);
      await subscriber.subscribe(CHANNELS.BROKER_REGISTRATION, inbox.push);
      await subscriber.unsubscribe(CHANNELS.getTickerChannel('AMD'));
      await subscriber.startListening();
      assert.deepEqual(subscriber.bus.subscriptions(), { channels: ['BROKER_REGISTRATION'], patterns: [] });
      assert.equal(Number(server.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_AMD').split('\n')[1]), 0);
    });
  });

  it('Message Functions: validate, create, format, parse and extract', async () => {
    const printed: string[] = [];

    // --- README ---
    // Validate a message against a channel's schema
    const tickerChannel = CHANNELS.getTickerChannel('AAPL');
    try {
      validateMessage(tickerChannel, {
        type: 'price',
        timestamp: '2025-04-24T09:45:00.000Z',
        symbol: 'AAPL',
        price: 150.0,
      });
    } catch (e) {
      if (!(e instanceof MessageValidationError)) throw e;
      printed.push(`Invalid message: ${e.message}`);
    }

    // Create a standardized message
    const message = createMessage({
      type: 'price',
      timestamp: '2025-04-24T09:45:00.000Z',
      symbol: 'AAPL',
      price: 150.0,
    });

    // Format a message for a specific channel (validates and formats)
    const messageJson = formatForChannel(tickerChannel, {
      type: 'price',
      timestamp: '2025-04-24T09:45:00.000Z',
      symbol: 'AAPL',
      price: 150.0,
    });

    // Parse a message from JSON
    const parsed = parseMessage(messageJson);

    // Extract data from a message
    const data = extractData(parsed);
    // --- end ---

    const expected = { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'AAPL', price: 150 };
    assert.equal(printed.length, 0, 'the README message is valid');
    assert.deepEqual(message.data, expected);
    assert.equal(message.sender, 'tickbus');
    assert.match(message.timestamp, isoInstant);
    const raw = JSON.parse(messageJson) as Record<string, unknown>;
    assert.deepEqual(Object.keys(raw).sort(), ['data', 'sender', 'timestamp']);
    assert.deepEqual(raw.data, expected);
    assert.deepEqual(parsed, raw);
    assert.deepEqual(data, expected);

    // The catch branch, with data the README calls invalid elsewhere (no `type`).
    try {
      validateMessage(tickerChannel, { symbol: 'AAPL', price: 150.0 });
    } catch (e) {
      if (!(e instanceof MessageValidationError)) throw e;
      printed.push(`Invalid message: ${e.message}`);
    }
    assert.equal(printed.length, 1);
    assert.match(printed[0] ?? '', /^Invalid message: Invalid message for channel "TICKER_UPDATES_AAPL": type: /);

    // What formatForChannel returns is what a subscriber accepts from the wire.
    const subscriber = track(new RedisSubscriber({ logger }));
    const inbox = new Inbox<SeedMessage>();
    await subscriber.subscribe(tickerChannel, inbox.push);
    await subscriber.startListening();
    assert.equal(await rawPublisher.publish(tickerChannel, messageJson), 1);
    const [received] = await inbox.waitFor(1);
    assert.deepEqual(received, { data: expected, timestamp: parsed.timestamp, sender: parsed.sender, channel: tickerChannel });
  });

  it('Error Handling: publish refuses data missing "type" with MessageValidationError, and sends nothing', async () => {
    const wire = await wireTap('TICKER_UPDATES_AAPL');
    const publisher = track(new RedisPublisher({ logger }));
    const printed: string[] = [];
    let caught: unknown;

    // --- README ---
    try {
      // Missing required field 'type'
      const tickerChannel = CHANNELS.getTickerChannel('AAPL');
      await publisher.publish(tickerChannel, {
        symbol: 'AAPL',
        price: 150.0,
      });
    } catch (e) {
      if (!(e instanceof MessageValidationError)) throw e;
      caught = e;
      printed.push(`Validation error: ${e.message}`);
    }
    // --- end ---

    assert.ok(caught instanceof MessageValidationError);
    assert.ok(caught instanceof ValidationError, 'the bus name matches the same error');
    assert.ok(caught instanceof BusError);
    assert.equal(caught.code, ErrorCode.Validation);
    assert.equal(caught.channel, 'TICKER_UPDATES_AAPL');
    assert.ok(caught.issues.some((i) => i.path === 'type'), 'the issue names the missing field');
    assert.equal(printed.length, 1);

    // Nothing reached Redis: the first message the tap sees is the next, valid one.
    const valid = { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'AAPL', price: 150 };
    assert.equal(await publisher.publish('TICKER_UPDATES_AAPL', valid), 1);
    const [first] = await wire.waitFor(1);
    assert.deepEqual((JSON.parse(first?.payload ?? '') as { data: unknown }).data, valid);
    await sleep(30);
    assert.equal(wire.items.length, 1);

    // Unknown channels are refused too, with their own BusError.
    await assert.rejects(publisher.publish('NOT_A_CHANNEL', valid), (e: unknown) => e instanceof UnknownChannelError && e.code === ErrorCode.UnknownChannel);
  });
});
