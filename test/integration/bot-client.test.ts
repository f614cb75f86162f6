// The bot SDK against a real broker on a private Redis: typed updates, leases in the
// bot's name, last price, orders, and a bot that outlives (or predates) its broker.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { BROKER_LEASES_KEY as LEASES_KEY } from '../../src/core/keys.ts';
import { createBotClient, type BotClient, type PriceUpdate } from '../../src/index.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { RawClient } from '../harness/raw-client.ts';
import { Inbox, waitFor } from '../harness/wait.ts';

describe('bot SDK', () => {
  let server: RedisServer;
  const brokers: BrokerRuntime[] = [];
  const bots: BotClient[] = [];
  const broker = async () => {
    const b = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 50 }), logger: silentLogger, sweepIntervalMs: 100 });
    brokers.push(b);
    return b;
  };
  const bot = (clientId: string) => {
    const b = createBotClient({ clientId, redis: { url: server.url }, logger: silentLogger, leaseTtlSeconds: 6, retryMs: 100 });
    bots.push(b);
    return b;
  };

  before(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    await Promise.all(bots.splice(0).map((b) => b.close()));
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
    server.cli('FLUSHALL');
  });
  after(async () => {
    await server.stop();
  });

  it('watches a ticker: typed prices, a lease in its name, the last price', async () => {
    await broker();
    const b = bot('ma-bot');
    const prices = new Inbox<PriceUpdate>();
    await b.watch('aapl', { price: (p) => prices.push(p) });
    await prices.waitFor(3);
    assert.ok(prices.items.every((p) => p.symbol === 'AAPL' && typeof p.price === 'number'));
    assert.equal(server.cli('ZRANGE', LEASES_KEY, '0', '-1'), 'AAPL|ma-bot');
    const last = await b.lastPrice('AAPL');
    assert.equal(last?.type, 'price');
    assert.equal(last?.symbol, 'AAPL');
  });

  it('places an order and follows it to its final update', async () => {
    await broker();
    const b = bot('trader');
    await b.watch('MSFT', {});
    const ticket = await b.placeOrder({ symbol: 'MSFT', side: 'buy', qty: 5, type: 'market' });
    const final = await ticket.done;
    assert.equal(final.order_data?.status, 'filled');
    assert.deepEqual(ticket.updates.map((u) => u.order_data?.event), ['new', 'fill']);
    const dup = await b.placeOrder({ symbol: 'MSFT', side: 'sell', qty: 1, type: 'market', client_order_id: ticket.clientOrderId });
    const rejected = await dup.done;
    assert.equal(rejected.order_data?.status, 'rejected');
    assert.equal(rejected.order_data?.reason, 'client_order_id must be unique');
  });

  it('gets its data when it starts before the broker, and through a broker restart', async () => {
    const b = bot('early');
    const prices = new Inbox<PriceUpdate>();
    await b.watch('NVDA', { price: (p) => prices.push(p) });
    const first = await broker();
    await prices.waitFor(2, 'prices once the broker starts');
    await first.stop();
    brokers.splice(0);
    const count = prices.items.length;
    await broker();
    await prices.waitFor(count + 2, 'prices after the broker restarted');
  });

  it('shares one subscription between concurrent calls, and keeps an open order alive across unwatch', async () => {
    const runtime = await broker();
    const raw = await RawClient.connect(server.url);
    const rawMsgs = await raw.collect('TICKER_UPDATES_AMD');
    const b = bot('racer');
    const seen = new Inbox<number>();
    const handlers = { price: (p: PriceUpdate) => seen.push(p.price ?? 0) };
    await Promise.all([b.watch('AMD', handlers), b.watch('AMD', handlers), b.placeOrder({ symbol: 'AMD', side: 'buy', qty: 1, type: 'limit', limit_price: 0.01, time_in_force: 'gtc' })]);
    assert.equal(server.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_AMD').split('\n')[1], '1', 'one subscription for the ticker');
    await seen.waitFor(4, 'prices');
    await runtime.stop();
    brokers.splice(brokers.indexOf(runtime), 1);
    await new Promise((r) => setTimeout(r, 100));
    const rawPrices = rawMsgs.filter((m) => m.envelope.data.type === 'price').length;
    assert.equal(seen.items.length, rawPrices, 'each price reached the handler once');
    await raw.close();
    await broker();
    const ticket = await b.placeOrder({ symbol: 'AMD', side: 'buy', qty: 1, type: 'market' });
    await b.unwatch('AMD');
    const final = await ticket.done;
    assert.equal(final.order_data?.status, 'filled', 'the ticket settled after unwatch');
    const counts = await Promise.all([b.lastPrice('AMD'), b.lastPrice('AMD'), b.lastPrice('AMD')]);
    assert.ok(counts.every((p) => p?.symbol === 'AMD'), 'three concurrent last-price reads');
    await b.close();
    assert.equal(server.cli('CLIENT', 'LIST').split('\n').filter((l) => l.includes('name=tickbus:bot:racer')).length, 0, 'no last-price connection left');
    await assert.rejects(b.lastPrice('AMD'), /closed/);
  });

  it('releases its leases on close, and the broker stops streaming', async () => {
    const runtime = await broker();
    const b = bot('leaver');
    await b.watch('TSLA', {});
    await b.watch('AMD', {});
    await waitFor(() => runtime.service.tickers.length === 2, 'two tickers streaming');
    await b.close();
    await waitFor(() => runtime.service.tickers.length === 0, 'the broker to stop both');
    assert.equal(server.cli('ZCARD', LEASES_KEY), '0');
  });
});
