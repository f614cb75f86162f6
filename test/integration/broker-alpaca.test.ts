// The broker on the Alpaca feed, end to end: a registration becomes an Alpaca subscription,
// Alpaca trades become price updates on the ticker's channel, and orders from the bus go
// to POST /v2/orders with their trade_updates coming back as order updates.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { AlpacaFeed, alpacaConfigFromEnv } from '../../src/broker/feeds/alpaca-feed.ts';
import { AlpacaServer } from '../harness/alpaca-server.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { RawClient } from '../harness/raw-client.ts';
import { silentLogger } from '../harness/quiet.ts';
import { waitFor } from '../harness/wait.ts';

interface AlpacaBroker {
  redis: RedisServer;
  alpaca: AlpacaServer;
  runtime: BrokerRuntime;
  raw: RawClient;
}

/** A redis-server, the Alpaca stand-in and a broker on it, for the tests of one suite. */
function alpacaBroker(options: { quotes?: boolean; priceEvents?: boolean } = {}): AlpacaBroker {
  const f = {} as AlpacaBroker;
  before(async () => {
    f.redis = await startRedis();
    f.alpaca = await AlpacaServer.start();
    f.runtime = await startBrokerRuntime({ redisUrl: f.redis.url, feed: new AlpacaFeed(alpacaConfigFromEnv(f.alpaca.env()), { logger: silentLogger, quotes: options.quotes }), logger: silentLogger, priceEvents: options.priceEvents });
    f.raw = await RawClient.connect(f.redis.url);
  });
  after(async () => {
    await f.raw.close();
    await f.runtime.stop();
    await f.alpaca.close();
    await f.redis.stop();
  });
  return f;
}

describe('broker on the Alpaca feed', () => {
  const f = alpacaBroker();

  it('turns a registration into an Alpaca subscription, and trades into price updates', async () => {
    const msgs = await f.raw.collect('TICKER_UPDATES_*');
    await f.raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AAPL' });
    await waitFor(() => f.alpaca.subscription()?.trades.includes('AAPL') === true, 'Alpaca to see the AAPL subscription');
    f.alpaca.push([
      { T: 't', S: 'AAPL', i: 1, x: 'V', p: 162.92, s: 3, c: ['@'], z: 'C', t: '2023-04-06T11:54:26.838232225Z' },
      { T: 't', S: 'AAPL', i: 2, x: 'V', p: 162.95, s: 7, c: ['@'], z: 'C', t: '2023-04-06T11:54:27.000000000Z' },
    ]);
    await waitFor(() => msgs.length === 2, 'two price updates');
    assert.deepEqual(
      msgs.map((m) => m.envelope.data),
      [
        { type: 'price', price: 162.92, volume: 3, symbol: 'AAPL', timestamp: '2023-04-06T11:54:26.838232225Z' },
        { type: 'price', price: 162.95, volume: 7, symbol: 'AAPL', timestamp: '2023-04-06T11:54:27.000000000Z' },
      ],
    );
    await f.raw.send('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'AAPL' });
    await waitFor(() => f.alpaca.subscription()?.trades.includes('AAPL') === false, 'Alpaca to see the unsubscribe');
  });

  it('places orders with Alpaca and publishes their updates, rejections included', async () => {
    const msgs = await f.raw.collect('TICKER_UPDATES_MSFT');
    const orders = () => msgs.filter((m) => m.envelope.data.type === 'order').map((m) => m.envelope.data.order_data as Record<string, unknown>);
    await f.raw.send('ORDER_REQUESTS', { client_order_id: 'alp-1', symbol: 'MSFT', side: 'buy', qty: 2, type: 'limit', limit_price: 300.5, time_in_force: 'day' });
    await waitFor(() => orders().some((o) => o.event === 'fill'), 'a fill from Alpaca');
    const post = f.alpaca.orders[0];
    assert.equal(post?.headers['apca-api-key-id'], f.alpaca.keyId);
    assert.deepEqual(post?.body, { symbol: 'MSFT', qty: '2', side: 'buy', type: 'limit', time_in_force: 'day', limit_price: '300.5', client_order_id: 'alp-1' });
    assert.ok(orders().every((o) => o.client_order_id === 'alp-1'));
    const fill = orders().find((o) => o.event === 'fill');
    assert.deepEqual(Object.keys(fill?.execution as object).sort(), ['execution_id', 'position_qty', 'price', 'qty'], "the fill's own execution is kept");

    f.alpaca.orderOutcome = 'insufficient-buying-power';
    await f.raw.send('ORDER_REQUESTS', { client_order_id: 'alp-2', symbol: 'MSFT', side: 'buy', qty: 1000000, type: 'market', time_in_force: 'day' });
    await waitFor(() => orders().some((o) => o.client_order_id === 'alp-2'), 'the rejection');
    const rejected = orders().find((o) => o.client_order_id === 'alp-2');
    assert.equal(rejected?.event, 'rejected');
    assert.match(String(rejected?.reason), /insufficient buying power/);
  });

  it("cancels an open order with Alpaca's DELETE /v2/orders/{id}, and reports a refused cancel", async () => {
    f.alpaca.orderOutcome = 'accept';
    f.alpaca.fillLimitOrders = false;
    const msgs = await f.raw.collect('TICKER_UPDATES_NVDA');
    const orders = () => msgs.filter((m) => m.envelope.data.type === 'order').map((m) => m.envelope.data.order_data as Record<string, unknown>);
    await f.raw.send('ORDER_REQUESTS', { client_order_id: 'alp-c1', symbol: 'NVDA', side: 'buy', qty: 3, type: 'limit', limit_price: 1.5, time_in_force: 'gtc' });
    await waitFor(() => orders().some((o) => o.client_order_id === 'alp-c1' && o.event === 'new'), 'the order resting at Alpaca');
    await f.raw.send('ORDER_CANCELS', { client_order_id: 'alp-c1', symbol: 'NVDA' });
    await waitFor(() => orders().some((o) => o.client_order_id === 'alp-c1' && o.event === 'canceled'), 'the canceled update');
    const id = [...f.alpaca.placed.values()].find((o) => o.client_order_id === 'alp-c1')?.id;
    assert.deepEqual(f.alpaca.cancels, [id], 'one DELETE, by Alpaca\'s own order id');
    // Canceled already: Alpaca answers 422, reported as order_cancel_rejected with its message.
    await f.raw.send('ORDER_CANCELS', { client_order_id: 'alp-c1', symbol: 'NVDA' });
    await waitFor(() => orders().some((o) => o.event === 'order_cancel_rejected'), 'the refused cancel');
    assert.match(String(orders().find((o) => o.event === 'order_cancel_rejected')?.reason), /not cancelable/);
    // Never placed: Alpaca does not know it (404).
    await f.raw.send('ORDER_CANCELS', { client_order_id: 'alp-none', symbol: 'NVDA' });
    await waitFor(() => orders().some((o) => o.event === 'order_cancel_rejected' && o.client_order_id === 'alp-none'), 'the unknown order refused');
    assert.match(String(orders().find((o) => o.client_order_id === 'alp-none')?.reason), /not found/);
  });
});

describe("broker on the Alpaca feed with quotes: seed 004's price.updated is the quotes' mid", () => {
  const f = alpacaBroker({ quotes: true, priceEvents: true });

  it('publishes trade prices until quotes come, then only the mid of each quote, as decimal strings', async () => {
    const events = await f.raw.collect('price.updated.*');
    await f.raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AMD' });
    await waitFor(() => f.alpaca.subscription()?.quotes.includes('AMD') === true, 'the AMD subscription');
    const t = '2024-07-24T07:56:00Z';
    f.alpaca.push([AlpacaServer.trade('AMD', 133.5, 7, t)]);
    await waitFor(() => events.length === 1, 'the trade price');
    f.alpaca.push([{ T: 'q', S: 'AMD', bx: 'O', bp: 133.85, bs: 4, ax: 'R', ap: 135.75, as: 5, c: ['R'], z: 'A', t }, AlpacaServer.trade('AMD', 140, 1, t), { T: 'q', S: 'AMD', bx: 'O', bp: 134, bs: 4, ax: 'R', ap: 134.5, as: 5, c: ['R'], z: 'A', t }]);
    await waitFor(() => events.length === 3, 'the two quote mids');
    const bare = events.map((e) => e.envelope as unknown as Record<string, unknown>);
    assert.deepEqual(
      bare.map((e) => [e.event_type, e.symbol, e.price]),
      [
        ['price.updated', 'AMD', '133.5'],
        ['price.updated', 'AMD', '134.8'],
        ['price.updated', 'AMD', '134.25'],
      ],
      'the trade after the first quote is left out',
    );
    assert.ok(bare.every((e) => /Z$|[+-]\d\d:\d\d$/.test(String(e.timestamp))));
  });
});
