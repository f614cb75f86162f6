// The shipped catalogs: every channel exports JSON Schema, the example messages of the
// seeds validate, and the typical mistakes are refused with the offending field named.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelResolver, catalogJsonSchema } from '../core/catalog.ts';
import type { Channel } from '../core/channel.ts';
import { validateSync } from '../core/schema.ts';
import { globMatch } from '../transports/memory/glob.ts';
import { SHIPPED_CATALOGS, brokerCatalog, tickstockCatalog, tradingEventsCatalog } from './index.ts';
import { BrokerRegistration, TickerUpdates } from './broker.ts';
import {
  AlertJobs,
  BacktestJobs,
  BacktestProgress,
  BacktestResults,
  Errors,
  IndicatorsStreaming,
  MarketTicks,
  PatternEvents,
  PatternsDetected,
  PatternsStreaming,
  StreamingHealth,
  SystemHealthEvents,
  SystemJobs,
} from './tickstock.ts';
import { OrdersExecuted, PositionsUpdated, PriceUpdated, SignalsGenerated } from './trading-events.ts';

type JsonObject = Record<string, unknown>;

/** The object schemas of a JSON Schema: itself, or each branch of a oneOf/anyOf. */
function objectBranches(schema: JsonObject): JsonObject[] {
  const branches = (schema.oneOf ?? schema.anyOf) as JsonObject[] | undefined;
  return branches ?? [schema];
}

function accepts(channel: Channel, value: unknown): unknown {
  const result = validateSync(channel.schema, value, channel.template);
  assert.ok(result.ok, result.ok ? '' : `${channel.template} refused ${JSON.stringify(value)}: ${result.error.message}`);
  return result.value;
}

/** Asserts that the channel refuses `value`, naming `path` among the issues. */
function refuses(channel: Channel, value: unknown, path: string): void {
  const result = validateSync(channel.schema, value, channel.template);
  assert.ok(!result.ok, `${channel.template} accepted ${JSON.stringify(value)}`);
  const paths = result.error.issues.map((i) => i.path);
  assert.ok(paths.includes(path), `${channel.template}: expected an issue at "${path}", got ${JSON.stringify(result.error.issues)}`);
  assert.equal(result.error.code, 'TB_ERR_VALIDATION');
  assert.equal(result.error.channel, channel.template);
}

const without = (value: JsonObject, key: string): JsonObject => Object.fromEntries(Object.entries(value).filter(([k]) => k !== key));

describe('shipped catalogs: JSON Schema export', () => {
  for (const catalog of SHIPPED_CATALOGS) {
    it(`exports a schema for every channel of "${catalog.name}"`, () => {
      const doc = catalogJsonSchema(catalog);
      assert.equal(doc.$schema, 'https://json-schema.org/draft/2020-12/schema');
      assert.equal(doc.title, `tickbus catalog: ${catalog.name}`);
      const channels = doc.channels as Record<string, JsonObject>;
      assert.deepEqual(Object.keys(channels), catalog.list().map((c) => c.template));
      assert.ok(catalog.list().length > 0);
      for (const ch of catalog.list()) {
        const entry = channels[ch.template] as JsonObject;
        assert.equal(entry.pattern, ch.pattern());
        assert.equal(entry.wire, ch.wire);
        assert.equal(typeof entry.description, 'string');
        assert.ok((entry.description as string).length > 0, `${ch.template} has a description`);
        assert.deepEqual(Object.keys(entry.params as JsonObject), [...ch.paramNames]);
        for (const n of ch.paramNames) {
          const p = (entry.params as Record<string, JsonObject>)[n] as JsonObject;
          assert.equal(typeof p.pattern, 'string');
          assert.ok(new RegExp(p.pattern as string).test('AAPL'), `${ch.template} {${String(n)}} accepts AAPL`);
          assert.ok(!new RegExp(p.pattern as string).test('AAPL*'), `${ch.template} {${String(n)}} refuses AAPL*`);
          assert.equal(typeof p.maxLength, 'number');
        }
        const data = entry.data as JsonObject;
        const branches = objectBranches(data);
        assert.ok(branches.length > 0, `${ch.template}: data schema`);
        for (const b of branches) {
          assert.equal(b.type, 'object', `${ch.template}: data is an object`);
          assert.ok(Object.keys(b.properties as JsonObject).length > 0, `${ch.template}: data has properties`);
          assert.ok(Array.isArray(b.required) && b.required.length > 0, `${ch.template}: data has required fields`);
        }
        // The document is plain JSON: other languages read it as it is.
        assert.deepEqual(JSON.parse(JSON.stringify(entry)), entry);
      }
    });
  }

  it('carries the constraints other services need', () => {
    const ts = catalogJsonSchema(tickstockCatalog).channels as Record<string, { data: { properties: Record<string, JsonObject> } }>;
    assert.equal(ts['tickstock.events.patterns']?.data.properties.confidence?.maximum, 1);
    assert.equal(ts['tickstock:patterns:streaming']?.data.properties.confidence?.maximum, 100);
    const te = catalogJsonSchema(tradingEventsCatalog).channels as Record<string, { data: { properties: Record<string, JsonObject> }; params: JsonObject }>;
    assert.equal(te['positions.updated']?.data.properties.price?.type, 'string');
    assert.equal(typeof te['positions.updated']?.data.properties.price?.pattern, 'string');
    assert.deepEqual(Object.keys(te['price.updated.{symbol}']?.params ?? {}), ['symbol']);
    const broker = catalogJsonSchema(brokerCatalog).channels as Record<string, { data: JsonObject }>;
    const consts = objectBranches(broker['TICKER_UPDATES_{ticker}']?.data ?? {}).map((b) => (b.properties as Record<string, JsonObject>).type?.const);
    assert.deepEqual(consts.sort(), ['order', 'price']);
  });

  it('resolves every concrete channel name to its definition', () => {
    const resolver = new ChannelResolver(SHIPPED_CATALOGS);
    for (const ch of resolver.channels()) {
      const name = ch.isTemplate ? (ch.name as (p: Record<string, string>) => string)(Object.fromEntries(ch.paramNames.map((n) => [n, 'BRK.B']))) : ch.template;
      const found = resolver.resolve(name);
      assert.equal(found?.channel, ch, name);
      assert.ok(globMatch(ch.pattern(), name), `${ch.pattern()} matches ${name}`);
      // No other channel's pattern claims the name.
      for (const other of resolver.channels()) if (other !== ch) assert.ok(!globMatch(other.pattern(), name), `${other.pattern()} also matches ${name}`);
    }
    assert.deepEqual(resolver.resolve('price.updated.BRK.B')?.params, { symbol: 'BRK.B' });
    assert.equal(resolver.resolve('TICKER_UPDATES_aapl'), undefined);
    assert.equal(resolver.resolve('no.such.channel'), undefined);
  });
});

describe('broker catalog (seeds 000, 001)', () => {
  const price = { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150.0, volume: 1000, symbol: 'AAPL' };

  it('accepts the seed 001 ticker updates', () => {
    accepts(TickerUpdates, price);
    accepts(TickerUpdates, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 300.5, symbol: 'MSFT' });
    accepts(TickerUpdates, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z' });
    // Python's isoformat() without a zone, as the seed's envelope timestamp.
    accepts(TickerUpdates, { type: 'order', timestamp: '2025-04-24T09:45:01.123456', order_data: { id: 'o-1', status: 'filled', qty: '10' }, symbol: 'AAPL' });
  });

  it('refuses malformed ticker updates', () => {
    refuses(TickerUpdates, { ...price, type: 'trade' }, 'type');
    refuses(TickerUpdates, without(price, 'timestamp'), 'timestamp');
    refuses(TickerUpdates, { ...price, timestamp: 'yesterday' }, 'timestamp');
    refuses(TickerUpdates, { ...price, price: -1 }, 'price');
    refuses(TickerUpdates, { ...price, price: '150.00' }, 'price');
    refuses(TickerUpdates, { ...price, symbol: 'aapl' }, 'symbol');
    refuses(TickerUpdates, { ...price, symbol: 'AAPL*' }, 'symbol');
    refuses(TickerUpdates, { type: 'order', timestamp: price.timestamp, order_data: 'filled' }, 'order_data');
  });

  it('accepts the seed 001 registration and normalises its ticker', () => {
    assert.deepEqual(accepts(BrokerRegistration, { action: 'subscribe', ticker: 'MSFT' }), { action: 'subscribe', ticker: 'MSFT' });
    assert.deepEqual(accepts(BrokerRegistration, { action: 'unsubscribe', ticker: ' aapl ' }), { action: 'unsubscribe', ticker: 'AAPL' });
    accepts(BrokerRegistration, { action: 'subscribe', ticker: 'BRK.B', client_id: 'bot-1', ttl_seconds: 0 });
  });

  it('refuses malformed registrations', () => {
    refuses(BrokerRegistration, { action: 'register', ticker: 'MSFT' }, 'action');
    refuses(BrokerRegistration, { action: 'subscribe' }, 'ticker');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL*' }, 'ticker');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL\r\nPUBLISH x y' }, 'ticker');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'A'.repeat(10_000) }, 'ticker');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'MSFT', ttl_seconds: -5 }, 'ttl_seconds');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'MSFT', ttl_seconds: 1.5 }, 'ttl_seconds');
    refuses(BrokerRegistration, { action: 'subscribe', ticker: 'MSFT', client_id: '' }, 'client_id');
  });
});

describe('tickstock catalog (seeds 002, 003)', () => {
  const streamingPattern = {
    pattern_name: 'doji',
    symbol: 'AAPL',
    timeframe: '1min',
    confidence: 85.5,
    detected_at: 1234567890.123,
    bar_count: 5,
    metadata: { open: 150.0, high: 151.0, low: 149.5, close: 150.2 },
  };
  const patternEvent = {
    event_type: 'pattern_detected',
    pattern: 'Doji',
    symbol: 'AAPL',
    timestamp: 1693123456.789,
    confidence: 0.85,
    timeframe: '1min',
    direction: 'reversal',
    source: 'tickstock_pl',
    metadata: { price: 150.25, volume: 1000 },
  };
  const backtestJob = {
    job_type: 'backtest',
    job_id: 'bt_uuid_123',
    user_id: 'user_456',
    symbols: ['AAPL', 'GOOGL'],
    start_date: '2024-01-01',
    end_date: '2024-12-31',
    patterns: ['Doji', 'Hammer'],
    parameters: { initial_capital: 100000, position_size: 0.1 },
    timestamp: 1693123456.789,
  };
  const progress = { job_id: 'bt_uuid_123', progress: 0.42, status: 'running', timestamp: 1693123456.789 };
  const cancel = { command: 'cancel_job', job_id: 'bt_uuid_123', timestamp: 1693123456.789 };

  it('accepts the seed 002 pattern, indicator and health examples', () => {
    accepts(PatternsStreaming, streamingPattern);
    accepts(PatternsDetected, streamingPattern);
    accepts(IndicatorsStreaming, {
      indicator_name: 'RSI',
      symbol: 'AAPL',
      timeframe: '1min',
      value: 68.5,
      calculated_at: 1234567890.123,
      metadata: { period: 14, source: 'close' },
    });
    accepts(StreamingHealth, {
      status: 'healthy',
      uptime_seconds: 3600,
      symbols_processed: 4200,
      patterns_detected: 156,
      indicators_calculated: 8400,
      timestamp: 1234567890.123,
    });
    accepts(MarketTicks, { symbol: 'AAPL', price: 150.25, volume: 100, timestamp: 1234567890.123 });
    accepts(MarketTicks, { symbol: 'AAPL', price: 150.25, volume: 100, timestamp: '2025-04-24T09:45:00Z' });
    accepts(Errors, { severity: 'error', message: 'Redis connection lost', component: 'subscriber', timestamp: 1234567890.123 });
  });

  it('refuses malformed seed 002 messages', () => {
    refuses(PatternsStreaming, { ...streamingPattern, confidence: 150 }, 'confidence');
    refuses(PatternsStreaming, { ...streamingPattern, confidence: '85.5' }, 'confidence');
    refuses(PatternsStreaming, { ...streamingPattern, symbol: 'aapl' }, 'symbol');
    refuses(PatternsStreaming, without(streamingPattern, 'pattern_name'), 'pattern_name');
    refuses(PatternsStreaming, { ...streamingPattern, bar_count: 2.5 }, 'bar_count');
    refuses(IndicatorsStreaming, { indicator_name: 'RSI', symbol: 'AAPL', timeframe: '1min', value: 'high' }, 'value');
    refuses(StreamingHealth, { status: 'healthy', symbols_processed: -1 }, 'symbols_processed');
    refuses(MarketTicks, { symbol: 'AAPL', price: -1, volume: 100, timestamp: 1 }, 'price');
  });

  it('accepts the seed 003 pattern event, backtest job, progress and cancel command', () => {
    accepts(PatternEvents, patternEvent);
    accepts(BacktestJobs, backtestJob);
    accepts(BacktestProgress, progress);
    for (const status of ['submitted', 'running', 'completed', 'failed', 'cancelled', 'cancelling']) accepts(BacktestProgress, { ...progress, status });
    accepts(SystemJobs, cancel);
    accepts(BacktestResults, { job_id: 'bt_uuid_123', status: 'completed', results: { sharpe: 1.2 }, timestamp: 1693123456.789 });
    accepts(SystemHealthEvents, { status: 'healthy', component: 'tickstock_pl', timestamp: 1693123456.789 });
    accepts(AlertJobs, { user_id: 'user_456', action: 'subscribe', symbols: ['AAPL'], patterns: ['Doji'], timestamp: 1693123456.789 });
  });

  it('refuses malformed seed 003 messages', () => {
    // Confidence is a fraction on tickstock.events.patterns, a percentage on tickstock:patterns:*.
    refuses(PatternEvents, { ...patternEvent, confidence: 1.5 }, 'confidence');
    refuses(PatternEvents, { ...patternEvent, confidence: 85.5 }, 'confidence');
    refuses(PatternEvents, { ...patternEvent, event_type: 'pattern' }, 'event_type');
    refuses(PatternEvents, { ...patternEvent, timestamp: '2025-04-24T09:45:00Z' }, 'timestamp');
    refuses(PatternEvents, { ...patternEvent, timestamp: -1 }, 'timestamp');
    refuses(BacktestJobs, { ...backtestJob, symbols: [] }, 'symbols');
    refuses(BacktestJobs, { ...backtestJob, symbols: ['AAPL', 'goog*'] }, 'symbols.1');
    refuses(BacktestJobs, { ...backtestJob, start_date: '01/01/2024' }, 'start_date');
    refuses(BacktestJobs, { ...backtestJob, end_date: '2024-13-01' }, 'end_date');
    refuses(BacktestJobs, { ...backtestJob, job_type: 'scan' }, 'job_type');
    refuses(BacktestProgress, { ...progress, progress: 1.2 }, 'progress');
    refuses(BacktestProgress, { ...progress, status: 'paused' }, 'status');
    refuses(SystemJobs, without(cancel, 'command'), 'command');
    refuses(SystemJobs, { ...cancel, command: '' }, 'command');
    refuses(BacktestResults, { job_id: 'j', status: 'running', timestamp: 1 }, 'status');
  });
});

describe('trading-events catalog (seed 004)', () => {
  const signal = {
    event_type: 'signals.generated',
    timestamp: '2025-01-15T14:30:00.123456+00:00',
    strategy_id: 'alpha_baseline',
    symbols: ['AAPL', 'MSFT'],
    num_signals: 2,
    as_of_date: '2025-01-15',
  };
  const order = {
    event_type: 'orders.executed',
    timestamp: '2025-01-15T14:30:05Z',
    run_id: '3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b',
    strategy_id: 'alpha_baseline',
    num_orders: 3,
    num_accepted: 2,
    num_rejected: 1,
  };
  const position = {
    event_type: 'positions.updated',
    timestamp: '2025-01-15T14:30:06.5-05:00',
    symbol: 'AAPL',
    action: 'partial_fill',
    qty_change: -10,
    new_qty: 90,
    price: '105.89',
    strategy_id: 'alpha_baseline',
  };
  const priceUpdate = { event_type: 'price.updated', symbol: 'BRK.B', price: '412.305', timestamp: '2025-01-15T14:30:07.000001+00:00' };

  it('accepts the seed 004 field types', () => {
    accepts(SignalsGenerated, signal);
    accepts(OrdersExecuted, order);
    accepts(PositionsUpdated, position);
    accepts(PositionsUpdated, { ...position, price: '-0.5' });
    accepts(PriceUpdated, priceUpdate);
    // price.updated documents its timestamp only as an ISO string: no zone is allowed there.
    accepts(PriceUpdated, { ...priceUpdate, timestamp: '2025-01-15T14:30:07' });
    assert.equal(PriceUpdated.name({ symbol: 'brk.b' }), 'price.updated.BRK.B');
  });

  it('refuses a timestamp without a time zone where seed 004 says tz-aware', () => {
    refuses(SignalsGenerated, { ...signal, timestamp: '2025-01-15T14:30:00' }, 'timestamp');
    refuses(OrdersExecuted, { ...order, timestamp: '2025-01-15T14:30:05.123' }, 'timestamp');
    refuses(PositionsUpdated, { ...position, timestamp: '2025-01-15T14:30:06' }, 'timestamp');
    refuses(SignalsGenerated, { ...signal, timestamp: 1736951400 }, 'timestamp');
  });

  it('refuses a price written as a number where a decimal string is required', () => {
    refuses(PositionsUpdated, { ...position, price: 105.89 }, 'price');
    refuses(PriceUpdated, { ...priceUpdate, price: 412.305 }, 'price');
    refuses(PositionsUpdated, { ...position, price: '1e3' }, 'price');
    refuses(PositionsUpdated, { ...position, price: '105.' }, 'price');
    refuses(PositionsUpdated, { ...position, price: '$105.89' }, 'price');
  });

  it('refuses the other seed 004 constraint violations', () => {
    refuses(SignalsGenerated, { ...signal, symbols: [] }, 'symbols');
    refuses(SignalsGenerated, { ...signal, num_signals: -1 }, 'num_signals');
    refuses(SignalsGenerated, { ...signal, as_of_date: '2025-01-15T00:00:00Z' }, 'as_of_date');
    refuses(OrdersExecuted, { ...order, run_id: 'run-42' }, 'run_id');
    refuses(OrdersExecuted, { ...order, num_accepted: 1.5 }, 'num_accepted');
    refuses(PositionsUpdated, { ...position, action: 'short' }, 'action');
    refuses(PositionsUpdated, { ...position, qty_change: 0.5 }, 'qty_change');
    refuses(PositionsUpdated, { ...position, symbol: 'aapl' }, 'symbol');
    refuses(PriceUpdated, { ...priceUpdate, event_type: 'price.update' }, 'event_type');
  });
});
