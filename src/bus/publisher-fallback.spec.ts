// The publisher's fallback buffer while Redis cannot be reached (a port nobody listens on):
// receipts, overflow policies, and the metrics that count them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { defineCatalog, defineChannel } from '../index.ts';
import { BufferFullError } from '../core/errors.ts';
import { createBus } from './tick-bus.ts';
import type { BusOptions } from './context.ts';
import { freePort } from '../runtime/backend.ts';
import { createLogger } from '../core/logger.ts';

const Signals = defineChannel({ name: 'signals.generated', schema: z.object({ n: z.number() }), wire: 'bare' });
const catalogs = [defineCatalog('fallback-spec', 'test', { Signals })];
const quiet = createLogger('test', 'silent');

async function deadBus(fallback: BusOptions['fallback']) {
  const url = `redis://127.0.0.1:${await freePort()}`;
  return createBus({ redis: { url }, catalogs, connectTimeoutMs: 100, reconnect: { baseMs: 1000, maxMs: 1000 }, logger: quiet, fallback });
}

describe('publisher fallback buffer, Redis unreachable', () => {
  it('says each message was buffered, instead of failing', async () => {
    const bus = await deadBus(true);
    try {
      const receipts = await Promise.all(Array.from({ length: 20 }, (_, n) => bus.publish(Signals, { n })));
      assert.ok(receipts.every((r) => r.status === 'buffered' && r.receivers === 0));
      assert.equal(bus.publisher.buffered, 20);
      const metrics = await bus.context.metrics.registry.metrics();
      assert.match(metrics, /tickbus_fallback_buffered_total 20/);
      assert.match(metrics, /tickbus_fallback_buffer_messages 20/);
    } finally {
      await bus.close();
    }
  });

  it('drop-newest: a full buffer refuses the new message, says so, and counts it', async () => {
    const bus = await deadBus({ maxMessages: 10, overflow: 'drop-newest' });
    try {
      const receipts = [];
      for (let n = 0; n < 15; n++) receipts.push(await bus.publish(Signals, { n }));
      assert.deepEqual(receipts.map((r) => r.status), [...Array<string>(10).fill('buffered'), ...Array<string>(5).fill('dropped')]);
      assert.match(await bus.context.metrics.registry.metrics(), /tickbus_fallback_dropped_total\{reason="newest"\} 5/);
    } finally {
      await bus.close();
    }
  });

  it('drop-oldest keeps the newest; reject fails the publish with BufferFullError', async () => {
    const oldest = await deadBus({ maxMessages: 3 });
    const reject = await deadBus({ maxMessages: 3, overflow: 'reject' });
    try {
      for (let n = 0; n < 5; n++) assert.equal((await oldest.publish(Signals, { n })).status, 'buffered');
      assert.equal(oldest.publisher.buffered, 3);
      assert.match(await oldest.context.metrics.registry.metrics(), /tickbus_fallback_dropped_total\{reason="oldest"\} 2/);
      for (let n = 0; n < 3; n++) await reject.publish(Signals, { n });
      await assert.rejects(reject.publish(Signals, { n: 3 }), BufferFullError);
      assert.match(await reject.context.metrics.registry.metrics(), /tickbus_publish_failures_total\{channel="unknown",code="TB_ERR_BUFFER_FULL"\} 1/);
    } finally {
      await Promise.all([oldest.close(), reject.close()]);
    }
  });

  it('without a fallback buffer, publishing fails fast with NotConnectedError as before', async () => {
    const bus = await deadBus(undefined);
    try {
      await assert.rejects(bus.publish(Signals, { n: 1 }), /Could not connect/);
    } finally {
      await bus.close();
    }
  });
});
