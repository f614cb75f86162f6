// The TickStock loop in the browser (issue 16, parts 4 and 5), on a real redis-server with
// two gateways: symbol-filtered channel subscriptions (seed 002's `patterns:{symbol}` rooms),
// per-user alert preferences (seed 003's tickstock.jobs.alerts, also as the seed app PUBLISHes
// them), each alert routed once into the user's inbox (seed 003's `user_messages:<user>`)
// however many gateways run, and the inbox to the user on any gateway: what was missed, in
// order, then live, with no gap or duplicate; acknowledged entries gone for good.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { createClient } from 'redis';
import { startGatewayRuntime, type GatewayRuntime } from '../../src/gateway/gateway-runtime.ts';
import { JobStore } from '../../src/jobs/job-store.ts';
import { ALERT_PREFS_KEY, userMessagesKey } from '../../src/core/keys.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { GatewayClient as Client } from '../harness/gateway-client.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { TickbusClient } from '../../src/gateway/public/tickbus-client.js';

type Update = { channel: string; data: { symbol: string; [k: string]: unknown } };

const SECRET = 'a-test-secret-that-is-long-enough-1234';
const token = (claims: Record<string, unknown>, sub?: string) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h');
  return (sub === undefined ? jwt : jwt.setSubject(sub)).sign(new TextEncoder().encode(SECRET));
};


const pattern = (symbol: string, name: string, confidence: number, at = 1_700_000_000 + Math.random()) => ({ event_type: 'pattern_detected', pattern: name, symbol, timestamp: at, confidence, timeframe: '1min' });

describe('gateway: the TickStock loop (filters, alert preferences, inboxes)', () => {
  let server: RedisServer;
  let raw: ReturnType<typeof createClient>;
  let jobs: JobStore;
  const gateways: GatewayRuntime[] = [];
  const clients: Client[] = [];
  let urlA: string;
  let urlB: string;

  const client = async (url: string, jwt?: string): Promise<Client> => {
    const c = new Client(jwt === undefined ? url : `${url}?token=${jwt}`);
    clients.push(c);
    await c.opened;
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'), 'the welcome');
    return c;
  };
  const publish = (channel: string, data: unknown) => raw.publish(channel, JSON.stringify(data));
  const entries = async (user: string) => (await raw.xRange(userMessagesKey(user), '-', '+')) ?? [];
  /** Waits until every gateway's preference cache has heard a message (they hear it by pub/sub). */
  const settle = () => sleep(150);

  before(async () => {
    server = await startRedis();
    raw = createClient({ url: server.url });
    await raw.connect();
    jobs = await JobStore.connect(resolveRedisConfig({ url: server.url }), 'test-jobs');
    const channels = ['tickstock:patterns:streaming', 'tickstock:errors'];
    for (let i = 0; i < 2; i++) {
      gateways.push(await startGatewayRuntime({ redis: resolveRedisConfig({ url: server.url }), logger: silentLogger, port: 0, batchMs: 20, ratePerSecond: 10_000, channels }));
    }
    [urlA, urlB] = gateways.map((g) => `${g.url.replace('http', 'ws')}/ws`) as [string, string];
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    for (const g of gateways) await g.stop();
    await jobs.close();
    await raw.close();
    await server.stop();
  });

  it('a client subscribed to AAPL patterns gets AAPL\'s and not MSFT\'s; one Redis subscription per channel', async () => {
    const aapl = await client(urlA);
    const all = await client(urlA);
    aapl.send({ op: 'subscribe', channels: ['tickstock:patterns:streaming'], filter: { symbols: ['aapl'] }, id: 1 });
    all.send({ op: 'subscribe', channels: ['tickstock:patterns:streaming'], id: 2 });
    assert.deepEqual((await aapl.reply(1)).keys, ['tickstock:patterns:streaming']);
    await all.reply(2);
    assert.equal(server.cli('PUBSUB', 'NUMSUB', 'tickstock:patterns:streaming').split('\n')[1]?.trim(), '1', 'one Redis subscription for two clients, filtered or not');
    for (const symbol of ['MSFT', 'AAPL', 'MSFT', 'AAPL']) await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol, timeframe: '1min', confidence: 80 });
    await waitFor(() => all.updates().length === 4, 'the unfiltered client\'s four');
    await waitFor(() => aapl.updates().length === 2, 'AAPL\'s two');
    await sleep(100);
    assert.deepEqual(aapl.updates().map((u) => u.data.symbol), ['AAPL', 'AAPL']);
    // Another filter replaces the set; unsubscribing ends it.
    aapl.send({ op: 'subscribe', channels: ['tickstock:patterns:streaming'], filter: { symbols: ['MSFT'] }, id: 3 });
    await aapl.reply(3);
    await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol: 'AAPL', timeframe: '1min', confidence: 80 });
    await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol: 'MSFT', timeframe: '1min', confidence: 80 });
    await waitFor(() => aapl.updates().length === 3, 'MSFT\'s one');
    assert.equal(aapl.updates()[2]?.data.symbol, 'MSFT');
    aapl.send({ op: 'unsubscribe', channels: ['tickstock:patterns:streaming'], id: 4 });
    await aapl.reply(4);
    await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol: 'MSFT', timeframe: '1min', confidence: 80 });
    await waitFor(() => all.updates().length === 7, 'the unfiltered client\'s seventh');
    await sleep(100);
    assert.equal(aapl.updates().length, 3, 'nothing after unsubscribing');
    const metrics = await (await fetch(`${gateways[0]?.url}/metrics`)).text();
    assert.match(metrics, /tickbus_gateway_updates_filtered_total [1-9]/);
  });

  it('refuses a filter on a channel not keyed by symbol, on ticker symbols, with a bad symbol, and oversized or forged requests', async () => {
    const c = await client(urlA);
    const cases: Array<[unknown, string]> = [
      [{ op: 'subscribe', channels: ['tickstock:errors'], filter: { symbols: ['AAPL'] }, id: 10 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'subscribe', symbols: ['AAPL'], filter: { symbols: ['AAPL'] }, id: 11 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'subscribe', channels: ['tickstock:patterns:streaming'], filter: { symbols: ['BAD*'] }, id: 12 }, 'TB_ERR_INVALID_CHANNEL_PARAM'],
      [{ op: 'subscribe', channels: ['tickstock:patterns:streaming'], filter: { symbols: Array.from({ length: 1001 }, (_, i) => `S${i}`) }, id: 13 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'subscribe', channels: ['tickstock:patterns:streaming'], filter: { symbols: ['AAPL'], users: ['x'] }, id: 14 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'alerts', min_confidence: 2, user: 'u1', id: 15 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'alerts', symbols: ['AAPL'], id: 16 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'alerts', user: 'bad user!', id: 17 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'ack', inbox: 'nope', user: 'u1', id: 18 }, 'TB_ERR_INVALID_POSITION'],
      [{ op: 'subscribe', inbox: true, user: 'u1', since: { inbox: 'x' }, id: 19 }, 'TB_ERR_INVALID_POSITION'],
      [{ op: 'subscribe', inbox: true, id: 20 }, 'TB_ERR_BAD_REQUEST'],
      [{ op: 'alerts', user: 'u1', patterns: ['x'.repeat(65)], id: 21 }, 'TB_ERR_BAD_REQUEST'],
    ];
    for (const [request] of cases) c.send(request);
    for (const [request, code] of cases) {
      const reply = await c.reply((request as { id: number }).id);
      assert.deepEqual({ type: reply.type, code: reply.code }, { type: 'error', code }, JSON.stringify(request).slice(0, 120));
    }
  });

  it("a user's preferences filter their alerts (symbol, pattern any case, min_confidence), set by the alerts op or the seed app's PUBLISH", async () => {
    const c = await client(urlA);
    c.send({ op: 'alerts', user: 'prefs_1', symbols: ['AAPL', 'NVDA'], patterns: ['Hammer'], min_confidence: 0.8, id: 30 });
    assert.deepEqual(await c.reply(30), { type: 'ok', op: 'alerts', id: 30 });
    assert.deepEqual(JSON.parse((await raw.hGet(ALERT_PREFS_KEY, 'prefs_1')) ?? '{}'), { symbols: ['AAPL', 'NVDA'], patterns: ['Hammer'], min_confidence: 0.8 });
    // Seed 003's app: a raw PUBLISH on tickstock.jobs.alerts (no min_confidence: all).
    await publish('tickstock.jobs.alerts', { user_id: 'prefs_2', action: 'subscribe', symbols: ['MSFT'], timestamp: 1_700_000_000 });
    await settle();
    assert.deepEqual(JSON.parse((await raw.hGet(ALERT_PREFS_KEY, 'prefs_2')) ?? '{}'), { symbols: ['MSFT'] });
    const events = [pattern('AAPL', 'hammer', 0.9), pattern('AAPL', 'Hammer', 0.5), pattern('AAPL', 'Doji', 0.95), pattern('TSLA', 'Hammer', 0.99), pattern('NVDA', 'HAMMER', 0.8), pattern('MSFT', 'Doji', 0.1)];
    for (const e of events) await publish('tickstock.events.patterns', e);
    await waitFor(async () => (await entries('prefs_1')).length === 2 && (await entries('prefs_2')).length === 1, 'the alerts in both inboxes');
    await sleep(200);
    const one = (await entries('prefs_1')).map((e) => JSON.parse(e.message.data ?? '{}') as { symbol: string; confidence: number });
    assert.deepEqual(one.map((e) => [e.symbol, e.confidence]), [['AAPL', 0.9], ['NVDA', 0.8]]);
    assert.equal((await entries('prefs_2'))[0]?.message.kind, 'alert');
    // Unsubscribe (the seed's way) removes them: no more alerts.
    await publish('tickstock.jobs.alerts', { user_id: 'prefs_2', action: 'unsubscribe', timestamp: 1_700_000_001 });
    await settle();
    assert.equal(await raw.hGet(ALERT_PREFS_KEY, 'prefs_2'), null);
    await publish('tickstock.events.patterns', pattern('MSFT', 'Doji', 0.5));
    await sleep(200);
    assert.equal((await entries('prefs_2')).length, 1);
  });

  it('two gateways on one Redis route each alert once (one inbox entry); the inbox expires in 7 days', async () => {
    const c = await client(urlB);
    c.send({ op: 'alerts', user: 'once_1', symbols: ['ONCE'], id: 40 });
    await c.reply(40);
    await settle();
    for (let i = 0; i < 5; i++) await publish('tickstock.events.patterns', pattern('ONCE', 'Doji', 0.5, 1_700_000_100 + i));
    await waitFor(async () => (await entries('once_1')).length >= 5, 'five entries');
    await sleep(300);
    assert.equal((await entries('once_1')).length, 5, 'each event once, not once per gateway');
    const ttl = await raw.ttl(userMessagesKey('once_1'));
    assert.ok(ttl > 7 * 24 * 3600 - 60 && ttl <= 7 * 24 * 3600, `7-day expiry, got ${ttl}`);
    const routed = await Promise.all(gateways.map(async (g) => (await (await fetch(`${g.url}/metrics`)).text()).match(/tickbus_gateway_inbox_appended_total\{kind="alert"\} (\d+)/)?.[1] ?? '0'));
    assert.ok(routed.reduce((n, x) => n + Number(x), 0) >= 5);
  });

  it('an offline user gets two alerts and a job result on connecting to the other gateway, once and in order, then live ones; acked ones are gone, unacked resent', async () => {
    const user = 'offline_1';
    // Preferences set on gateway A; the user comes back on B.
    const setter = await client(urlA);
    setter.send({ op: 'alerts', user, symbols: ['OFFL'], id: 50 });
    await setter.reply(50);
    await settle();
    await publish('tickstock.events.patterns', pattern('OFFL', 'Doji', 0.6, 1_700_000_200));
    await publish('tickstock.events.patterns', pattern('OFFL', 'Hammer', 0.7, 1_700_000_201));
    await jobs.create({ job_id: 'bt_offline_1', job_type: 'backtest', user_id: user });
    const result = { job_id: 'bt_offline_1', status: 'completed', results: { trades: 3 }, timestamp: 1_700_000_202 };
    await publish('tickstock.events.backtesting.results', result);
    await publish('tickstock.events.backtesting.results', result); // a resend: routed once
    await waitFor(async () => (await entries(user)).length === 3, 'three entries');
    const b = await client(urlB);
    b.send({ op: 'subscribe', inbox: true, user, id: 51 });
    assert.deepEqual((await b.reply(51)).keys, ['inbox']);
    const first = b.inbox();
    assert.deepEqual(first.map((m) => m.kind), ['alert', 'alert', 'job_result']);
    assert.deepEqual(first.map((m) => m.data.pattern ?? m.data.job_id), ['Doji', 'Hammer', 'bt_offline_1']);
    assert.equal(b.messages.find((m) => m.type === 'subscribed' && m.key === 'inbox')?.replayed, 3);
    // Live ones follow, in order, while events keep coming (published by a burst).
    await Promise.all(Array.from({ length: 20 }, (_, i) => publish('tickstock.events.patterns', pattern('OFFL', 'Doji', 0.6, 1_700_000_300 + i))));
    await waitFor(() => b.inbox().length === 23, '20 live entries', 5_000);
    await sleep(200);
    const ids = b.inbox().map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicate');
    assert.deepEqual(ids, (await entries(user)).map((e) => e.id), 'exactly the stream, in its order: no gap');
    // A burst is routed without waiting for each event's round trip, yet in the order heard.
    assert.deepEqual(b.inbox().slice(3).map((m) => m.data.timestamp), Array.from({ length: 20 }, (_, i) => 1_700_000_300 + i), 'the inbox keeps the order the events were published in');
    // Acknowledge the first five: gone from the stream (raw XLEN), the rest resent on reconnect.
    b.send({ op: 'ack', inbox: ids[4], id: 52 });
    assert.deepEqual(await b.reply(52), { type: 'ok', op: 'ack', id: 52 });
    assert.equal(Number(server.cli('XLEN', userMessagesKey(user)).trim()), 18);
    b.ws.terminate();
    const again = await client(urlA);
    again.send({ op: 'subscribe', inbox: true, user, id: 53 });
    await again.reply(53);
    assert.deepEqual(again.inbox().map((m) => m.id), ids.slice(5));
    // Resuming from a later id sends only what follows it.
    const resumed = await client(urlB);
    resumed.send({ op: 'subscribe', inbox: true, user, since: { inbox: ids[20] }, id: 54 });
    await resumed.reply(54);
    assert.deepEqual(resumed.inbox().map((m) => m.id), ids.slice(21));
    const metrics = await (await fetch(`${gateways[1]?.url}/metrics`)).text();
    assert.match(metrics, /tickbus_gateway_inbox_delivered_total [1-9]/);
  });

  it("JWT sub decides the user: another user's inbox, alerts or ack is TB_ERR_FORBIDDEN", async () => {
    const gw = await startGatewayRuntime({ redis: resolveRedisConfig({ url: server.url }), logger: silentLogger, port: 0, batchMs: 20, auth: { secret: SECRET } });
    gateways.push(gw);
    const url = `${gw.url.replace('http', 'ws')}/ws`;
    const mine = await client(url, await token({ symbols: ['AAPL'] }, 'jwt_1'));
    mine.send({ op: 'subscribe', inbox: true, user: 'someone_else', id: 60 });
    mine.send({ op: 'alerts', user: 'someone_else', id: 61 });
    mine.send({ op: 'ack', inbox: '1-0', user: 'someone_else', id: 62 });
    mine.send({ op: 'alerts', symbols: ['MSFT'], id: 63 }); // not in the token's symbols
    mine.send({ op: 'subscribe', channels: [], filter: { symbols: ['AAPL'] }, id: 64 });
    for (const id of [60, 61, 62, 63]) assert.equal((await mine.reply(id)).code, 'TB_ERR_FORBIDDEN', `request ${id}`);
    assert.equal((await mine.reply(64)).code, 'TB_ERR_BAD_REQUEST');
    const nobody = await client(url, await token({}));
    nobody.send({ op: 'subscribe', inbox: true, id: 65 });
    assert.equal((await nobody.reply(65)).code, 'TB_ERR_FORBIDDEN');
    // Its own: sub is the user, no `user` field needed.
    mine.send({ op: 'alerts', symbols: ['AAPL'], id: 66 });
    await mine.reply(66);
    assert.deepEqual(JSON.parse((await raw.hGet(ALERT_PREFS_KEY, 'jwt_1')) ?? '{}'), { symbols: ['AAPL'] });
    mine.send({ op: 'subscribe', inbox: true, id: 67 });
    assert.deepEqual((await mine.reply(67)).keys, ['inbox']);
  });

  it('the client library: filtered channels, setAlerts, inbox with resume and auto-ack', async () => {
    const user = 'lib_1';
    const lib = new TickbusClient([urlA, urlB], { WebSocket, reconnect: { baseMs: 20, maxMs: 50 } });
    const got: Array<{ id: string; kind: string }> = [];
    const updates: Update[] = [];
    lib.on('inbox', (m: { id: string; kind: string }) => got.push(m));
    lib.on('update', (u: Update) => updates.push(u));
    await lib.connect();
    lib.subscribeChannels(['tickstock:patterns:streaming'], { symbols: ['LIBS'] });
    await lib.setAlerts({ user, symbols: ['LIBS'] });
    lib.subscribeInbox({ user });
    await waitFor(() => lib.inboxSubscribed === true, 'the inbox subscribed');
    await settle();
    await publish('tickstock.events.patterns', pattern('LIBS', 'Doji', 0.5, 1_700_000_400));
    await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol: 'OTHER', timeframe: '1min', confidence: 80 });
    await publish('tickstock:patterns:streaming', { pattern_name: 'Doji', symbol: 'LIBS', timeframe: '1min', confidence: 80 });
    await waitFor(() => got.length === 1 && updates.length === 1, 'one inbox entry and one update');
    assert.equal(updates[0]?.data.symbol, 'LIBS');
    // Auto-acked after the handlers ran: the stream is empty again.
    await waitFor(async () => (await entries(user)).length === 0, 'the entry acknowledged');
    // A lost connection resumes from the last inbox id, on the other gateway.
    await publish('tickstock.events.patterns', pattern('LIBS', 'Doji', 0.5, 1_700_000_401));
    await waitFor(() => got.length === 2, 'the second');
    (lib as unknown as { _ws: WebSocket })._ws.close();
    await waitFor(() => lib.state === 'open' && lib.url === urlB && lib.inboxSubscribed === true, 'reconnected to B');
    await publish('tickstock.events.patterns', pattern('LIBS', 'Doji', 0.5, 1_700_000_402));
    await waitFor(() => got.length === 3, 'the third');
    await sleep(200);
    assert.equal(new Set(got.map((m) => m.id)).size, 3, 'none twice');
    lib.close();
  });
});
