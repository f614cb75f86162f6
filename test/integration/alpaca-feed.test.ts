// AlpacaFeed against a local server that speaks Alpaca's protocols: authentication, in-place
// subscriptions, batched frames, binary trading frames, reconnection, error codes, orders, stop().
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ConfigError } from '../../src/core/errors.ts';
import { AlpacaFeed, alpacaConfigFromEnv, type AlpacaFeedOptions } from '../../src/broker/feeds/alpaca-feed.ts';
import type { FeedSink, OrderEvent, OrderRequest, TradeTick } from '../../src/broker/feeds/feed.ts';
import { AlpacaServer, type AlpacaServerOptions } from '../harness/alpaca-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { sleep, waitFor } from '../harness/wait.ts';

class RecordingSink implements FeedSink {
  readonly trades: TradeTick[] = [];
  readonly orders: OrderEvent[] = [];
  readonly problems: { message: string; code: number | string | undefined; final: boolean | undefined }[] = [];
  readonly reconnects: { attempt: number; delayMs: number }[] = [];
  /** While set, trade() returns it: the sink asks the feed to slow down until it settles. */
  hold: Promise<void> | undefined;
  trade(tick: TradeTick): void | Promise<void> {
    this.trades.push(tick);
    return this.hold;
  }
  order(event: OrderEvent): void {
    this.orders.push(event);
  }
  problem(message: string, details: { code?: number | string; final?: boolean }): void {
    this.problems.push({ message, code: details.code, final: details.final });
  }
  reconnecting(attempt: number, delayMs: number): void {
    this.reconnects.push({ attempt, delayMs });
  }
}

/** Small intervals so that keep-alive and back-off play out in milliseconds. */
const FAST: AlpacaFeedOptions = {
  pingIntervalMs: 1_000,
  pongTimeoutMs: 500,
  handshakeTimeoutMs: 2_000,
  reconnect: { baseMs: 20, maxMs: 100 },
  logger: silentLogger,
};

const servers: AlpacaServer[] = [];
const feeds: AlpacaFeed[] = [];

afterEach(async () => {
  await Promise.all(feeds.splice(0).map((f) => f.stop()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Setup {
  server?: AlpacaServerOptions;
  feed?: AlpacaFeedOptions;
  env?: NodeJS.ProcessEnv;
}

async function makeServer(options: AlpacaServerOptions = {}): Promise<AlpacaServer> {
  const server = await AlpacaServer.start(options);
  servers.push(server);
  return server;
}

async function setup(tickers: readonly string[], options: Setup = {}): Promise<{ server: AlpacaServer; feed: AlpacaFeed; sink: RecordingSink }> {
  const server = await makeServer(options.server);
  const feed = new AlpacaFeed(alpacaConfigFromEnv(server.env(options.env)), { ...FAST, ...options.feed });
  feeds.push(feed);
  const sink = new RecordingSink();
  await feed.start(tickers, sink);
  return { server, feed, sink };
}

const sorted = (list: readonly string[]): string[] => [...list].sort();

describe('alpacaConfigFromEnv', () => {
  it('says which variable to set when a key is missing', () => {
    assert.throws(() => alpacaConfigFromEnv({ APCA_API_SECRET_KEY: 's' }), (e: unknown) => e instanceof ConfigError && /APCA_API_KEY_ID/.test(e.message));
    assert.throws(() => alpacaConfigFromEnv({ APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: ' ' }), (e: unknown) => e instanceof ConfigError && /APCA_API_SECRET_KEY/.test(e.message));
  });

  it('defaults to the IEX feed and the paper endpoints', () => {
    assert.deepEqual(alpacaConfigFromEnv({ APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's' }), {
      keyId: 'k',
      secretKey: 's',
      feed: 'iex',
      dataStreamUrl: 'wss://stream.data.alpaca.markets/v2/iex',
      tradingStreamUrl: 'wss://paper-api.alpaca.markets/stream',
      baseUrl: 'https://paper-api.alpaca.markets',
    });
  });

  it('substitutes the feed, follows a live base URL and refuses unknown feeds', () => {
    const live = alpacaConfigFromEnv({ APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's', ALPACA_FEED: 'SIP', APCA_API_BASE_URL: 'https://api.alpaca.markets/v2/' });
    assert.equal(live.dataStreamUrl, 'wss://stream.data.alpaca.markets/v2/sip');
    assert.equal(live.baseUrl, 'https://api.alpaca.markets');
    assert.equal(live.tradingStreamUrl, 'wss://api.alpaca.markets/stream');
    assert.throws(() => alpacaConfigFromEnv({ APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's', ALPACA_FEED: 'nyse' }), ConfigError);
    assert.throws(() => alpacaConfigFromEnv({ APCA_API_KEY_ID: 'k', APCA_API_SECRET_KEY: 's', ALPACA_DATA_STREAM_URL: 'https://x/v2/iex' }), ConfigError);
  });
});

describe('AlpacaFeed market-data stream', () => {
  it('authenticates, subscribes and streams trades', async () => {
    const { server, feed, sink } = await setup(['AAPL', 'MSFT']);
    assert.equal(feed.state, 'streaming');
    assert.deepEqual(server.dataActions('auth'), [{ action: 'auth', key: 'test-key', secret: 'test-secret' }]);
    assert.deepEqual(server.dataActions('subscribe'), [{ action: 'subscribe', trades: ['AAPL', 'MSFT'] }]);
    assert.deepEqual(sorted(feed.subscription.trades), ['AAPL', 'MSFT'], 'start() resolves after the echo');
    assert.deepEqual(server.tradingMessages, [
      { action: 'authenticate', data: { key_id: 'test-key', secret_key: 'test-secret' } },
      { action: 'listen', data: { streams: ['trade_updates'] } },
    ]);
    server.push([AlpacaServer.trade('AAPL', 162.92, 3, '2023-04-06T11:54:26.838232225Z')]);
    await waitFor(() => sink.trades.length === 1, 'one trade');
    assert.deepEqual(sink.trades, [{ symbol: 'AAPL', price: 162.92, volume: 3, timestamp: '2023-04-06T11:54:26.838232225Z' }]);
    assert.deepEqual(sink.problems, []);
  });

  it('treats 402 auth failed as final: state failed, no reconnection', async () => {
    const { server, feed, sink } = await setup(['AAPL'], { env: { APCA_API_SECRET_KEY: 'wrong' } });
    assert.equal(feed.state, 'failed');
    const auth = sink.problems.find((p) => p.code === 402);
    assert.ok(auth, `a 402 problem: ${JSON.stringify(sink.problems)}`);
    assert.equal(auth.final, true);
    assert.match(auth.message, /APCA_API_KEY_ID/);
    // The trading stream refuses the same keys, also for good.
    assert.ok(sink.problems.some((p) => p.code === 'unauthorized' && p.final === true));
    await sleep(1_000);
    assert.equal(server.dataConnections, 1, 'no second data connection');
    assert.equal(server.tradingConnections, 1, 'no second trading connection');
    assert.deepEqual(sink.reconnects, []);
    assert.equal(feed.state, 'failed');
  });

  it('changes subscriptions in place and tracks the echo', async () => {
    const { server, feed, sink } = await setup(['AAPL']);
    await feed.update(['MSFT', 'AMD'], ['AAPL']);
    await waitFor(() => sorted(feed.subscription.trades).join() === 'AMD,MSFT', 'the echo of the new subscription');
    assert.deepEqual(
      server.dataMessages.map((m) => m.message).filter((m) => (m as { action: string }).action !== 'auth'),
      [
        { action: 'subscribe', trades: ['AAPL'] },
        { action: 'unsubscribe', trades: ['AAPL'] },
        { action: 'subscribe', trades: ['MSFT', 'AMD'] },
      ],
    );
    assert.equal(server.dataConnections, 1, 'no reconnection');
    assert.deepEqual(sorted(server.subscription()?.trades ?? []), ['AMD', 'MSFT']);
    assert.deepEqual(sorted(feed.tickers), ['AMD', 'MSFT']);
    // A print of the dropped ticker still in flight is not delivered.
    server.push([AlpacaServer.trade('AAPL', 1, 1), AlpacaServer.trade('MSFT', 2, 2)], { filter: false });
    await waitFor(() => sink.trades.length >= 1, 'a trade');
    await sleep(30);
    assert.deepEqual(
      sink.trades.map((t) => t.symbol),
      ['MSFT'],
    );
  });

  it('delivers every message of a batched frame, quotes at the mid and bars at the close', async () => {
    const { server, feed, sink } = await setup(['AAPL', 'AMD'], { feed: { quotes: true, bars: true } });
    assert.deepEqual(server.dataActions('subscribe'), [{ action: 'subscribe', trades: ['AAPL', 'AMD'], quotes: ['AAPL', 'AMD'], bars: ['AAPL', 'AMD'] }]);
    assert.deepEqual(sorted(feed.subscription.quotes), ['AAPL', 'AMD']);
    const t = '2024-07-24T07:56:00Z';
    const sent = server.push([
      AlpacaServer.trade('AAPL', 100, 5, t),
      AlpacaServer.trade('AMD', 133.5, 7, t),
      { T: 'q', S: 'AMD', bx: 'O', bp: 133.85, bs: 4, ax: 'R', ap: 135.77, as: 5, c: ['R'], z: 'A', t },
      { T: 'b', S: 'AAPL', o: 132.65, h: 136, l: 132.12, c: 134.65, v: 205, t, n: 16, vw: 133.7 },
      { T: 'u', S: 'AAPL', o: 1, h: 1, l: 1, c: 1, v: 1, t, n: 1, vw: 1 },
      AlpacaServer.trade('AAPL', 101, 1, t),
    ]);
    assert.equal(sent, 6, 'one frame of six messages');
    await waitFor(() => sink.trades.length >= 5, 'five ticks');
    await sleep(20);
    assert.deepEqual(sink.trades, [
      { symbol: 'AAPL', price: 100, volume: 5, timestamp: t },
      { symbol: 'AMD', price: 133.5, volume: 7, timestamp: t },
      { symbol: 'AMD', price: (133.85 + 135.77) / 2, volume: 0, timestamp: t, kind: 'quote' },
      { symbol: 'AAPL', price: 134.65, volume: 205, timestamp: t, kind: 'bar' },
      { symbol: 'AAPL', price: 101, volume: 1, timestamp: t },
    ]);
  });

  it('reconnects after a dropped connection, re-authenticates and re-subscribes', async () => {
    const { server, feed, sink } = await setup(['AAPL']);
    server.dropAll();
    // A change made while the connection is down goes out with the re-subscription.
    await feed.update(['MSFT'], []);
    await waitFor(() => server.dataActions('auth').length === 2 && sorted(feed.subscription.trades).join() === 'AAPL,MSFT', 'a second session with both tickers');
    assert.equal(server.dataConnections, 2);
    assert.equal(feed.state, 'streaming');
    assert.ok(sink.reconnects.length >= 2, 'both streams reported reconnecting');
    assert.equal(sink.reconnects[0]?.attempt, 1);
    assert.ok(sink.problems.some((p) => /market-data stream is down/.test(p.message)));
    const last = server.dataActions('subscribe').at(-1);
    assert.deepEqual(sorted((last?.trades as string[] | undefined) ?? []), ['AAPL', 'MSFT']);
    await waitFor(() => server.tradingConnections === 2 && server.tradingMessages.length === 4, 'the trading stream back and listening');
    server.push([AlpacaServer.trade('MSFT', 410.5, 10)]);
    await waitFor(() => sink.trades.length === 1, 'a trade after the reconnection');
    assert.equal(sink.trades[0]?.symbol, 'MSFT');
  });

  it('drops and reconnects when no pong comes back', async () => {
    const { server, feed, sink } = await setup(['AAPL'], { feed: { pingIntervalMs: 40, pongTimeoutMs: 80 } });
    await sleep(150);
    assert.equal(server.dataConnections, 1, 'answered pings keep the connection');
    server.answerPings = false;
    await waitFor(() => sink.problems.some((p) => /no pong within 80 ms/.test(p.message)), 'a pong timeout');
    assert.ok(sink.reconnects.length >= 1);
    server.answerPings = true;
    // A ping sent just before may still time out, so wait for a session that outlives the pong timeout.
    await waitFor(async () => {
      const connections = server.dataConnections;
      await sleep(150);
      return connections === server.dataConnections && feed.state === 'streaming' && server.authenticatedDataClients === 1 && feed.subscription.trades.includes('AAPL');
    }, 'a session that stays up');
    assert.ok(server.dataConnections >= 2);
    server.push([AlpacaServer.trade('AAPL', 5, 5)]);
    await waitFor(() => sink.trades.length === 1, 'a trade after the reconnection');
  });

  it('stops reading while the sink asks it to slow down, without taking that for a dead server', async () => {
    const { server, sink } = await setup(['AAPL'], { feed: { pingIntervalMs: 10, pongTimeoutMs: 30 } });
    let release = (): void => undefined;
    sink.hold = new Promise<void>((resolve) => (release = resolve));
    server.push([AlpacaServer.trade('AAPL', 1, 1)]);
    await waitFor(() => sink.trades.length === 1, 'the first trade');
    sink.hold = undefined;
    server.push([AlpacaServer.trade('AAPL', 2, 1)]);
    await sleep(150);
    assert.equal(sink.trades.length, 1, 'the second frame waits for the sink');
    assert.equal(server.dataConnections, 1, 'no pong timeout while paused');
    assert.deepEqual(sink.reconnects, []);
    release();
    await waitFor(() => sink.trades.length === 2, 'the second trade once the sink caught up');
    assert.deepEqual(
      sink.trades.map((t) => t.price),
      [1, 2],
    );
  });

  it('keeps the symbols Alpaca accepts under its limit and reports the rest (405)', async () => {
    const { server, feed, sink } = await setup(['AAPL', 'MSFT'], { server: { symbolLimit: 3 } });
    await feed.update(['AMD', 'TSLA', 'NVDA'], []);
    await waitFor(() => sink.problems.some((p) => p.code === 405), 'a 405 problem');
    const problem = sink.problems.find((p) => p.code === 405);
    assert.equal(problem?.final, false);
    assert.match(problem?.message ?? '', /TSLA, NVDA/);
    assert.doesNotMatch(problem?.message ?? '', /AMD/);
    assert.deepEqual(sorted(feed.subscription.trades), ['AAPL', 'AMD', 'MSFT']);
    assert.deepEqual(sorted(feed.tickers), ['AAPL', 'AMD', 'MSFT'], 'refused symbols are not requested again');
    // The refused request, then each of its symbols on its own.
    assert.deepEqual(server.dataActions('subscribe').slice(1).map((m) => m.trades), [['AMD', 'TSLA', 'NVDA'], ['AMD'], ['TSLA'], ['NVDA']]);
    assert.equal(server.dataConnections, 1);
    assert.equal(feed.state, 'streaming');
  });

  it('reports a malformed symbol (400) without reconnecting and streams the others', async () => {
    const { server, feed, sink } = await setup(['AAPL', 'bad symbol!']);
    const problem = sink.problems.find((p) => p.code === 400);
    assert.ok(problem, 'start() resolves after the refusal was settled');
    assert.match(problem.message, /bad symbol!/);
    assert.deepEqual(feed.subscription.trades, ['AAPL']);
    assert.equal(feed.state, 'streaming');
    await sleep(100);
    assert.equal(server.dataConnections, 1);
    assert.deepEqual(sink.reconnects, []);
  });

  it('ignores 403, reconnects on 404, 406, 407 and 500, and stops on 409', async () => {
    const { server, feed, sink } = await setup(['AAPL']);
    server.sendError(403);
    await sleep(50);
    assert.equal(server.dataConnections, 1);
    assert.equal(sink.problems.length, 0, '403 is not a problem');
    let connections = 1;
    for (const code of [404, 406, 407, 500]) {
      server.sendError(code);
      connections++;
      await waitFor(() => server.dataConnections === connections && feed.state === 'streaming' && feed.subscription.trades.length === 1, `a new session after ${code}`);
      assert.ok(sink.problems.some((p) => p.code === code && p.final === false), `${code} reported`);
    }
    server.sendError(409);
    await waitFor(() => feed.state === 'failed', 'the feed to fail');
    assert.ok(sink.problems.some((p) => p.code === 409 && p.final === true));
    await sleep(200);
    assert.equal(server.dataConnections, connections, 'no reconnection after 409');
  });
});

describe('AlpacaFeed trading stream and orders', () => {
  const order: OrderRequest = { client_order_id: 'bot-1-0001', symbol: 'AAPL', side: 'buy', qty: 10, type: 'limit', limit_price: 187.5, time_in_force: 'day' };

  it('reads trade_updates from binary frames, and from text frames', async () => {
    for (const tradingFrames of ['binary', 'text'] as const) {
      const { server, sink } = await setup([], { server: { tradingFrames } });
      const canceled = { id: 'o-1', client_order_id: 'c-1', symbol: 'TSLA', status: 'canceled', qty: '1' };
      server.pushTradeUpdate('canceled', canceled, { timestamp: '2024-01-02T15:00:00.123456789Z' });
      await waitFor(() => sink.orders.length === 1, `an order event over ${tradingFrames} frames`);
      assert.deepEqual(sink.orders, [{ event: 'canceled', symbol: 'TSLA', timestamp: '2024-01-02T15:00:00.123456789Z', order: canceled }]);
      assert.ok(server.tradingFramesSent.length >= 3 && server.tradingFramesSent.every((f) => f === tradingFrames));
    }
  });

  it('places an order and reports its new and fill updates', async () => {
    const { server, feed, sink } = await setup(['AAPL']);
    await feed.placeOrder(order);
    assert.equal(server.orders.length, 1);
    const received = server.orders[0];
    assert.equal(received?.headers['apca-api-key-id'], 'test-key');
    assert.equal(received?.headers['apca-api-secret-key'], 'test-secret');
    assert.deepEqual(received?.body, {
      symbol: 'AAPL',
      qty: '10',
      side: 'buy',
      type: 'limit',
      time_in_force: 'day',
      client_order_id: 'bot-1-0001',
      limit_price: '187.5',
    });
    await waitFor(() => sink.orders.length === 2, 'new and fill');
    assert.deepEqual(
      sink.orders.map((o) => [o.event, o.symbol, o.order.status, o.order.client_order_id]),
      [
        ['new', 'AAPL', 'new', 'bot-1-0001'],
        ['fill', 'AAPL', 'filled', 'bot-1-0001'],
      ],
    );
    assert.equal(sink.orders[1]?.order.filled_avg_price, '187.5');
    assert.ok(sink.orders.every((o) => !Number.isNaN(Date.parse(o.timestamp))));
  });

  it('reports a refused order as rejected with the server message', async () => {
    const { server, feed, sink } = await setup(['AAPL']);
    server.orderOutcome = 'insufficient-buying-power';
    await feed.placeOrder(order);
    assert.equal(sink.orders.length, 1, 'placeOrder resolves after the rejection reached the sink');
    const rejected = sink.orders[0];
    assert.equal(rejected?.event, 'rejected');
    assert.equal(rejected?.symbol, 'AAPL');
    assert.equal(rejected?.reason, 'insufficient buying power');
    assert.deepEqual({ ...rejected?.order }, {
      symbol: 'AAPL',
      qty: '10',
      side: 'buy',
      type: 'limit',
      time_in_force: 'day',
      client_order_id: 'bot-1-0001',
      limit_price: '187.5',
      status: 'rejected',
    });
    server.orderOutcome = 'invalid';
    await feed.placeOrder({ ...order, client_order_id: 'bot-1-0002' });
    assert.equal(sink.orders[1]?.reason, 'request body format is invalid');
    await sleep(50);
    assert.equal(sink.orders.length, 2, 'no update follows a refused order');
  });

  it('reports an order that cannot reach Alpaca as rejected', async () => {
    const port = await closedPort();
    const { feed, sink } = await setup(['AAPL'], { env: { APCA_API_BASE_URL: `http://127.0.0.1:${port}` } });
    await feed.placeOrder(order);
    assert.equal(sink.orders[0]?.event, 'rejected');
    assert.match(sink.orders[0]?.reason ?? '', /order request to Alpaca failed .*ECONNREFUSED/);
  });
});

describe('AlpacaFeed.stop()', () => {
  it('leaves no handle open and nothing reaches the sink afterwards', async () => {
    const server = await makeServer();
    const before = await settledResources();
    const feed = new AlpacaFeed(alpacaConfigFromEnv(server.env()), { ...FAST, pingIntervalMs: 20 });
    const sink = new RecordingSink();
    await feed.start(['AAPL'], sink);
    await feed.update(['MSFT'], []);
    server.push([AlpacaServer.trade('AAPL', 1, 1)]);
    await waitFor(() => sink.trades.length === 1, 'a trade');
    assert.notDeepEqual(resources(), before, 'the feed holds sockets and timers while it runs');
    await feed.stop();
    assert.equal(feed.state, 'stopped');
    await waitFor(() => resources().join() === before.join(), `the handles from before start(): ${before.join()} vs ${resources().join()}`, 2_000);
    const counts = [sink.trades.length, sink.orders.length, sink.problems.length, sink.reconnects.length];
    server.push([AlpacaServer.trade('AAPL', 2, 2)]);
    server.pushTradeUpdate('fill', { symbol: 'AAPL' });
    await sleep(50);
    assert.deepEqual([sink.trades.length, sink.orders.length, sink.problems.length, sink.reconnects.length], counts);
    await assert.rejects(feed.placeOrder({ client_order_id: 'x', symbol: 'AAPL', side: 'buy', qty: 1, type: 'market', time_in_force: 'day' }), /closed/);
  });

  it('clears a pending reconnection', async () => {
    const server = await makeServer();
    const before = await settledResources();
    const feed = new AlpacaFeed(alpacaConfigFromEnv(server.env()), { ...FAST, reconnect: { baseMs: 10_000, maxMs: 10_000 } });
    const sink = new RecordingSink();
    await feed.start(['AAPL'], sink);
    server.dropAll();
    await waitFor(() => feed.state === 'reconnecting', 'the back-off');
    await feed.stop();
    await waitFor(() => resources().join() === before.join(), 'no retry timer left', 2_000);
    assert.equal(server.dataConnections, 1);
  });
});

/** The resources once the previous test's closing handles are gone. */
async function settledResources(): Promise<string[]> {
  let last = resources();
  for (;;) {
    await sleep(20);
    const now = resources();
    if (now.join() === last.join()) return now;
    last = now;
  }
}

/** The active handles and requests, sorted, so that two snapshots compare as multisets. */
function resources(): string[] {
  return process.getActiveResourcesInfo().sort();
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return address.port;
}
