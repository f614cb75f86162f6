import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { createBus } from '../bus/tick-bus.ts';
import { MemoryHub, MemoryTransport } from '../transports/memory/memory-transport.ts';
import { TickerUpdates } from '../catalogs/broker.ts';
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
});
