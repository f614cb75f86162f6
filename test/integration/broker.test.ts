// The broker end to end, driven the way the seeds' Python bots drive it: plain JSON on
// BROKER_REGISTRATION and ORDER_REQUESTS, updates read back from TICKER_UPDATES_{ticker}
// with a plain client. The same tests run against a private redis-server and against a
// private Redis Cluster (3 masters, 3 replicas), where the ticker channels are sharded.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import type { BrokerRuntimeOptions } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { ReplayFeed } from '../../src/broker/feeds/replay-feed.ts';
import { RedisBrokerStore } from '../../src/broker/broker-store.ts';
import { BROKER_LEASES_KEY as LEASES_KEY, lastValueKey } from '../../src/core/keys.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { BACKENDS, startBackend, type TestRedis } from '../harness/backends.ts';
import { RawClient, type RawMessage } from '../harness/raw-client.ts';
import { silentLogger } from '../harness/quiet.ts';
import { BrokerRegistration, TickerUpdates, createBus } from '../../src/index.ts';
import { sleep, waitFor } from '../harness/wait.ts';

const tickersIn = (msgs: RawMessage[]) => new Set(msgs.filter((m) => m.envelope.data.type === 'price').map((m) => m.channel.slice('TICKER_UPDATES_'.length)));

for (const backend of BACKENDS) {
  describe(`broker end to end (${backend})`, () => {
    let server: TestRedis;
    let raw: RawClient | undefined;
    const runtimes: BrokerRuntime[] = [];

    const start = async (overrides: Partial<BrokerRuntimeOptions> = {}): Promise<BrokerRuntime> => {
      const runtime = await startBrokerRuntime({
        redisUrl: server.url,
        feed: new SimFeed({ seed: 7, ratePerTicker: 50 }),
        logger: silentLogger,
        sweepIntervalMs: 100,
        ...overrides,
      });
      runtimes.push(runtime);
      return runtime;
    };

    before(async () => {
      server = await startBackend(backend);
    });
    afterEach(async () => {
      await Promise.all(runtimes.splice(0).map((r) => r.stop()));
      await raw?.close();
      raw = undefined;
      await server.flushAll();
    });
    after(async () => {
      await server.stop();
    });

    it('streams a ticker registered with the seed JSON, and stops after unsubscribe', async () => {
      raw = await RawClient.connect(server.url);
      await start();
      const msgs = await raw.collectTickers(['AAPL']);
      const receivers = await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'aapl' });
      if (backend === 'redis') {
        assert.equal(receivers, 1, 'the broker listens');
      } else {
        // On a cluster PUBLISH counts only the subscribers on the node that took it, so its
        // reply says nothing here; count the broker's subscription on every node instead.
        const numsub = server.cliAll('PUBSUB', 'NUMSUB', 'BROKER_REGISTRATION').map((out) => Number(out.split('\n')[1]));
        assert.equal(numsub.reduce((a, b) => a + b, 0), 1, 'the broker listens');
      }
      await waitFor(() => msgs.length >= 3, 'three AAPL updates');
      const first = msgs[0] as RawMessage;
      assert.equal(first.channel, 'TICKER_UPDATES_AAPL');
      assert.equal(first.envelope.sender, 'broker_service');
      assert.equal(first.envelope.data.type, 'price');
      assert.equal(first.envelope.data.symbol, 'AAPL');
      assert.equal(typeof first.envelope.data.price, 'number');
      assert.equal(typeof first.envelope.data.volume, 'number');
      assert.ok(!Number.isNaN(Date.parse(first.envelope.timestamp)));

      await raw.send('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'AAPL' });
      await sleep(150);
      const count = msgs.length;
      await sleep(300);
      assert.equal(msgs.length, count, 'no updates after unsubscribe');
    });

    it("keeps a shared ticker streaming until the last client's lease is released", async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start();
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'MSFT', client_id: 'bot-a' });
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'MSFT', client_id: 'bot-b' });
      await waitFor(() => runtime.service.tickers.includes('MSFT'), 'MSFT streaming');
      await raw.send('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'MSFT', client_id: 'bot-a' });
      await sleep(150);
      assert.deepEqual(runtime.service.tickers, ['MSFT'], "bot-a's unsubscribe does not cut bot-b");
      assert.deepEqual(server.cli('ZRANGE', LEASES_KEY, '0', '-1'), 'MSFT|bot-b');
      await raw.send('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'MSFT', client_id: 'bot-b' });
      await waitFor(() => runtime.service.tickers.length === 0, 'MSFT stopped');
    });

    it('lets a lease expire, and sweeps it from Redis', async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start();
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'TSLA', client_id: 'short', ttl_seconds: 1 });
      await waitFor(() => runtime.service.tickers.includes('TSLA'), 'TSLA streaming');
      await waitFor(() => runtime.service.tickers.length === 0, 'the lease to expire', 3000);
      assert.equal(server.cli('ZCARD', LEASES_KEY), '0');
    });

    it('never sweeps away a lease renewed while the sweep runs', async () => {
      const store = await RedisBrokerStore.connect(resolveRedisConfig({ url: server.url }));
      try {
        const now = Date.now();
        await store.acquire({ ticker: 'REN', holder: 'bot', expiresAt: now - 1000 });
        await store.acquire({ ticker: 'OLD', holder: 'bot', expiresAt: now - 1000 });
        const [expired] = await Promise.all([store.sweep(now), store.acquire({ ticker: 'REN', holder: 'bot', expiresAt: now + 60_000 })]);
        assert.deepEqual(expired.map((l) => l.ticker).sort(), ['OLD', 'REN']);
        assert.deepEqual((await store.leases(now)).map((l) => `${l.ticker}|${l.holder}`), ['REN|bot'], 'the renewal survived');
      } finally {
        await store.close();
      }
    });

    it('resumes its tickers from Redis after a restart, and keeps the last price', async () => {
      raw = await RawClient.connect(server.url);
      const first = await start();
      const msgs = await raw.collectTickers(['NVDA', 'BRK.B']);
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'NVDA' });
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'BRK.B' });
      await waitFor(() => tickersIn(msgs).size === 2, 'both tickers streaming');
      await first.stop();
      runtimes.splice(runtimes.indexOf(first), 1);
      const last = JSON.parse(server.cli('GET', lastValueKey('NVDA'))) as { price: number; type: string };
      const lastSeen = msgs.filter((m) => m.channel === 'TICKER_UPDATES_NVDA').at(-1)?.envelope.data;
      assert.deepEqual(last, lastSeen, 'the last-value cache holds the last published price');

      const before = msgs.length;
      const second = await start();
      assert.deepEqual(second.service.tickers, ['BRK.B', 'NVDA'], 'resumed without any new registration');
      await waitFor(() => msgs.length >= before + 4, 'updates from the restarted broker');
      assert.deepEqual(await second.service.lastPrice('NVDA').then((v) => typeof v), 'object');
    });

    it('coalesces a burst of registrations into one feed update', async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start();
      await raw.publishAll(
        'BROKER_REGISTRATION',
        Array.from({ length: 100 }, (_, i) => JSON.stringify({ data: { action: 'subscribe', ticker: `T${i}` }, timestamp: 't', sender: 'burst' })),
      );
      await waitFor(() => runtime.service.tickers.length === 100, '100 tickers');
      await sleep(100);
      const metrics = await runtime.registry.getSingleMetricAsString('tickbus_broker_feed_updates_total');
      assert.match(metrics, /tickbus_broker_feed_updates_total\{mode="in_place"\} 1$/m);
    });

    it('rejects registrations beyond the ticker limit, with a notice on BROKER_ERRORS', async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start({ maxTickers: 2 });
      const notices = await raw.collect('BROKER_ERRORS');
      for (const t of ['A', 'B', 'C']) await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: t });
      await waitFor(() => notices.length === 1, 'one notice');
      assert.equal(notices[0]?.envelope.data.code, 'TB_BROKER_TICKER_LIMIT');
      assert.equal(notices[0]?.envelope.data.ticker, 'C');
      await waitFor(() => runtime.service.tickers.length === 2, 'two tickers');
      assert.deepEqual(runtime.service.tickers, ['A', 'B']);
    });

    it('survives garbage and a flood of 10,000 registrations, and still serves valid ones', async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start({ maxTickers: 50 });
      const notices = await raw.collect('BROKER_ERRORS');
      const garbage = [
        'not json at all',
        JSON.stringify({ data: { ticker: 'AAPL' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'explode', ticker: 'AAPL' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'subscribe', ticker: 'AAPL*' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'subscribe', ticker: 'A B' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'subscribe', ticker: 'AAPL\r\nPUBLISH x y' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'subscribe', ticker: '' }, timestamp: 't', sender: 's' }),
        JSON.stringify({ data: { action: 'subscribe', ticker: 'X'.repeat(10_000) }, timestamp: 't', sender: 's' }),
        JSON.stringify({ action: 'subscribe', ticker: 'NOENVELOPE' }),
      ];
      for (const g of garbage) await raw.publish('BROKER_REGISTRATION', g);
      await waitFor(() => notices.length === garbage.length, 'a notice per bad registration');
      assert.ok(notices.every((n) => n.envelope.data.code === 'TB_BROKER_INVALID_REGISTRATION'));

      await raw.publishAll(
        'BROKER_REGISTRATION',
        Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ data: { action: 'subscribe', ticker: `F${i}` }, timestamp: 't', sender: 'flood' })),
      );
      const rejected = () => runtime.registry.getSingleMetricAsString('tickbus_broker_registrations_total');
      await waitFor(async () => /action="subscribe",outcome="rejected"\} 9950$/m.test(await rejected()), '9,950 rejections', 20_000);
      await waitFor(() => runtime.service.tickers.length === 50, 'the 50 accepted tickers streaming');
      const updates = await runtime.registry.getSingleMetricAsString('tickbus_broker_feed_updates_total');
      const applied = Number(/in_place"\} (\d+)/.exec(updates)?.[1]);
      assert.ok(applied >= 1 && applied <= 5, `the flood was coalesced into few feed updates (${applied})`);

      // Still serving: a valid unsubscribe and subscribe take effect.
      await raw.send('BROKER_REGISTRATION', { action: 'unsubscribe', ticker: 'F0' });
      await waitFor(() => !runtime.service.tickers.includes('F0'), 'F0 released');
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'OK' });
      await waitFor(() => runtime.service.tickers.includes('OK'), 'OK streaming');
      assert.equal(runtime.service.health().status, 'ok');
    });

    it('routes orders to the simulated venue and publishes every update on the ticker channel', async () => {
      raw = await RawClient.connect(server.url);
      await start();
      const msgs = await raw.collectTickers(['AMD']);
      const orders = () => msgs.filter((m) => m.envelope.data.type === 'order').map((m) => m.envelope.data.order_data as Record<string, unknown>);
      await raw.send('ORDER_REQUESTS', { client_order_id: 'o-1', symbol: 'AMD', side: 'buy', qty: 10, type: 'market', time_in_force: 'day' });
      await waitFor(() => orders().length === 2, 'new and fill');
      assert.deepEqual(orders().map((o) => [o.event, o.status, o.client_order_id]), [['new', 'new', 'o-1'], ['fill', 'filled', 'o-1']]);
      assert.equal(orders()[1]?.filled_qty, '10');
      const execution = orders()[1]?.execution as { price: string; qty: string };
      assert.equal(execution.qty, '10');
      assert.equal(execution.price, orders()[1]?.filled_avg_price, 'one fill: its price is the average');

      await raw.send('ORDER_REQUESTS', { client_order_id: 'o-2', symbol: 'AMD', side: 'buy', qty: 1, type: 'limit', limit_price: 0.01, time_in_force: 'ioc' });
      await raw.send('ORDER_REQUESTS', { client_order_id: 'o-1', symbol: 'AMD', side: 'sell', qty: 1, type: 'market', time_in_force: 'day' });
      await waitFor(() => orders().length === 5, 'ioc canceled and duplicate rejected');
      assert.deepEqual(orders().slice(2).map((o) => [o.client_order_id, o.event, o.reason]), [['o-2', 'new', undefined], ['o-2', 'canceled', 'not immediately fillable'], ['o-1', 'rejected', 'client_order_id must be unique']]);
    });

    it('replays a file, restarting the feed on ticker changes without publishing a trade twice', async () => {
      raw = await RawClient.connect(server.url);
      const dir = mkdtempSync(join(tmpdir(), 'tickbus-replay-'));
      const file = join(dir, 'trades.ndjson');
      const lines: string[] = [];
      const t0 = Date.parse('2025-04-24T13:30:00Z');
      for (let i = 0; i < 400; i++) {
        const symbol = i % 2 ? 'AAPL' : 'MSFT';
        // Alpaca's own trade message shape, batched two to a line every other line.
        lines.push(JSON.stringify({ T: 't', S: symbol, i, x: 'V', p: 100 + i / 100, s: i + 1, c: ['@'], z: 'C', t: new Date(t0 + i * 10).toISOString() }));
      }
      writeFileSync(file, `${lines.join('\n')}\n`);
      const feed = new ReplayFeed({ file, speed: 2 });
      const runtime = await start({ feed });
      const msgs = await raw.collectTickers(['AAPL', 'MSFT']);
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AAPL' });
      await waitFor(() => msgs.length >= 20, 'AAPL trades');
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'MSFT' });
      // All 400 trades read (not just the stop of a restart), and every published one received.
      await waitFor(() => feed.stats.read === 400 && feed.state === 'stopped' && msgs.length === feed.stats.published, 'the end of the file', 10_000);
      const volumes = msgs.map((m) => m.envelope.data.volume as number);
      assert.equal(new Set(volumes).size, volumes.length, 'no trade published twice');
      if (backend === 'redis') {
        assert.deepEqual(volumes, [...volumes].sort((a, b) => a - b), 'trades in file order');
      } else {
        // On a cluster the order across tickers is not defined: the publisher sends each
        // slot's messages as a group, and tickers on different shards reach us on separate
        // connections. Each ticker's own order is.
        for (const ticker of ['AAPL', 'MSFT']) {
          const own = msgs.filter((m) => m.channel === `TICKER_UPDATES_${ticker}`).map((m) => m.envelope.data.volume as number);
          assert.deepEqual(own, [...own].sort((a, b) => a - b), `${ticker} trades in file order`);
        }
      }
      assert.ok(tickersIn(msgs).has('MSFT'), 'MSFT streamed after the restart');
      const restarts = await runtime.registry.getSingleMetricAsString('tickbus_broker_feed_updates_total');
      assert.match(restarts, /mode="restart"\} 2$/m, 'one start for AAPL, one restart to add MSFT');
    });

    it('starts a replay once when its tickers are in Redis already: every trade published once, from the top', async () => {
      raw = await RawClient.connect(server.url);
      const dir = mkdtempSync(join(tmpdir(), 'tickbus-replay-'));
      const file = join(dir, 'trades.ndjson');
      const tickers = Array.from({ length: 20 }, (_, i) => `T${String.fromCharCode(65 + i)}`);
      const t0 = Date.parse('2025-04-24T13:30:00Z');
      const lines = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ T: 't', S: tickers[i % tickers.length], i, x: 'V', p: 100, s: i + 1, c: ['@'], z: 'C', t: new Date(t0 + i).toISOString() }));
      writeFileSync(file, `${lines.join('\n')}\n`);
      // The leases go to Redis through a first broker, as a restart finds them.
      const first = await start();
      for (const ticker of tickers) await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker });
      await waitFor(() => first.service.tickers.length === tickers.length, 'the leases stored');
      await first.stop();
      runtimes.splice(runtimes.indexOf(first), 1);
      const msgs = await raw.collectTickers(tickers);
      // A feed slow to start (a large file on a slow disk): a lease change due meanwhile must
      // wait its turn. Before, it started the feed a second time beside the first, and two
      // readers of one file handed over its top twice.
      let starts = 0;
      let overlapped = false;
      class SlowStartReplay extends ReplayFeed {
        override async start(...args: Parameters<ReplayFeed['start']>): Promise<void> {
          if (++starts > 1) overlapped = true;
          try {
            await sleep(200);
            return await super.start(...args);
          } finally {
            starts--;
          }
        }
      }
      const feed = new SlowStartReplay({ file, speed: 'max' });
      const starting = start({ feed });
      // A renewal while the feed starts (the broker subscribes to registrations before that).
      await waitFor(() => Number(server.cliAll('PUBSUB', 'NUMSUB', 'BROKER_REGISTRATION').map((out) => out.split('\n')[1]).reduce((a, b) => Number(a) + Number(b), 0)) > 0, 'the broker listening');
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: tickers[0] });
      const runtime = await starting;
      await waitFor(() => feed.state === 'stopped' && msgs.length === feed.stats.published, 'the end of the file', 20_000);
      assert.equal(feed.stats.published, 2000, 'each trade of the file handed over once');
      const volumes = msgs.map((m) => m.envelope.data.volume as number);
      assert.equal(new Set(volumes).size, 2000, 'no trade published twice');
      const restarts = await runtime.registry.getSingleMetricAsString('tickbus_broker_feed_updates_total');
      assert.equal(overlapped, false, 'never two starts of the feed at once');
      assert.match(restarts, /mode="restart"\} 1$/m, 'the feed started once');
    });

    it('answers /health and /metrics', async () => {
      raw = await RawClient.connect(server.url);
      const runtime = await start({ opsPort: 0 });
      await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'IBM' });
      await waitFor(() => runtime.service.tickers.includes('IBM'), 'IBM streaming');
      const health = (await (await fetch(`${runtime.opsUrl}/health`)).json()) as Record<string, unknown>;
      assert.equal(health.status, 'ok');
      assert.deepEqual(health.ticker_list, ['IBM']);
      assert.deepEqual(health.feed, { name: 'sim', state: 'streaming' });
      await sleep(100);
      const metrics = await (await fetch(`${runtime.opsUrl}/metrics`)).text();
      assert.match(metrics, /tickbus_broker_updates_published_total\{type="price"\} [1-9]/);
      assert.match(metrics, /tickbus_broker_registrations_total\{action="subscribe",outcome="accepted"\} 1/);
      assert.match(metrics, /tickbus_broker_publish_latency_seconds_bucket/);
      assert.match(metrics, /tickbus_messages_published_total/);
    });
  });
}

// No Redis at all, so once is enough (it would run the same on either backend).
describe('broker without Redis', () => {
  it('runs in memory when there is no Redis (the embedded fallback of tickbus up)', async () => {
    const runtime = await startBrokerRuntime({ redisUrl: undefined, feed: new SimFeed({ ratePerTicker: 50 }), logger: silentLogger });
    const bot = createBus({ transport: 'memory', logger: silentLogger });
    try {
      const prices: number[] = [];
      await bot.subscribe(TickerUpdates.of({ ticker: 'MEM' }), (u) => {
        if (u.type === 'price' && u.price !== undefined) prices.push(u.price);
      });
      assert.equal((await bot.publish(BrokerRegistration, { action: 'subscribe', ticker: 'MEM' })).receivers, 1);
      await waitFor(() => prices.length >= 3, 'prices over the in-memory transport');
      assert.equal(runtime.bus.context.transport.kind, 'memory');
      assert.equal(((await runtime.service.lastPrice('MEM')) as { symbol: string }).symbol, 'MEM');
    } finally {
      await bot.close();
      await runtime.stop();
    }
  });
});
