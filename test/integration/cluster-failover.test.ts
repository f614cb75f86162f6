// Redis Cluster faults: a master killed (SIGKILL) and its replica promoted, and a slot moved
// to another master, while tickbus publishes and subscribes through them. The failover test
// prints what was lost on pub/sub channels (with history) and on a durable channel, and how
// long delivery took to recover; replication in Redis is asynchronous, so what the dead
// master had acknowledged but not yet passed on is gone, and the figures say how much.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SHIPPED_CATALOGS, TickerUpdates, createBus, streamKey, type TickBus } from '../../src/index.ts';
import { startCluster, type ClusterNode, type RedisCluster } from '../harness/redis-cluster.ts';
import { printFigures } from '../harness/delivery.ts';
import { silentLogger } from '../harness/quiet.ts';
import { waitFor } from '../harness/wait.ts';
import { Work, deliveryCatalog } from '../fixtures/delivery-channels.ts';

const catalogs = [...SHIPPED_CATALOGS, deliveryCatalog];
const CANDIDATES = ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN', 'META', 'GOOG', 'AMD', 'IBM', 'ORCL', 'INTC', 'CSCO', 'QCOM', 'ADBE', 'CRM', 'NFLX', 'PYPL', 'SHOP'];
const price = (symbol: string, seq: number) => ({ type: 'price' as const, timestamp: new Date().toISOString(), price: 100, volume: seq, symbol });

describe('Redis Cluster faults', () => {
  let cluster: RedisCluster;
  const buses: TickBus[] = [];
  const bus = (sender: string, extra: Parameters<typeof createBus>[0] = {}): TickBus => {
    const b = createBus({ redis: { url: cluster.url }, catalogs, sender, logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 }, ...extra });
    buses.push(b);
    return b;
  };

  before(async () => {
    cluster = await startCluster({ nodeTimeoutMs: 1000 });
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await cluster.stop();
  });

  /** Tickers whose channels live on `node`, and on the other masters. */
  async function tickersBy(node: ClusterNode): Promise<{ on: string[]; off: string[] }> {
    const on: string[] = [];
    const off: string[] = [];
    for (const t of CANDIDATES) ((await cluster.masterOf(TickerUpdates.name({ ticker: t }))).port === node.port ? on : off).push(t);
    return { on: on.slice(0, 2), off: off.slice(0, 4) };
  }

  it('a master killed and its replica promoted: prints what pub/sub and durable channels lost, and the time to recover', async () => {
    const work = Work.of({ queue: 'failover' });
    const victim = await cluster.masterOf(streamKey(work.name));
    const { on, off } = await tickersBy(victim);
    assert.ok(on.length === 2 && off.length === 4, 'tickers on the victim and on the other shards');
    const tickers = [...on, ...off];

    const pub = bus('publisher', { fallback: { maxMessages: 200_000 } });
    const sub = bus('subscriber');
    const consumer = bus('consumer');
    const received = new Map<string, Map<number, number>>(tickers.map((t) => [t, new Map()]));
    for (const t of tickers) {
      await sub.subscribe(TickerUpdates.of({ ticker: t }), (d) => {
        if (d.type === 'price') received.get(t)?.set(d.volume ?? -1, Date.now());
      });
    }
    const consumed = new Map<number, number>();
    await consumer.consume(work, (d) => void consumed.set(d.n, Date.now()), { group: 'failover' });

    // A steady stream: every 5 ms one update per ticker and one durable message.
    let seq = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        seq++;
        const n = seq;
        await Promise.all([...tickers.map((t) => pub.publish(TickerUpdates.of({ ticker: t }), price(t, n))), pub.publish(work, { n })]);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await waitFor(() => seq >= 200, 'publishing under way');

    const killedAt = Date.now();
    const { recoveredMs: clusterMs } = await cluster.killMaster(victim);
    await waitFor(() => [...(received.get(on[0] as string)?.values() ?? [])].some((at) => at > killedAt + clusterMs), 'delivery on the promoted master', 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await loop;
    const sent = seq;
    await waitFor(() => pub.publisher.buffered === 0, 'the fallback buffer replayed', 20_000);
    await waitFor(() => tickers.every((t) => received.get(t)?.has(sent)) && consumed.has(sent), 'the last message everywhere', 20_000);

    const lost = (got: Map<number, number> | undefined) => {
      let n = 0;
      for (let i = 1; i <= sent; i++) if (!got?.has(i)) n++;
      return n;
    };
    const lostOn = on.reduce((n, t) => n + lost(received.get(t)), 0);
    const lostOff = off.reduce((n, t) => n + lost(received.get(t)), 0);
    const lostDurable = lost(consumed);
    // Recovery: the end of the longest silence on a ticker of the failed shard, after the kill
    // (SIGKILL lands a moment after it is sent: a few messages may still get through).
    const times = [...(received.get(on[0] as string)?.values() ?? [])].filter((at) => at >= killedAt).sort((a, b) => a - b);
    let recoveredAt = killedAt;
    let longest = -1;
    for (let i = 1; i < times.length; i++) {
      const gap = (times[i] as number) - (times[i - 1] as number);
      if (gap > longest) {
        longest = gap;
        recoveredAt = times[i] as number;
      }
    }
    const recoverMs = recoveredAt - killedAt;
    printFigures('cluster failover (master SIGKILL, replica promoted)', {
      sent_per_channel: sent,
      pubsub_lost_on_failed_shard: lostOn,
      pubsub_lost_on_other_shards: lostOff,
      durable_lost: lostDurable,
      cluster_healthy_ms: clusterMs,
      delivery_recovered_ms: recoverMs,
    });
    // The other shards never lost a master: nothing of theirs may be missing.
    assert.equal(lostOff, 0, 'messages on the shards that kept their master');
    assert.ok(recoverMs < 15_000, `recovered in ${recoverMs} ms`);
    // What the dead master had not replicated is bounded by what it took in the last moments.
    assert.ok(lostOn <= 2 * 200 && lostDurable <= 200, `lost ${lostOn} pub/sub and ${lostDurable} durable messages`);
  });

  it('a ticker’s slot moved to another master: its subscription and its history move with it', async () => {
    const ticker = 'RESHARD';
    const ref = TickerUpdates.of({ ticker });
    const from = await cluster.masterOf(ref.name);
    const to = (await cluster.masters()).find((m) => m.port !== from.port) as ClusterNode;
    // A neighbour on the same master, in another slot: the publisher sends both in one
    // script (one node, several slots) until the move, when the node refuses RESHARD's part.
    let neighbour = '';
    for (const t of CANDIDATES) {
      const name = TickerUpdates.name({ ticker: t });
      if (cluster.slotOf(name) !== cluster.slotOf(ref.name) && (await cluster.masterOf(name)).port === from.port) {
        neighbour = t;
        break;
      }
    }
    assert.ok(neighbour, 'a ticker on the same master');
    const pub = bus('publisher');
    const sub = bus('subscriber');
    const got: number[] = [];
    const gotNeighbour: number[] = [];
    await sub.subscribe(ref, (d) => {
      if (d.type === 'price') got.push(d.volume ?? -1);
    });
    await sub.subscribe(TickerUpdates.of({ ticker: neighbour }), (d) => {
      if (d.type === 'price') gotNeighbour.push(d.volume ?? -1);
    });
    let seq = 0;
    let running = true;
    const failures: string[] = [];
    const loop = (async () => {
      while (running) {
        seq++;
        // Several at once, so that they share scripts.
        const n = seq;
        await Promise.all([
          pub.publish(ref, price(ticker, 2 * n - 1)),
          pub.publish(TickerUpdates.of({ ticker: neighbour }), price(neighbour, n)),
          pub.publish(ref, price(ticker, 2 * n)),
        ]).catch((e: Error) => failures.push(e.message));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await waitFor(() => got.length >= 100, 'updates before the move');
    await cluster.migrateSlot(cluster.slotOf(ref.name), to);
    const movedAt = seq;
    await waitFor(() => got.some((n) => n > 2 * movedAt + 200), 'updates after the move', 15_000);
    running = false;
    await loop;
    await waitFor(() => got.includes(2 * seq) && gotNeighbour.includes(seq), 'the last update', 10_000);
    const missing = 2 * seq - new Set(got).size + (seq - new Set(gotNeighbour).size);
    printFigures('cluster reshard (slot moved mid-stream)', { sent: 3 * seq, received: got.length + gotNeighbour.length, lost: missing, publish_failures: failures.length });
    // Each channel's order held through the move.
    assert.deepEqual(got, [...got].sort((a, b) => a - b), 'in order');
    assert.deepEqual(gotNeighbour, [...gotNeighbour].sort((a, b) => a - b), 'the neighbour in order');
    assert.equal((await cluster.masterOf(ref.name)).port, to.port);
    assert.match(to.cli('PUBSUB', 'SHARDNUMSUB', ref.name), new RegExp(`${ref.name}\\s+1`), 'the sharded subscription followed the slot');
    assert.ok(Number(to.cli('XLEN', streamKey(ref.name))) > 0, 'the history stream moved with the slot');
    assert.equal(missing, 0, 'nothing lost while the slot moved');
  });
});
