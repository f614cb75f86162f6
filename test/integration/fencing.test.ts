// Fenced publishing against a real Redis: a message goes out only while its channel's owner
// key holds the message's token, checked in the same script as the write. The script takes a
// channel's token once a chunk and caches the check per channel (issue 18), so the cases that
// could slip through a cache are the ones tested: tokens that change within one chunk, a
// stale holder's messages among a live one's, and a handover between two batches.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FencedError, TickerUpdates, createBus, type BatchItem, type TickBus } from '../../src/index.ts';
import { ownerKey } from '../../src/core/keys.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';

const price = (symbol: string, p: number) => ({ type: 'price' as const, timestamp: '2025-04-24T13:30:00Z', symbol, price: p, volume: 1 });

describe('fenced publishing', () => {
  let server: RedisServer;
  let bus: TickBus;
  before(async () => {
    server = await startRedis();
    bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    await bus.connect();
  });
  after(async () => {
    await bus.close();
    await server.stop();
  });

  /** The prices a channel's history holds, in order. */
  function history(symbol: string): number[] {
    const raw = server.cli('XRANGE', `tickbus:{TICKER_UPDATES_${symbol}}:stream`, '-', '+');
    return [...raw.matchAll(/"price":(\d+)/g)].map((m) => Number(m[1]));
  }

  const item = (symbol: string, p: number, fence: string): BatchItem => ({ channel: TickerUpdates.of({ ticker: symbol }), data: price(symbol, p), fence });

  it('writes only the holder\'s messages, whatever order the tokens come in within a chunk', async () => {
    server.cli('SET', ownerKey('TICKER_UPDATES_FA'), 'm1:7');
    server.cli('SET', ownerKey('TICKER_UPDATES_FB'), 'm2:3');
    const batch = [
      item('FA', 1, 'm1:7'),
      item('FA', 2, 'm1:7'),
      item('FB', 3, 'm1:2'), // a stale token for FB
      item('FA', 4, 'm9:1'), // FA with a token that is not its owner's, after good ones
      item('FA', 5, 'm1:7'), // and the good one again
      item('FB', 6, 'm2:3'),
      item('FB', 7, 'm1:2'),
    ];
    await assert.rejects(bus.publisher.publishBatch(batch), FencedError);
    assert.deepEqual(history('FA'), [1, 2, 5]);
    assert.deepEqual(history('FB'), [6]);
  });

  it('follows a handover between batches: the old holder is refused, the new one written', async () => {
    server.cli('SET', ownerKey('TICKER_UPDATES_FC'), 'm1:1');
    await bus.publisher.publishBatch([item('FC', 1, 'm1:1'), item('FC', 2, 'm1:1')]);
    server.cli('SET', ownerKey('TICKER_UPDATES_FC'), 'm2:2');
    await assert.rejects(bus.publisher.publishBatch([item('FC', 3, 'm1:1'), item('FC', 4, 'm1:1')]), FencedError);
    const receipts = await bus.publisher.publishBatch([item('FC', 5, 'm2:2'), item('FC', 6, 'm2:2')]);
    assert.equal(receipts.length, 2);
    assert.ok(receipts.every((r) => r.status === 'sent' && r.position !== undefined));
    assert.deepEqual(history('FC'), [1, 2, 5, 6]);
  });
});
