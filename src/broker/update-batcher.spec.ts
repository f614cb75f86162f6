import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { createBus } from '../bus/tick-bus.ts';
import { MemoryHub, MemoryTransport } from '../transports/memory/memory-transport.ts';
import { TickerUpdates } from '../catalogs/broker.ts';
import { MarketTicks } from '../catalogs/tickstock.ts';
import { BrokerMetrics } from './broker-metrics.ts';
import { MemoryBrokerStore } from './broker-store.ts';
import { UpdateBatcher } from './update-batcher.ts';

const silent = pino({ level: 'silent' });

describe('UpdateBatcher', () => {
  it('loses only the bad update of a batch, and caches only published prices', async () => {
    const transport = new MemoryTransport(new MemoryHub());
    const bus = createBus({ transport, logger: silent, limits: { maxMessageBytes: 400 } });
    const received: string[] = [];
    await bus.subscribe(TickerUpdates, (u, ctx) => {
      received.push(`${ctx.params.ticker}:${u.type}`);
    });
    const store = new MemoryBrokerStore();
    const registry = new Registry();
    const batcher = new UpdateBatcher(bus.publisher, store, new BrokerMetrics(registry), silent);
    const price = (ticker: string, p: number) => ({ type: 'price' as const, price: p, volume: 1, symbol: ticker, timestamp: '2025-01-01T00:00:00Z' });
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'A' }), data: price('A', 1) }, 'price', 'A');
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'B' }), data: { type: 'order', symbol: 'B', timestamp: '2025-01-01T00:00:00Z', order_data: { note: 'x'.repeat(1000) } } }, 'order');
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'C' }), data: { ...price('C', 3), price: -1 } }, 'price', 'C');
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'D' }), data: price('D', 4) }, 'price', 'D');
    await batcher.drain();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(received.sort(), ['A:price', 'D:price'], 'the too-large and the invalid update were the only ones lost');
    assert.equal(await store.lastValue('C'), undefined, 'an unpublished price never reaches the cache');
    assert.equal((JSON.parse((await store.lastValue('D')) ?? '{}') as { price: number }).price, 4);
    const failures = await registry.getSingleMetricAsString('tickbus_broker_publish_failures_total');
    assert.match(failures, /code="TB_ERR_MESSAGE_TOO_LARGE"\} 1/);
    assert.match(failures, /code="TB_ERR_VALIDATION"\} 1/);
    await bus.close();
  });

  it('sends a companion (the forwarded tick) in the same batch; a bad one loses neither its update nor the others', async () => {
    const transport = new MemoryTransport(new MemoryHub());
    const bus = createBus({ transport, logger: silent });
    const got: string[] = [];
    await bus.subscribe(TickerUpdates, (u, ctx) => {
      got.push(`update:${ctx.params.ticker}`);
    });
    await bus.subscribe(MarketTicks, (t) => {
      got.push(`tick:${t.symbol}:${t.timestamp}`);
    });
    const registry = new Registry();
    const batcher = new UpdateBatcher(bus.publisher, new MemoryBrokerStore(), new BrokerMetrics(registry), silent);
    const price = (ticker: string) => ({ type: 'price' as const, price: 1, volume: 1, symbol: ticker, timestamp: '2025-01-01T00:00:00Z' });
    const tick = (symbol: string, volume = 1) => ({ channel: MarketTicks, data: { symbol, price: 1, volume, timestamp: 1735689600 } });
    let batches = 0;
    const publishBatch = bus.publisher.publishBatch.bind(bus.publisher);
    bus.publisher.publishBatch = (items) => {
      batches++;
      return publishBatch(items);
    };
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'A' }), data: price('A') }, 'price', 'A', tick('A'));
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'B' }), data: price('B') }, 'price', 'B', tick('B'));
    await batcher.drain();
    await new Promise((r) => setImmediate(r));
    assert.equal(batches, 1, 'one round trip for two updates and their ticks');
    assert.deepEqual(got, ['update:A', 'tick:A:1735689600', 'update:B', 'tick:B:1735689600']);
    got.length = 0;
    await batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'C' }), data: price('C') }, 'price', 'C', tick('C', -1));
    await batcher.drain();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, ['update:C'], 'the invalid tick was the only one lost');
    assert.match(await registry.getSingleMetricAsString('tickbus_broker_ticks_forwarded_total'), / 2$/m);
    assert.match(await registry.getSingleMetricAsString('tickbus_broker_forward_failures_total'), /code="TB_ERR_VALIDATION"\} 1/);
    await bus.close();
  });
  it('frees a batch slot once its publish is acknowledged, not after its last-value write; drain() waits for the writes', async () => {
    const transport = new MemoryTransport(new MemoryHub());
    const bus = createBus({ transport, logger: silent });
    const received: number[] = [];
    await bus.subscribe(TickerUpdates, (u) => {
      if (u.type === 'price' && u.price !== undefined) received.push(u.price);
    });
    // A cache that answers only when told to: Redis slow on the second command.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const store = new MemoryBrokerStore();
    const setLastValues = store.setLastValues.bind(store);
    store.setLastValues = async (values) => {
      await gate;
      return setLastValues(values);
    };
    const batcher = new UpdateBatcher(bus.publisher, store, new BrokerMetrics(new Registry()), silent, { maxBatch: 1, maxInFlight: 1 });
    const price = (p: number) => ({ type: 'price' as const, price: p, volume: 1, symbol: 'A', timestamp: '2025-01-01T00:00:00Z' });
    // Not awaited: a full slot makes enqueue() wait, and with the old behaviour it never freed.
    const enqueued = [1, 2, 3].map((p) => batcher.enqueue({ channel: TickerUpdates.of({ ticker: 'A' }), data: price(p) }, 'price', 'A'));
    let drained = false;
    const draining = batcher.drain().then(() => (drained = true));
    for (let i = 0; i < 50 && received.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(received, [1, 2, 3], 'three batches through one slot while the cache write of the first still waits');
    assert.equal(drained, false, 'drain() waits for the cache');
    open();
    for (const wait of enqueued) if (wait) await wait;
    await draining;
    assert.equal((JSON.parse((await store.lastValue('A')) ?? '{}') as { price: number }).price, 3);
    await bus.close();
  });
});
