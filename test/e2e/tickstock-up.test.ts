// `tickbus up` runs the whole TickStock loop out of the box (issue 16's "done when"): one
// `tickbus up` process on a private redis-server, driven as a user would, with raw Redis
// clients and WebSocket clients. The broker forwards the simulated feed's ticks; the pattern
// library's patterns, indicators and health reach browsers (symbol-filtered where asked);
// an offline user's alerts wait in the inbox; backtests submitted the seed 003 way and with
// `tickbus jobs submit` run to a result the owner sees live. `--no-tickstock` leaves it out.
//
// The tests run concurrently against the one process, so that the waits for the 5 s bars
// overlap. Patterns come from closed bars, a few in each 5 s round over all tickers but
// rarely from one: AAPL alone (default seed and rate, simulated over the feed's path) shows
// its first after about 25 s in half the runs and after 33 s in one in ten. So twelve
// tickers make some pattern near-certain within a few bars, each filtered client follows one
// ticker, and AAPL's filter is shown on its indicators, which every bar has.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { waitFor } from '../harness/wait.ts';
import { GatewayClient, type GatewayMessage as Msg } from '../harness/gateway-client.ts';
import { jobKey, userMessagesKey } from '../../src/core/keys.ts';

type Redis = ReturnType<typeof createClient>;

const TICKERS = ['AAPL', 'MSFT', 'NVDA', 'GOOGL', 'AMZN', 'META', 'TSLA', 'AMD', 'INTC', 'IBM', 'ORCL', 'NFLX'];
const PATTERNS = 'tickstock:patterns:streaming';
const DETECTED = 'tickstock:patterns:detected';
const INDICATORS = 'tickstock:indicators:streaming';
const EVENTS = 'tickstock.events.patterns';
const HEALTH = 'tickstock:streaming:health';
const PROGRESS = 'tickstock.events.backtesting.progress';
const RESULTS = 'tickstock.events.backtesting.results';
/** A pattern needs a closed bar, and bars are 5 s: generous for a loaded machine. */
const PATTERN_WAIT_MS = 40_000;

/** The harness client, whose every awaited reply here must be an `ok`. */
class Client extends GatewayClient {
  override async reply(id: unknown): Promise<Msg> {
    const reply = await super.reply(id);
    assert.equal(reply.type, 'ok', JSON.stringify(reply));
    return reply;
  }
}

/** Collects what a raw Redis subscriber hears on some channels (or patterns). */
async function listen(url: string, channels: { subscribe?: string[]; pSubscribe?: string[] }) {
  const client = createClient({ url });
  await client.connect();
  const heard: Array<{ channel: string; message: string }> = [];
  for (const c of channels.subscribe ?? []) await client.subscribe(c, (message, channel) => heard.push({ channel, message }));
  for (const p of channels.pSubscribe ?? []) await client.pSubscribe(p, (message, channel) => heard.push({ channel, message }));
  return { client, heard };
}

/** A detection as both pattern channels and the inbox can be matched on. */
const eventKey = (e: Record<string, unknown>) => `${String(e.symbol)}|${String(e.pattern)}|${String(e.timeframe)}|${String(e.timestamp)}`;

describe('tickbus up: the TickStock loop out of the box', { concurrency: true }, () => {
  let server: RedisServer;
  let bare: RedisServer;
  let up: CliProcess;
  let upBare: CliProcess;
  let httpUrl: string;
  let wsUrl: string;
  let bareWsUrl: string;
  let raw: Redis;
  const closers: Array<() => Promise<unknown>> = [];
  const clients: Client[] = [];

  const client = async (url = wsUrl): Promise<Client> => {
    const c = new Client(url);
    clients.push(c);
    await c.opened;
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'), 'the welcome', 10_000);
    return c;
  };

  before(async () => {
    [server, bare] = await Promise.all([startRedis(), startRedis()]);
    up = new CliProcess(['up', '--port', '0', '--tickers', TICKERS.join(',')], { REDIS_URL: server.url });
    upBare = new CliProcess(['up', '--port', '0', '--no-tickstock'], { REDIS_URL: bare.url });
    const [[, url], [, bareUrl]] = await Promise.all([up.waitFor(/dashboard (http:\/\/\S+)\//, 'stderr', 30_000), upBare.waitFor(/dashboard (http:\/\/\S+)\//, 'stderr', 30_000)]);
    httpUrl = url as string;
    wsUrl = `${httpUrl.replace('http', 'ws')}/ws`;
    bareWsUrl = `${(bareUrl as string).replace('http', 'ws')}/ws`;
    raw = createClient({ url: server.url });
    await raw.connect();
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    for (const close of closers) await close().catch(() => undefined);
    await raw?.quit();
    const codes = await Promise.all([up?.stop('SIGINT'), upBare?.stop('SIGINT')]);
    await Promise.all([server?.stop(), bare?.stop()]);
    assert.deepEqual(codes, [0, 0], `both shut down cleanly. stderr: ${up?.stderr} ${upBare?.stderr}`);
  });

  it('forwards the feed\'s ticks on tickstock:market:ticks, bare {symbol, price, volume, timestamp}', async () => {
    const { client: sub, heard } = await listen(server.url, { subscribe: ['tickstock:market:ticks'] });
    closers.push(() => sub.quit());
    const ticks = () => heard.map((h) => JSON.parse(h.message) as Record<string, unknown>);
    await waitFor(() => ['AAPL', 'MSFT', 'NVDA'].every((s) => ticks().some((t) => t.symbol === s)), 'ticks of AAPL, MSFT and NVDA', 15_000);
    const now = Date.now() / 1000;
    for (const tick of ticks()) {
      assert.deepEqual(Object.keys(tick).sort(), ['price', 'symbol', 'timestamp', 'volume'], JSON.stringify(tick));
      assert.ok(TICKERS.includes(tick.symbol as string), JSON.stringify(tick));
      assert.ok(typeof tick.price === 'number' && tick.price > 0, JSON.stringify(tick));
      assert.ok(Number.isInteger(tick.volume) && (tick.volume as number) >= 1, JSON.stringify(tick));
      assert.ok(typeof tick.timestamp === 'number' && Math.abs(now - tick.timestamp) < 30, `Unix seconds of now: ${JSON.stringify(tick)}`);
    }
  });

  it('streams patterns (filtered per symbol), indicators and health to browsers', async () => {
    const all = await client();
    all.send({ op: 'subscribe', channels: [PATTERNS, DETECTED, EVENTS, INDICATORS, HEALTH], id: 'all' });
    for (const channel of [PATTERNS, DETECTED, EVENTS, INDICATORS, HEALTH]) assert.ok(all.exposed().includes(channel), `${channel} is exposed: ${all.exposed().join()}`);
    // One client per ticker, each filtered to it (AAPL's is the first).
    const own = new Map<string, Client>();
    for (const symbol of TICKERS) {
      const c = await client();
      c.send({ op: 'subscribe', channels: [PATTERNS, INDICATORS], filter: { symbols: [symbol] }, id: symbol });
      own.set(symbol, c);
    }
    await all.reply('all');
    for (const [symbol, c] of own) assert.deepEqual((await c.reply(symbol)).keys, [PATTERNS, INDICATORS]);
    // Every client holds its subscription from here; a bar ending later was published later.
    const since = Date.now() / 1000 + 0.5;
    const later = () => all.updates(PATTERNS).filter((u) => (u.data.detected_at as number) > since);
    await waitFor(() => later().length > 0, 'a pattern on some ticker', PATTERN_WAIT_MS);
    const seen = later();
    // Each reaches the client of its symbol, and no other.
    await waitFor(() => seen.every((p) => own.get(p.data.symbol as string)?.updates(PATTERNS).some((u) => JSON.stringify(u.data) === JSON.stringify(p.data))), `the filtered clients' copies of ${seen.length} pattern(s)`, 10_000);
    for (const [symbol, c] of own) {
      for (const u of c.updates()) assert.equal(u.data.symbol, symbol, `${symbol}'s client got ${JSON.stringify(u)}`);
    }
    const pattern = seen[0]?.data as Record<string, unknown> & { metadata: Record<string, unknown> };
    assert.match(pattern.pattern_name as string, /^[a-z_]+$/);
    assert.ok(['5s', '1min'].includes(pattern.timeframe as string), pattern.timeframe as string);
    assert.ok((pattern.confidence as number) >= 50 && (pattern.confidence as number) <= 100, String(pattern.confidence));
    for (const field of ['open', 'high', 'low', 'close', 'volume']) assert.equal(typeof pattern.metadata[field], 'number', field);
    for (const u of all.updates(DETECTED)) assert.ok((u.data.confidence as number) >= 80, `detected means ≥ 80 %: ${JSON.stringify(u.data)}`);
    // The same detection as seed 003's event (confidence a fraction).
    await waitFor(() => all.updates(EVENTS).some((e) => e.data.symbol === pattern.symbol && e.data.timestamp === pattern.detected_at), 'its tickstock.events.patterns event', 10_000);
    // Indicators: on every closed bar, so AAPL's filtered client has its own and only those.
    const aapl = own.get('AAPL') as Client;
    await waitFor(() => aapl.updates(INDICATORS).length > 0, "AAPL's indicators", 15_000);
    const indicator = aapl.updates(INDICATORS)[0]?.data as Record<string, unknown>;
    assert.equal(indicator.symbol, 'AAPL');
    assert.equal(typeof indicator.indicator_name, 'string');
    assert.equal(typeof indicator.value, 'number');
    assert.ok(new Set(all.updates(INDICATORS).map((u) => u.data.symbol)).size > 1, 'the unfiltered client gets every ticker\'s indicators');
    // Health: every 5 s, healthy once bars close.
    await waitFor(() => all.updates(HEALTH).some((h) => h.data.status === 'healthy' && (h.data.symbols_processed as number) > 0), 'a healthy health report', 15_000);
    // The library's metrics are in up's one /metrics, beside the broker's forwarding.
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text();
    for (const name of ['tickbus_broker_ticks_forwarded_total', 'tickbus_patterns_ticks_total', 'tickbus_patterns_bars_closed_total']) assert.match(metrics, new RegExp(`^${name} [1-9]`, 'm'), name);
  });

  it("an offline user's alerts wait in the inbox: on connecting, in order, once, then live ones", async () => {
    const user = 'up_alerts_1';
    // Not MSFT nor NVDA: their patterns are no alerts for this user.
    const symbols = TICKERS.filter((s) => s !== 'MSFT' && s !== 'NVDA');
    const { client: sub, heard } = await listen(server.url, { subscribe: [EVENTS] });
    closers.push(() => sub.quit());
    const setter = await client();
    setter.send({ op: 'alerts', user, symbols, id: 'prefs' });
    await setter.reply('prefs');
    const since = Date.now() / 1000 + 0.5;
    setter.ws.terminate();
    // Offline while the library detects patterns.
    await waitFor(async () => (await raw.xLen(userMessagesKey(user))) >= 2, 'two alerts in the inbox', PATTERN_WAIT_MS);
    const c = await client();
    c.send({ op: 'subscribe', inbox: true, user, id: 'inbox' });
    assert.deepEqual((await c.reply('inbox')).keys, ['inbox']);
    const subscribed = c.messages.find((m) => m.type === 'subscribed' && m.key === 'inbox') as Msg & { replayed: number };
    assert.equal(subscribed.resume, 'replayed');
    assert.ok(subscribed.replayed >= 2, `replayed ${subscribed.replayed}`);
    const before = c.messages.indexOf(subscribed);
    assert.equal(c.messages.slice(0, before).filter((m) => m.type === 'inbox').length, subscribed.replayed, 'what was missed comes before `subscribed`');
    // Then live ones.
    await waitFor(() => c.inbox().length > subscribed.replayed, 'a live alert', PATTERN_WAIT_MS);
    const frames = c.inbox();
    const ids = frames.map((f) => f.id);
    assert.equal(new Set(ids).size, ids.length, 'none twice');
    const stream = ((await raw.xRange(userMessagesKey(user), '-', '+')) ?? []).map((e) => e.id);
    assert.deepEqual(ids, stream.slice(0, ids.length), 'the stream, in its order, no gap');
    for (const f of frames) {
      assert.equal(f.kind, 'alert');
      assert.ok(symbols.includes(f.data.symbol as string), `an alert for ${String(f.data.symbol)}`);
    }
    // Exactly the matching events published after the preferences, in the order published
    // (events of a bar that ended around the change may or may not be among them).
    const expected = () =>
      heard
        .map((h) => JSON.parse(h.message) as Record<string, unknown>)
        .filter((e) => symbols.includes(e.symbol as string) && (e.timestamp as number) > since)
        .map(eventKey);
    const got = frames.filter((f) => (f.data.timestamp as number) > since).map((f) => eventKey(f.data));
    assert.ok(got.length > 0);
    await waitFor(() => expected().length >= got.length, 'the raw subscriber to have heard as many', 5_000);
    assert.deepEqual(got, expected().slice(0, got.length));
  });

  it('runs a backtest submitted the seed 003 way and one from `tickbus jobs submit`, with progress and results its owner sees', async () => {
    const user = 'up_backtester';
    const c = await client();
    c.send({ op: 'subscribe', jobs: true, user, id: 'jobs' });
    await c.reply('jobs');
    // Seed 003's JobManager.submit_job: HSET the record, EXPIRE, PUBLISH the request.
    const seedId = `bt_up_seed_${Date.now()}`;
    const request = { job_type: 'backtest', job_id: seedId, user_id: user, symbols: ['AAPL'], start_date: '2024-03-01', end_date: '2024-03-29', patterns: ['Doji', 'Hammer', 'Bullish Engulfing'], parameters: { initial_capital: 100000, position_size: 0.1 }, timestamp: Date.now() / 1000 };
    await raw.hSet(jobKey(seedId), { status: 'submitted', user_id: user, created_at: String(Date.now() / 1000), job_data: JSON.stringify(request) });
    await raw.expire(jobKey(seedId), 24 * 3600);
    assert.ok((await raw.publish('tickstock.jobs.backtest', JSON.stringify(request))) >= 1, "up's bridge hears it");
    const cli = await runCli(['jobs', 'submit', '--user', user, '--symbols', 'MSFT,NVDA', '--from', '2024-03-04', '--to', '2024-03-29', '--patterns', 'Doji,Hammer', '--json'], { REDIS_URL: server.url }, 30_000);
    assert.equal(cli.code, 0, cli.stderr);
    const cliId = (JSON.parse(cli.stdout) as { job_id: string }).job_id;
    const jobs: Array<[string, string[], string[]]> = [
      [seedId, ['AAPL'], ['Bullish Engulfing', 'Doji', 'Hammer']],
      [cliId, ['MSFT', 'NVDA'], ['Doji', 'Hammer']],
    ];
    for (const [id, symbols, patterns] of jobs) {
      await waitFor(() => c.updates(RESULTS).some((u) => u.data.job_id === id), `the result of ${id}`, 40_000);
      const result = c.updates(RESULTS).find((u) => u.data.job_id === id)?.data as { status: string; results: { symbols: string[]; by_pattern: Record<string, Record<string, number>> } };
      assert.equal(result.status, 'completed', JSON.stringify(result));
      assert.deepEqual(result.results.symbols, symbols);
      assert.deepEqual(Object.keys(result.results.by_pattern).sort(), patterns);
      for (const [name, stats] of Object.entries(result.results.by_pattern)) {
        assert.ok(typeof stats.hit_rate === 'number' && stats.hit_rate >= 0 && stats.hit_rate <= 1, `${name}'s hit rate: ${JSON.stringify(stats)}`);
        assert.equal(typeof stats.detections, 'number');
      }
      const progress = c.updates(PROGRESS).filter((u) => u.data.job_id === id).map((u) => u.data as { progress: number; status: string });
      assert.ok(progress.length >= 2, `progress reports: ${JSON.stringify(progress)}`);
      for (let i = 1; i < progress.length; i++) assert.ok((progress[i]?.progress as number) >= (progress[i - 1]?.progress as number), `progress rises: ${JSON.stringify(progress)}`);
      assert.deepEqual(progress.at(-1), { ...progress.at(-1), progress: 1, status: 'completed' });
      assert.equal(await raw.hGet(jobKey(id), 'status'), 'completed');
    }
    assert.ok(c.updates().every((u) => jobs.some(([id]) => id === u.data.job_id)), 'only its own jobs');
  });

  it('`tickbus up --no-tickstock` publishes nothing on the TickStock channels', async () => {
    const { client: sub, heard } = await listen(bare.url, { pSubscribe: ['tickstock*', 'TICKER_UPDATES_*'] });
    closers.push(() => sub.quit());
    const updates = () => heard.filter((h) => h.channel.startsWith('TICKER_UPDATES_'));
    await waitFor(() => ['AAPL', 'MSFT', 'NVDA'].every((s) => updates().filter((h) => h.channel === `TICKER_UPDATES_${s}`).length >= 3), 'three price updates of each ticker', 20_000);
    assert.deepEqual(heard.filter((h) => h.channel.startsWith('tickstock')), [], 'no ticks forwarded, no patterns, no health');
    assert.equal(bare.cli('PUBSUB', 'NUMSUB', 'tickstock:market:ticks').split('\n')[1]?.trim(), '0', 'no pattern library listens');
    const c = await client(bareWsUrl);
    assert.deepEqual(c.exposed().filter((ch) => ch.startsWith('tickstock')), [], 'no TickStock channel exposed');
    assert.doesNotMatch(upBare.stderr, /patterns {2}bars|backtests/);
  });
});
