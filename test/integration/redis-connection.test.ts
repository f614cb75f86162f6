// Connection behaviour that only a real Redis can show: re-subscription after the server
// drops the subscriber, fail-fast publishing while Redis is down, clean close.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerRegistration, ErrorCode, NotConnectedError, TICKER, TickerUpdateSchema, TickerUpdates, createBus, defineChannel, type BusError } from '../../src/index.ts';
import { startRedis, freePort, type RedisServer } from '../harness/redis-server.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

/** Like the ticker channel, without history: plain PUBLISH, the coalescing path. */
const Quotes = defineChannel({ name: 'QUOTES_{ticker}', schema: TickerUpdateSchema, params: { ticker: TICKER } });

const price = (symbol: string, p: number) => ({ type: 'price' as const, timestamp: new Date().toISOString(), price: p, volume: 1, symbol });

describe('redis connection', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server.stop();
  });

  it('re-subscribes every channel and pattern after CLIENT KILL TYPE pubsub', async () => {
    const pub = createBus({ redis: { url: server.url }, logger: silentLogger });
    const sub = createBus({ redis: { url: server.url }, logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 } });
    const events: string[] = [];
    sub.on('disconnected', (role) => events.push(`disconnected:${role}`));
    sub.on('reconnected', (role) => events.push(`reconnected:${role}`));
    const exact = new Inbox<number>();
    const pattern = new Inbox<string>();
    const registrations = new Inbox<string>();
    await sub.subscribe(TickerUpdates.of({ ticker: 'AAPL' }), (d) => exact.push(d.type === 'price' ? (d.price ?? 0) : 0));
    await sub.subscribe(TickerUpdates, (_d, ctx) => pattern.push(ctx.params.ticker));
    await sub.subscribe(BrokerRegistration, (d) => registrations.push(d.ticker));

    await pub.publish(TickerUpdates.of({ ticker: 'AAPL' }), price('AAPL', 1));
    await exact.waitFor(1);

    const killed = Number(server.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    assert.equal(killed, 1, 'one pub/sub connection was killed');
    await waitFor(() => events.includes('reconnected:subscriber'), 'the subscriber to reconnect');
    assert.deepEqual(events, ['disconnected:subscriber', 'reconnected:subscriber']);

    assert.equal((await pub.publish(TickerUpdates.of({ ticker: 'AAPL' }), price('AAPL', 2))).receivers, 2, 'exact and pattern subscriptions are back');
    await pub.publish(TickerUpdates.of({ ticker: 'MSFT' }), price('MSFT', 3));
    await pub.publish(BrokerRegistration, { action: 'subscribe', ticker: 'TSLA' });
    await exact.waitFor(2);
    await pattern.waitFor(3);
    await registrations.waitFor(1);
    assert.deepEqual(exact.items, [1, 2]);
    assert.deepEqual(pattern.items, ['AAPL', 'AAPL', 'MSFT']);
    assert.deepEqual(registrations.items, ['TSLA']);
    await Promise.all([pub.close(), sub.close()]);
  });

  it('does not subscribe again, after a reconnection, what was unsubscribed while disconnected', async () => {
    const own = await startRedis();
    const sub = createBus({ redis: { url: own.url }, logger: silentLogger, reconnect: { baseMs: 20, maxMs: 100 } });
    try {
      const reconnected = new Inbox<string>();
      sub.on('reconnected', (role) => reconnected.push(role));
      const disconnected = new Inbox<string>();
      sub.on('disconnected', (role) => disconnected.push(role));
      const gone = await sub.subscribe(TickerUpdates.of({ ticker: 'GONE' }), () => {});
      await sub.subscribe(TickerUpdates.of({ ticker: 'STAY' }), () => {});
      await own.kill();
      await disconnected.waitFor(1);
      await gone.unsubscribe(); // Redis is down
      await own.restart();
      await reconnected.waitFor(1);
      assert.deepEqual(own.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_GONE', 'TICKER_UPDATES_STAY').split('\n'), ['TICKER_UPDATES_GONE', '0', 'TICKER_UPDATES_STAY', '1']);
    } finally {
      await sub.close();
      await own.stop();
    }
  });

  it('fails fast with NotConnectedError while Redis is down, and publishes again after it returns', async () => {
    const own = await startRedis();
    const bus = createBus({ redis: { url: own.url }, logger: silentLogger, reconnect: { baseMs: 20, maxMs: 100 } });
    const errors: BusError[] = [];
    bus.on('error', (e) => errors.push(e));
    const disconnected = new Inbox<string>();
    bus.on('disconnected', (role) => disconnected.push(role));
    await bus.connect();
    await bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL' });
    await own.kill();
    await disconnected.waitFor(1);
    const started = performance.now();
    await assert.rejects(bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL' }), (e: unknown) => e instanceof NotConnectedError && e.code === ErrorCode.NotConnected);
    assert.ok(performance.now() - started < 100, 'the failure is immediate, not a timeout');
    assert.match(await bus.context.metrics.registry.getSingleMetricAsString('tickbus_publish_failures_total'), /code="TB_ERR_NOT_CONNECTED"\} 1/);
    await own.restart();
    await waitFor(async () => {
      try {
        await bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL' });
        return true;
      } catch {
        return false;
      }
    }, 'publishing to work again');
    assert.ok(errors.length > 0, 'transport errors were reported as events');
    assert.ok(errors.every((e) => e.code === ErrorCode.Transport));
    await bus.close();
    await own.stop();
  });

  it('says where it tried when Redis cannot be reached', async () => {
    const port = await freePort();
    const bus = createBus({ redis: { url: `redis://127.0.0.1:${port}` }, logger: silentLogger, connectTimeoutMs: 300 });
    await assert.rejects(bus.connect(), (e: unknown) => {
      assert.ok(e instanceof NotConnectedError);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(e.message, /REDIS_URL/);
      return true;
    });
    await bus.close();
  });

  it('can connect again after a first attempt timed out, and then reconnects normally', async () => {
    const port = await freePort();
    const bus = createBus({ redis: { url: `redis://127.0.0.1:${port}` }, logger: silentLogger, connectTimeoutMs: 300, reconnect: { baseMs: 20, maxMs: 100 } });
    await assert.rejects(bus.connect(), NotConnectedError);
    const late = await startRedis({ port });
    try {
      await bus.connect();
      await bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'LATE' });
      const reconnected = new Inbox<string>();
      bus.on('reconnected', (role) => reconnected.push(role));
      late.cli('CLIENT', 'KILL', 'TYPE', 'normal');
      await reconnected.waitFor(1, 'the publisher to reconnect');
      assert.equal((await bus.publish(BrokerRegistration, { action: 'subscribe', ticker: 'LATE' })).receivers, 0);
      await bus.close();
      assert.equal(late.cli('CLIENT', 'LIST').split('\n').filter((l) => l.includes('name=tickbus')).length, 0, 'close() released the connection');
    } finally {
      await late.stop();
    }
  });

  it('sends a burst of publishes on a busy connection as one scripted command, in order', async () => {
    const own = await startRedis();
    const pub = createBus({ redis: { url: own.url }, logger: silentLogger });
    const sub = createBus({ redis: { url: own.url }, logger: silentLogger });
    try {
      const got = new Inbox<number>();
      await sub.subscribe(Quotes.of({ ticker: 'ORD' }), (d) => got.push(d.type === 'price' ? (d.price ?? -1) : -1));
      await pub.connect();
      own.cli('CONFIG', 'RESETSTAT');
      const counts = await Promise.all(Array.from({ length: 100 }, (_, i) => pub.publish(Quotes.of({ ticker: 'ORD' }), price('ORD', i))));
      assert.deepEqual(counts.map((r) => r.receivers), Array.from({ length: 100 }, () => 1), 'each publish resolves with its own receiver count');
      await got.waitFor(100);
      assert.deepEqual(got.items, Array.from({ length: 100 }, (_, i) => i), 'in publish order');
      const stats = own.cli('INFO', 'commandstats');
      assert.match(stats, /cmdstat_eval:calls=1,/, 'past the first few sent at once, one EVAL carried the rest');
      assert.match(stats, /cmdstat_publish:calls=100,/, 'the script ran the 100 PUBLISHes');
    } finally {
      await Promise.all([pub.close(), sub.close()]);
      await own.stop();
    }
  });

  it('falls back to one PUBLISH per message when the user may not run scripts', async () => {
    const own = await startRedis();
    own.cli('ACL', 'SETUSER', 'noscripts', 'on', '>secret', '~*', '&*', '+@all', '-@scripting');
    const pub = createBus({ redis: { url: `redis://noscripts:secret@127.0.0.1:${own.port}` }, logger: silentLogger });
    const sub = createBus({ redis: { url: own.url }, logger: silentLogger });
    try {
      const got = new Inbox<number>();
      await sub.subscribe(Quotes.of({ ticker: 'ACL' }), (d) => got.push(d.type === 'price' ? (d.price ?? -1) : -1));
      const counts = await Promise.all(Array.from({ length: 20 }, (_, i) => pub.publish(Quotes.of({ ticker: 'ACL' }), price('ACL', i))));
      assert.deepEqual(counts.map((r) => r.receivers), Array.from({ length: 20 }, () => 1));
      await got.waitFor(20);
      assert.deepEqual(got.items, Array.from({ length: 20 }, (_, i) => i));
      const stats = own.cli('INFO', 'commandstats');
      assert.match(stats, /cmdstat_eval:calls=0,.*rejected_calls=1,/, 'the one EVAL tried was refused');
      assert.match(stats, /cmdstat_publish:calls=20,/, 'then every message went as its own PUBLISH');
    } finally {
      await Promise.all([pub.close(), sub.close()]);
      await own.stop();
    }
  });

  it('fails only the refused message of a batch, and delivers the rest exactly once', async () => {
    const own = await startRedis();
    own.cli('ACL', 'SETUSER', 'some', 'on', '>secret', '~*', '&TICKER_UPDATES_OK*', '&BROKER_*', '+@all');
    const pub = createBus({ redis: { url: `redis://some:secret@127.0.0.1:${own.port}` }, logger: silentLogger });
    const sub = createBus({ redis: { url: own.url }, logger: silentLogger });
    try {
      const got = new Inbox<string>();
      await sub.subscribe(TickerUpdates, (d, ctx) => got.push(`${ctx.params.ticker}:${d.type === 'price' ? d.price : ''}`));
      await pub.connect();
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => pub.publish(TickerUpdates.of({ ticker: i === 15 ? 'NO' : 'OK' }), price('X', i))),
      );
      assert.equal(results.filter((r) => r.status === 'rejected').length, 1, 'only the message to a forbidden channel failed');
      assert.equal(results[15]?.status, 'rejected');
      await got.waitFor(19);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(got.items, Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 15).map((i) => `OK:${i}`), 'each once, in order');
    } finally {
      await Promise.all([pub.close(), sub.close()]);
      await own.stop();
    }
  });

  it('publishes everything queued before close() completes', async () => {
    const own = await startRedis();
    const pub = createBus({ redis: { url: own.url }, logger: silentLogger });
    const sub = createBus({ redis: { url: own.url }, logger: silentLogger });
    try {
      const got = new Inbox<number>();
      await sub.subscribe(TickerUpdates.of({ ticker: 'BYE' }), () => got.push(1));
      await pub.connect();
      const sent = Array.from({ length: 30 }, (_, i) => pub.publish(TickerUpdates.of({ ticker: 'BYE' }), price('BYE', i)));
      await pub.close();
      assert.deepEqual((await Promise.all(sent)).map((r) => r.receivers), Array.from({ length: 30 }, () => 1));
      await got.waitFor(30);
    } finally {
      await sub.close();
      await own.stop();
    }
  });

  it('leaves no handle open after close()', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    const inbox = new Inbox<string>();
    await bus.subscribe(TickerUpdates, (_d, ctx) => inbox.push(ctx.channel));
    await bus.publish(TickerUpdates.of({ ticker: 'AAPL' }), price('AAPL', 1));
    await inbox.waitFor(1);
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length, before + 2, 'a publisher and a subscriber connection');
    await bus.close();
    await waitFor(() => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length === before, 'sockets to be released');
    assert.equal(Number(server.cli('CLIENT', 'LIST').split('\n').filter((l) => l.includes('name=tickbus')).length), 0, 'Redis sees no tickbus client');
  });
});
