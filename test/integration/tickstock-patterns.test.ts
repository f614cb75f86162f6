// The TickStock loop end to end on a private redis-server (seeds 002 and 003): the broker
// forwards its prices as raw ticks on tickstock:market:ticks (--forward-ticks), the
// reference pattern library turns crafted ticks into patterns, indicators and health in the
// seeds' bare formats, and the seeds' own Python subscribers (redis-py) take them unchanged.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { startBrokerRuntime, type BrokerRuntime, type BrokerRuntimeOptions } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { startPatternRuntime, type PatternRuntime, type PatternRuntimeOptions } from '../../src/tickstock/pattern-runtime.ts';
import { IndicatorsStreaming, MarketTicks, PatternEvents, PatternsDetected, PatternsStreaming, StreamingHealth } from '../../src/catalogs/tickstock.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { RawClient, type RawMessage } from '../harness/raw-client.ts';
import { silentLogger } from '../harness/quiet.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { CliProcess, runProcess } from '../harness/cli.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../python/tickbus_wire.py', import.meta.url));

type Json = Record<string, unknown>;
interface Got {
  channel: string;
  data: Json;
}

const OUT_CHANNELS = [PatternsStreaming, PatternsDetected, IndicatorsStreaming, PatternEvents, StreamingHealth];
const SCHEMAS = new Map<string, (typeof OUT_CHANNELS)[number]["schema"] | typeof MarketTicks.schema>([...OUT_CHANNELS, MarketTicks].map((c) => [c.template, c.schema]));

/** A plain subscriber (no tickbus) to channels, as TickStockAppV2 would read them: bare JSON. */
async function listen(url: string, channels: string[]): Promise<{ got: Got[]; close: () => Promise<void> }> {
  const client = createClient({ url });
  await client.connect();
  const got: Got[] = [];
  await client.subscribe(channels, (message, channel) => got.push({ channel, data: JSON.parse(message) as Json }));
  return { got, close: () => client.close() };
}

function assertValid(m: Got): void {
  const schema = SCHEMAS.get(m.channel);
  assert.ok(schema, `a catalog channel: ${m.channel}`);
  const parsed = schema.safeParse(m.data);
  assert.ok(parsed.success, `${m.channel}: ${JSON.stringify(m.data)} ${JSON.stringify(parsed.error?.issues)}`);
}

const on = (got: Got[], channel: string) => got.filter((m) => m.channel === channel).map((m) => m.data);
const keys = (o: unknown) => Object.keys(o as Json).sort();

/** A whole 5 s bucket, in seconds (2023-11-14T22:13:20Z). */
const B = 1_700_000_000;
const tick = (price: number, at: number, symbol = 'AAPL') => JSON.stringify({ symbol, price, volume: 10, timestamp: at });
/**
 * Three 5 s bars of AAPL: a bearish one; a bullish one whose body covers it by a little (a
 * Bullish Engulfing at about 71 %: streaming, not detected); a Doji (100 %: detected too),
 * closed by the flush timer once the clock passes its end. Bad ticks in between are refused
 * and counted, and change nothing.
 */
const CRAFTED = [
  tick(101, B), tick(101.2, B + 1), tick(99.8, B + 2), tick(100, B + 4),
  'not json',
  JSON.stringify({ symbol: 'AAPL', price: -1, volume: 1, timestamp: B + 4 }),
  tick(99.9, B + 5), tick(101.3, B + 6), tick(99.7, B + 7), tick(101.1, B + 9),
  JSON.stringify({ symbol: 'AAPL', price: 100, volume: 1, timestamp: 'not a time' }),
  tick(101, B + 10), tick(102, B + 11), tick(100, B + 12), tick(101, B + 14),
];

describe('the TickStock loop (seeds 002 and 003)', () => {
  let server: RedisServer;
  let raw: RawClient | undefined;
  const brokers: BrokerRuntime[] = [];
  const libraries: PatternRuntime[] = [];
  const closers: Array<() => Promise<void>> = [];

  const broker = async (overrides: Partial<BrokerRuntimeOptions> = {}): Promise<BrokerRuntime> => {
    const runtime = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ seed: 7, ratePerTicker: 50 }), logger: silentLogger, sweepIntervalMs: 100, ...overrides });
    brokers.push(runtime);
    return runtime;
  };
  /** The library on a clock of our own: it stands still at B until the test moves it. */
  const clock = { ms: B * 1000 };
  const library = async (overrides: Partial<PatternRuntimeOptions> = {}): Promise<PatternRuntime> => {
    const runtime = await startPatternRuntime({
      redisUrl: server.url,
      logger: silentLogger,
      timeframes: [5],
      healthEveryMs: 200,
      flushEveryMs: 50,
      heartbeatMs: 0,
      now: () => clock.ms,
      engine: { indicators: { sma: [2], ema: [], rsi: [], vwap: true } },
      ...overrides,
    });
    libraries.push(runtime);
    return runtime;
  };
  const collect = async (channels: string[]): Promise<Got[]> => {
    const l = await listen(server.url, channels);
    closers.push(l.close);
    return l.got;
  };

  before(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    await Promise.all([...brokers.splice(0).map((r) => r.stop()), ...libraries.splice(0).map((r) => r.close()), ...closers.splice(0).map((c) => c())]);
    await raw?.close();
    raw = undefined;
    server.cli('FLUSHALL');
    clock.ms = B * 1000;
  });
  after(async () => {
    await server.stop();
  });

  it('--forward-ticks: every AAPL price the broker publishes is also a bare tick on tickstock:market:ticks', async () => {
    raw = await RawClient.connect(server.url);
    const ticks = await collect([MarketTicks.template]);
    const prices = await raw.collectTickers(['AAPL']);
    await broker({ forwardTicks: true });
    await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AAPL' });
    await waitFor(() => ticks.length >= 5 && prices.length >= 5, 'five forwarded ticks');
    const before = Date.now() / 1000;
    for (const t of ticks) {
      assertValid(t);
      assert.deepEqual(keys(t.data), ['price', 'symbol', 'timestamp', 'volume'], 'the seed\'s {symbol, price, volume, timestamp}, bare');
      assert.equal(t.data.symbol, 'AAPL');
      assert.equal(typeof t.data.timestamp, 'number', 'Unix seconds, as time.time()');
      assert.ok(Math.abs((t.data.timestamp as number) - before) < 30, `seconds near now: ${String(t.data.timestamp)}`);
    }
    // The same trades: each price update has its tick (same price, same time).
    const asTick = (m: RawMessage) => `${String(m.envelope.data.price)}@${Date.parse(m.envelope.data.timestamp as string) / 1000}`;
    const forwarded = new Set(ticks.map((t) => `${String(t.data.price)}@${String(t.data.timestamp)}`));
    for (const p of prices.filter((m) => m.envelope.data.type === 'price').slice(0, 5)) assert.ok(forwarded.has(asTick(p)), `the tick of ${asTick(p)}`);
  });

  it('without --forward-ticks nothing goes to tickstock:market:ticks', async () => {
    raw = await RawClient.connect(server.url);
    const ticks = await collect([MarketTicks.template]);
    const prices = await raw.collectTickers(['AAPL']);
    await broker();
    await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AAPL' });
    await waitFor(() => prices.length >= 10, 'ten AAPL updates');
    await sleep(50);
    assert.equal(ticks.length, 0);
  });

  it('in a broker group each ticker is forwarded by its one broker: each trade once, with its price update', async () => {
    raw = await RawClient.connect(server.url);
    const ticks = await collect([MarketTicks.template]);
    const tickers = ['AAPL', 'MSFT', 'NVDA'];
    const prices = await raw.collectTickers(tickers);
    await Promise.all([broker({ forwardTicks: true, memberId: 'a', leaseMs: 1000 }), broker({ forwardTicks: true, memberId: 'b', leaseMs: 1000 })]);
    for (const ticker of tickers) await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker });
    await waitFor(() => new Set(ticks.map((t) => t.data.symbol)).size === 3, 'ticks of all three tickers');
    await sleep(300);
    await Promise.all(brokers.splice(0).map((r) => r.stop()));
    await sleep(100);
    const tickKeys = ticks.map((t) => `${String(t.data.symbol)} ${String(t.data.price)}@${String(t.data.timestamp)}`);
    assert.equal(new Set(tickKeys).size, tickKeys.length, 'no trade forwarded twice');
    const forwarded = new Set(tickKeys);
    const updates = prices.filter((m) => m.envelope.data.type === 'price');
    assert.ok(updates.length >= 10, `prices flowed: ${updates.length}`);
    for (const m of updates) {
      const key = `${String(m.envelope.data.symbol)} ${String(m.envelope.data.price)}@${Date.parse(m.envelope.data.timestamp as string) / 1000}`;
      assert.ok(forwarded.has(key), `the tick of ${key}`);
    }
  });

  it('the reference library turns crafted ticks into the seeds\' messages on every channel, and counts the bad ticks', async () => {
    raw = await RawClient.connect(server.url);
    const got = await collect(OUT_CHANNELS.map((c) => c.template));
    const lib = await library({ opsPort: 0 });
    await raw.publishAll(MarketTicks.template, CRAFTED);
    await waitFor(() => on(got, PatternEvents.template).length >= 1, 'the engulfing');
    clock.ms = (B + 15) * 1000; // the flush timer closes the Doji's bar
    await waitFor(() => on(got, PatternEvents.template).length >= 2, 'the doji');
    await waitFor(() => on(got, StreamingHealth.template).some((h) => (h.patterns_detected as number) >= 2 && h.status === 'healthy'), 'a healthy report after both');
    // The report whose window held the tick with no time: 1 refused of 13, over the 5 % allowed.
    assert.ok(on(got, StreamingHealth.template).some((h) => h.status === 'degraded'), 'degraded while ticks were refused');

    for (const m of got) assertValid(m);
    const streaming = on(got, PatternsStreaming.template);
    assert.deepEqual(streaming.map((p) => p.pattern_name), ['bullish_engulfing', 'doji']);
    const [engulfing, doji] = streaming as [Json, Json];
    assert.ok((engulfing.confidence as number) > 50 && (engulfing.confidence as number) < 80, `a percentage under 80: ${String(engulfing.confidence)}`);
    assert.deepEqual(doji, {
      pattern_name: 'doji',
      symbol: 'AAPL',
      timeframe: '5s',
      confidence: 100,
      detected_at: B + 15,
      bar_count: 1,
      metadata: { open: 101, high: 102, low: 100, close: 101, volume: 40, direction: 'neutral' },
    });
    assert.deepEqual(keys(engulfing), ['bar_count', 'confidence', 'detected_at', 'metadata', 'pattern_name', 'symbol', 'timeframe']);
    assert.deepEqual(on(got, PatternsDetected.template), [doji], 'only the one of 80 % and above');

    const events = on(got, PatternEvents.template);
    assert.deepEqual(events.map((e) => [e.pattern, e.direction, e.confidence]), [['Bullish Engulfing', 'bullish', Math.round((engulfing.confidence as number) * 10) / 1000], ['Doji', 'neutral', 1]]);
    assert.deepEqual(events[1], { event_type: 'pattern_detected', pattern: 'Doji', symbol: 'AAPL', timestamp: B + 15, confidence: 1, timeframe: '5s', direction: 'neutral', source: 'tickstock_pl', metadata: { price: 101, volume: 40, implication: 'indecision' } });

    const indicators = on(got, IndicatorsStreaming.template);
    assert.deepEqual(indicators.map((i) => `${String(i.indicator_name)}@${String(i.calculated_at)}`), [`VWAP@${B + 5}`, `SMA@${B + 10}`, `VWAP@${B + 10}`, `SMA@${B + 15}`, `VWAP@${B + 15}`]);
    for (const i of indicators) assert.deepEqual(keys(i), ['calculated_at', 'indicator_name', 'metadata', 'symbol', 'timeframe', 'value']);
    assert.equal(indicators[1]?.value, (100 + 101.1) / 2, 'SMA(2) of the closes');

    const health = on(got, StreamingHealth.template).at(-1) as Json;
    assert.deepEqual(keys(health), ['indicators_calculated', 'patterns_detected', 'status', 'symbols_processed', 'timestamp', 'uptime_seconds']);
    assert.deepEqual({ ...health, timestamp: undefined }, { status: 'healthy', uptime_seconds: 15, symbols_processed: 3, patterns_detected: 2, indicators_calculated: 5, timestamp: undefined });

    // The operator's view: /health and the metrics, bad ticks by reason.
    const report = (await (await fetch(`${lib.opsUrl}/health`)).json()) as Json;
    assert.equal(report.status, 'ok');
    assert.equal(report.service, 'patterns');
    const metrics = await (await fetch(`${lib.opsUrl}/metrics`)).text();
    assert.match(metrics, /^tickbus_patterns_ticks_total 13$/m, '12 good ticks and the one with no time passed the schema');
    assert.match(metrics, /^tickbus_patterns_ticks_rejected_total\{reason="TB_ERR_INVALID_JSON"\} 1$/m);
    assert.match(metrics, /^tickbus_patterns_ticks_rejected_total\{reason="TB_ERR_VALIDATION"\} 1$/m);
    assert.match(metrics, /^tickbus_patterns_ticks_rejected_total\{reason="invalid_timestamp"\} 1$/m);
    assert.match(metrics, /^tickbus_patterns_bars_closed_total 3$/m);
    assert.match(metrics, /^tickbus_patterns_detected_total\{pattern="doji"\} 1$/m);
    assert.match(metrics, /^tickbus_patterns_detected_total\{pattern="bullish_engulfing"\} 1$/m);
    assert.match(metrics, /^tickbus_patterns_indicators_published_total\{indicator="VWAP"\} 3$/m);
  });

  it("seed 002's MyEventSubscriber and seed 003's TickStockEventSubscriber (Python) take the library's patterns unchanged", async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import redis'], { encoding: 'utf8' });
    assert.equal(probe.status, 0, `${PYTHON} with redis-py is needed: apt-get install python3-redis (${probe.stderr ?? String(probe.error)})`);
    raw = await RawClient.connect(server.url);
    const got = await collect(OUT_CHANNELS.map((c) => c.template));
    await library();
    // (The plain subscriber of this test listens on tickstock.events.patterns too: two.)
    const seed002 = runProcess(PYTHON, [SCRIPT, 'seed002-patterns', '3'], { REDIS_URL: server.url }, 30_000);
    const seed003 = runProcess(PYTHON, [SCRIPT, 'seed003-patterns', '2'], { REDIS_URL: server.url }, 30_000);
    // Both listening before the ticks go out (pub/sub keeps nothing for late subscribers).
    const patternsBefore = Number(server.cli('PUBSUB', 'NUMPAT'));
    await waitFor(() => Number(server.cli('PUBSUB', 'NUMPAT')) === patternsBefore + 1 && server.cli('PUBSUB', 'NUMSUB', PatternEvents.template).split('\n')[1]?.trim() === '2', 'the Python subscribers', 10_000);
    await raw.publishAll(MarketTicks.template, CRAFTED);
    clock.ms = (B + 15) * 1000;
    const [py2, py3] = await Promise.all([seed002, seed003]);
    assert.equal(py2.code, 0, py2.stderr);
    assert.equal(py3.code, 0, py3.stderr);
    const lines = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as { channel: string; event: Json });
    const fromNode = (names: string[]) => got.filter((m) => names.includes(m.channel)).map((m) => ({ channel: m.channel, event: m.data }));
    assert.deepEqual(lines(py2.stdout), fromNode([PatternsStreaming.template, PatternsDetected.template]), 'tickstock:patterns:*, as published');
    assert.deepEqual(lines(py3.stdout), fromNode([PatternEvents.template]), 'tickstock.events.patterns, as published');
    assert.deepEqual(lines(py2.stdout).map((l) => `${l.channel} ${String(l.event.pattern_name)}`), ['tickstock:patterns:streaming bullish_engulfing', 'tickstock:patterns:streaming doji', 'tickstock:patterns:detected doji']);
  });

  it('the whole loop on the wall clock: broker ticks in, 1 s bars closed by the flush timer, indicators out', async () => {
    raw = await RawClient.connect(server.url);
    const got = await collect([IndicatorsStreaming.template, StreamingHealth.template]);
    const lib = await library({ timeframes: [1], now: Date.now });
    await broker({ forwardTicks: true });
    await raw.send('BROKER_REGISTRATION', { action: 'subscribe', ticker: 'AAPL' });
    await waitFor(() => on(got, IndicatorsStreaming.template).filter((i) => i.indicator_name === 'SMA').length >= 1, 'an SMA of 1 s AAPL bars', 10_000);
    for (const m of got) assertValid(m);
    assert.ok(on(got, IndicatorsStreaming.template).every((i) => i.symbol === 'AAPL' && i.timeframe === '1s'));
    assert.ok(lib.service.engine.stats().barsClosed >= 2);
    assert.ok(on(got, StreamingHealth.template).some((h) => h.status === 'healthy'), 'healthy while ticks come');
  });

  it('`tickbus patterns` runs the library as a process and stops on SIGTERM', async () => {
    const got = await collect([StreamingHealth.template]);
    const cli = new CliProcess(['patterns', '--redis-url', server.url, '--ops-port', '0', '--health-every', '0.2', '--timeframes', '5,60', '--heartbeat-ms', '0']);
    try {
      const [, url] = await cli.waitFor(/tickbus patterns: timeframes 5,60 s, Redis \S+; health (http:\/\/\S+)\/health/);
      await waitFor(() => on(got, StreamingHealth.template).length >= 2, 'health every 0.2 s', 10_000);
      assert.equal(on(got, StreamingHealth.template)[0]?.status, 'idle', 'no ticks yet');
      const report = (await (await fetch(`${url}/health`)).json()) as Json;
      assert.deepEqual([report.status, report.timeframes], ['ok', [5, 60]]);
    } finally {
      assert.equal(await cli.stop(), 0, cli.stderr);
    }
  });
});
