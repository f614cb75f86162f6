// The trading desk through the gateway (issue 17), on a real redis-server with a broker on
// the simulated venue: orders placed and cancelled from a client, their updates on the
// ticker's channel, the client_order_id as the idempotency key (double send, resend after a
// reconnection, on another gateway), who may trade (JWT `orders` claim, --allow-orders),
// seed 004's positions.updated on each fill, a ticker's history for the chart, and backtests
// submitted and cancelled for their owner only. Bad input is refused with a typed error and
// the gateway keeps serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { createClient } from 'redis';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { startGatewayRuntime, type GatewayRuntime } from '../../src/gateway/gateway-runtime.ts';
import { PositionEventSchema, PriceUpdateEventSchema } from '../../src/catalogs/trading-events.ts';
import { positionsKey, streamKey, webOrderClaimKey } from '../../src/core/keys.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { waitFor } from '../harness/wait.ts';
import { GatewayClient, type GatewayMessage as Msg } from '../harness/gateway-client.ts';
import { silentLogger } from '../harness/quiet.ts';
import { compareStreamIds } from '../../src/core/stream-id.ts';

type OrderData = { client_order_id?: string; event?: string; client_id?: string; status?: string; reason?: string; [k: string]: unknown };

const SECRET = 'a-test-secret-that-is-long-enough-1234';
const token = (claims: Record<string, unknown>, sub: string) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').setSubject(sub).sign(new TextEncoder().encode(SECRET));

/** The harness client, and the order updates it got (of one client_order_id, if named). */
class Client extends GatewayClient {
  orders(id?: string): OrderData[] {
    const all = this.updates()
      .filter((u) => u.data.type === 'order')
      .map((u) => u.data.order_data as OrderData);
    return id === undefined ? all : all.filter((o) => o.client_order_id === id);
  }
}

describe('gateway: the trading desk (orders, cancels, positions, history, backtests)', () => {
  let server: RedisServer;
  let broker: BrokerRuntime;
  let raw: ReturnType<typeof createClient>;
  let sub: ReturnType<typeof createClient>;
  let open: GatewayRuntime; // --allow-orders, no JWT (tickbus up's)
  let other: GatewayRuntime; // a second one like it: resends land on any gateway
  let closed: GatewayRuntime; // the default: no orders without JWT
  let jwt: GatewayRuntime;
  const clients: Client[] = [];
  const positions: unknown[] = [];
  const prices: unknown[] = [];
  let n = 0;

  const client = async (url: string): Promise<Client> => {
    const c = new Client(url.replace('http', 'ws') + (url.includes('/ws') ? '' : '/ws'));
    clients.push(c);
    await c.opened;
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'), 'the welcome');
    return c;
  };
  const ask = async (c: Client, op: Record<string, unknown>): Promise<Msg> => {
    const id = `r${++n}`;
    c.send({ ...op, id });
    return c.reply(id);
  };
  const gateway = (settings: Record<string, unknown>) =>
    startGatewayRuntime({
      logger: silentLogger,
      port: 0,
      batchMs: 20,
      redis: resolveRedisConfig({ url: server.url }),
      broker: { bus: broker.bus, lastValue: (t) => broker.store.lastValue(t) },
      ...settings,
    });

  before(async () => {
    server = await startRedis();
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 20 }), logger: silentLogger, priceEvents: true });
    raw = createClient({ url: server.url });
    await raw.connect();
    sub = raw.duplicate();
    await sub.connect();
    await sub.subscribe('positions.updated', (text) => positions.push(JSON.parse(text)));
    await sub.pSubscribe('price.updated.*', (text) => prices.push(JSON.parse(text)));
    open = await gateway({ allowOrders: true });
    other = await gateway({ allowOrders: true });
    closed = await gateway({});
    jwt = await gateway({ auth: { secret: SECRET } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await jwt?.stop();
    await closed?.stop();
    await other?.stop();
    await open?.stop();
    await sub?.quit().catch(() => undefined);
    await raw?.quit().catch(() => undefined);
    await broker?.stop();
    await server?.stop();
  });

  it('places a market order: it fills on the simulated venue, its updates reach the client, and positions.updated follows with seed 004 types', async () => {
    const c = await client(open.url);
    assert.equal((await ask(c, { op: 'subscribe', symbols: ['AAPL'] })).type, 'ok');
    const ok = await ask(c, { op: 'order', client_order_id: 'desk-1', symbol: 'aapl', side: 'buy', qty: 5, type: 'market', user: 'u1' });
    assert.deepEqual({ ...ok, id: undefined }, { type: 'ok', op: 'order', client_order_id: 'desk-1', symbol: 'AAPL', id: undefined });
    await waitFor(() => c.orders('desk-1').some((o) => o.event === 'fill'), 'the fill');
    assert.deepEqual(
      c.orders('desk-1').map((o) => o.event),
      ['new', 'fill'],
    );
    assert.ok(c.orders('desk-1').every((o) => o.client_id === 'web:u1'), "each update names the strategy (the user's client_id)");
    await waitFor(() => positions.length >= 1, 'positions.updated');
    const event = PositionEventSchema.parse(positions.at(-1));
    const fill = c.orders('desk-1').find((o) => o.event === 'fill') as { execution: { price: string } };
    assert.deepEqual({ ...event, timestamp: undefined }, { event_type: 'positions.updated', timestamp: undefined, symbol: 'AAPL', action: 'fill', qty_change: 5, new_qty: 5, price: fill.execution.price, strategy_id: 'web:u1' });
    assert.match(event.timestamp, /(Z|[+-]\d\d:\d\d)$/, 'a time-zone-aware timestamp');
    assert.equal(await raw.hGet(positionsKey('web:u1'), 'AAPL'), '5');

    // Selling moves it back down, and the position is the sum.
    await ask(c, { op: 'order', client_order_id: 'desk-2', symbol: 'AAPL', side: 'sell', qty: 2, type: 'market', user: 'u1' });
    await waitFor(() => positions.length >= 2, 'the second positions.updated');
    assert.deepEqual([PositionEventSchema.parse(positions.at(-1)).qty_change, PositionEventSchema.parse(positions.at(-1)).new_qty], [-2, 3]);
    // The broker's option publishes seed 004's price events too.
    await waitFor(() => prices.length > 0, 'price.updated');
    PriceUpdateEventSchema.parse(prices[0]);
  });

  it('places an order once however often its client_order_id is sent: a double click, a resend after a reconnection, another gateway', async () => {
    const c = await client(open.url);
    await ask(c, { op: 'subscribe', symbols: ['MSFT'] });
    const order = { op: 'order', client_order_id: 'desk-once', symbol: 'MSFT', side: 'buy', qty: 1, type: 'market', user: 'u2' };
    c.send({ ...order, id: 'a' }, { ...order, id: 'b' });
    const replies = [await c.reply('a'), await c.reply('b')];
    assert.deepEqual(replies.map((r) => r.duplicate === true).sort(), [false, true], 'one placed, one answered as a duplicate');
    c.close();
    // The connection is gone before the page saw the fill: it resends on another gateway.
    const again = await client(other.url);
    await ask(again, { op: 'subscribe', symbols: ['MSFT'] });
    const resent = await ask(again, { ...order });
    assert.equal(resent.duplicate, true);
    // A marker after it: orders are handled in order, so once it filled, a second placement would have shown.
    await ask(again, { ...order, client_order_id: 'desk-marker' });
    await waitFor(() => again.orders('desk-marker').some((o) => o.event === 'fill'), 'the marker fill');
    const fromHistory = await ask(again, { op: 'history', symbol: 'MSFT' });
    const all = (fromHistory.updates as Array<{ data: { type: string; order_data?: OrderData } }>).filter((u) => u.data.type === 'order').map((u) => u.data.order_data as OrderData);
    assert.deepEqual(
      all.filter((o) => o.client_order_id === 'desk-once').map((o) => o.event),
      ['new', 'fill'],
      'placed once: no second order, no duplicate rejection',
    );
    // Someone else's id is theirs.
    const stolen = await ask(again, { ...order, user: 'u3' });
    assert.equal(stolen.code, 'TB_ERR_DUPLICATE_ORDER');
    assert.equal(await raw.get(webOrderClaimKey('desk-once')), 'u2');
    assert.ok((await raw.ttl(webOrderClaimKey('desk-once'))) > 0, 'the claim expires');
  });

  it('cancels an open limit order for its owner only, and reports a cancel of an order that is not open', async () => {
    const c = await client(open.url);
    await ask(c, { op: 'subscribe', symbols: ['NVDA'] });
    // Far below the market: it rests.
    await ask(c, { op: 'order', client_order_id: 'desk-limit', symbol: 'NVDA', side: 'buy', qty: 3, type: 'limit', limit_price: 0.5, user: 'u4' });
    await waitFor(() => c.orders('desk-limit').some((o) => o.event === 'new'), 'the resting order');
    assert.equal((await ask(c, { op: 'cancel', client_order_id: 'desk-limit', symbol: 'NVDA', user: 'u5' })).code, 'TB_ERR_FORBIDDEN', "another user's order");
    assert.equal((await ask(c, { op: 'cancel', client_order_id: 'desk-limit', symbol: 'NVDA', user: 'u4' })).type, 'ok');
    await waitFor(() => c.orders('desk-limit').some((o) => o.event === 'canceled'), 'the canceled update');
    assert.equal(c.orders('desk-limit').find((o) => o.event === 'canceled')?.status, 'canceled');
    await ask(c, { op: 'cancel', client_order_id: 'desk-limit', symbol: 'NVDA', user: 'u4' });
    await waitFor(() => c.orders('desk-limit').some((o) => o.event === 'order_cancel_rejected'), 'the refused second cancel');
    assert.match(String(c.orders('desk-limit').find((o) => o.event === 'order_cancel_rejected')?.reason), /not open/);
  });

  it('takes orders only where allowed: --allow-orders without JWT, the token\'s "orders" claim with it', async () => {
    const order = { op: 'order', symbol: 'AAPL', side: 'buy', qty: 1, type: 'market' };
    const plain = await client(closed.url);
    const refused = await ask(plain, { ...order, client_order_id: 'desk-no', user: 'u6' });
    assert.equal(refused.code, 'TB_ERR_FORBIDDEN');
    assert.match(String(refused.message), /--allow-orders/);
    assert.equal(await raw.get(webOrderClaimKey('desk-no')), null, 'nothing claimed');

    const noClaim = await client(`${jwt.url}/ws?token=${await token({}, 'alice')}`);
    assert.equal((await ask(noClaim, { ...order, client_order_id: 'desk-j1' })).code, 'TB_ERR_FORBIDDEN');
    const msftOnly = await client(`${jwt.url}/ws?token=${await token({ orders: ['MSFT'] }, 'alice')}`);
    assert.equal((await ask(msftOnly, { ...order, client_order_id: 'desk-j2' })).code, 'TB_ERR_FORBIDDEN');
    assert.equal((await ask(msftOnly, { ...order, symbol: 'MSFT', client_order_id: 'desk-j3' })).type, 'ok');
    assert.equal((await ask(msftOnly, { ...order, symbol: 'MSFT', client_order_id: 'desk-j4', user: 'bob' })).code, 'TB_ERR_FORBIDDEN', "the token's user, not another");
    assert.equal(await raw.get(webOrderClaimKey('desk-j3')), 'alice');
  });

  it("keeps a browser user's orders to that user's connections (JWT): live, in order with the prices, on resume and in history; bots' orders stay public", async () => {
    const order = { op: 'order', symbol: 'NVDA', side: 'buy', qty: 1, type: 'market' };
    const alice = await client(`${jwt.url}/ws?token=${await token({ orders: true }, 'alice')}`);
    const alice2 = await client(`${jwt.url}/ws?token=${await token({}, 'alice')}`); // her second tab
    const bob = await client(`${jwt.url}/ws?token=${await token({ orders: true }, 'bob')}`);
    for (const c of [alice, alice2, bob]) assert.equal((await ask(c, { op: 'subscribe', symbols: ['NVDA'] })).type, 'ok');
    // Prices flow, so the room's shared chunk has updates pending when the orders come.
    await waitFor(() => bob.updates().length >= 3, 'prices for bob');
    for (let i = 1; i <= 3; i++) assert.equal((await ask(alice, { ...order, client_order_id: `priv-a${i}` })).type, 'ok');
    assert.equal((await ask(bob, { ...order, client_order_id: 'priv-b1' })).type, 'ok');
    await waitFor(() => alice.orders().filter((o) => o.event === 'fill').length === 3 && bob.orders().some((o) => o.event === 'fill'), 'the fills');
    await waitFor(() => alice2.orders().filter((o) => o.event === 'fill').length === 3, "the fills in alice's second tab");
    assert.deepEqual([...new Set(alice.orders().map((o) => o.client_order_id))].sort(), ['priv-a1', 'priv-a2', 'priv-a3']);
    assert.deepEqual([...new Set(bob.orders().map((o) => o.client_order_id))], ['priv-b1']);
    // Whatever came in one frame, every client's positions only go up: the private updates did not jump the queue.
    for (const c of [alice, alice2, bob]) {
      const ids = c.updates().map((u) => u.position as string);
      assert.deepEqual(ids, [...ids].sort(compareStreamIds), 'positions in order');
      assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    }
    // A bot's order (its own client id) is for everyone watching.
    await raw.publish('ORDER_REQUESTS', JSON.stringify({ data: { client_order_id: 'priv-bot', symbol: 'NVDA', side: 'buy', qty: 1, type: 'market', client_id: 'bot-7' }, timestamp: new Date().toISOString(), sender: 'bot' }));
    await waitFor(() => bob.orders('priv-bot').length > 0 && alice.orders('priv-bot').length > 0, "the bot's order at both");
    // History and resume: the same rule.
    const history = await ask(bob, { op: 'history', symbol: 'NVDA', limit: 1000 });
    const seen = (history.updates as Array<{ data: { type: string; order_data?: OrderData } }>).filter((u) => u.data.type === 'order').map((u) => u.data.order_data?.client_order_id);
    assert.ok(seen.includes('priv-b1') && seen.includes('priv-bot') && !seen.some((id) => id?.startsWith('priv-a')), JSON.stringify([...new Set(seen)]));
    const since = bob.updates()[0]?.position;
    const bob2 = await client(`${jwt.url}/ws?token=${await token({}, 'bob')}`);
    assert.equal((await ask(bob2, { op: 'subscribe', symbols: ['NVDA'], since: { NVDA: since } })).type, 'ok');
    await waitFor(() => bob2.orders('priv-b1').length > 0, "bob's order replayed to his new connection");
    assert.equal(bob2.orders().filter((o) => o.client_order_id?.startsWith('priv-a')).length, 0, "none of alice's");
  });

  it('refuses malformed orders with a typed error and keeps serving', async () => {
    const c = await client(open.url);
    const base = { op: 'order', client_order_id: 'desk-bad', symbol: 'AAPL', side: 'buy', qty: 1, type: 'market', user: 'u7' };
    for (const bad of [{ qty: -1 }, { qty: 1.5 }, { side: 'hold' }, { type: 'limit' }, { limit_price: 10 }, { client_order_id: 'no spaces' }]) {
      const reply = await ask(c, { ...base, ...bad });
      assert.equal(reply.code, 'TB_ERR_BAD_REQUEST', JSON.stringify(bad));
    }
    assert.equal((await ask(c, { ...base, symbol: 'AA PL' })).code, 'TB_ERR_INVALID_CHANNEL_PARAM');
    assert.equal((await ask(c, { ...base, user: undefined })).code, 'TB_ERR_BAD_REQUEST', 'whose order, without JWT');
    assert.equal((await ask(c, { op: 'ping' })).type, 'pong');
  });

  it('serves the newest updates of a ticker\'s history, oldest first, with their positions', async () => {
    const c = await client(open.url);
    await waitFor(async () => (await raw.xLen(streamKey('TICKER_UPDATES_AAPL'))) >= 5, 'some AAPL history');
    const reply = await ask(c, { op: 'history', symbol: 'AAPL', limit: 20 });
    const updates = reply.updates as Array<{ position: string; symbol: string; data: { type: string; price?: number } }>;
    assert.ok(updates.length > 0 && updates.length <= 20);
    const ms = updates.map((u) => Number(u.position.split('-')[0]));
    assert.deepEqual(ms, [...ms].sort((a, b) => a - b), 'oldest first');
    assert.ok(updates.every((u) => u.symbol === 'AAPL'));
    assert.ok(updates.some((u) => u.data.type === 'price' && typeof u.data.price === 'number'));
    assert.equal((await ask(c, { op: 'history', symbol: 'A*' })).code, 'TB_ERR_INVALID_CHANNEL_PARAM');
    assert.equal((await ask(c, { op: 'history', symbol: 'AAPL', limit: 5000 })).code, 'TB_ERR_BAD_REQUEST');
  });

  it('submits a backtest for its user, and lets only that user cancel it', async () => {
    const c = await client(open.url);
    const submitted = await ask(c, { op: 'backtest', symbols: ['aapl', 'MSFT'], patterns: ['Doji'], start_date: '2024-01-01', end_date: '2024-03-01', user: 'u8' });
    assert.equal(submitted.type, 'ok');
    assert.equal(submitted.status, 'submitted');
    const jobId = String(submitted.job_id);
    assert.equal(await raw.hGet(`job:${jobId}`, 'user_id'), 'u8');
    assert.equal((await ask(c, { op: 'backtest_cancel', job_id: jobId, user: 'u9' })).code, 'TB_ERR_FORBIDDEN');
    assert.equal((await ask(c, { op: 'backtest_cancel', job_id: 'bt_nope', user: 'u8' })).code, 'TB_ERR_UNKNOWN_JOB');
    const cancelled = await ask(c, { op: 'backtest_cancel', job_id: jobId, user: 'u8' });
    assert.equal(cancelled.status, 'cancelled', 'no worker took it yet');
    assert.equal((await ask(c, { op: 'backtest', symbols: ['AAPL'], patterns: ['Doji'], start_date: 'yesterday', end_date: '2024-03-01', user: 'u8' })).code, 'TB_ERR_BAD_REQUEST');
  });
});
