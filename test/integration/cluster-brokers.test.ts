// Several brokers on a Redis Cluster share the tickers: each ticker is streamed by exactly
// one live broker, under a fenced lease. A broker killed mid-stream (SIGKILL: no goodbye)
// has its tickers taken over by the others once its leases lapse; the test measures the gap
// and checks that no ticker ever had two brokers publishing at once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBus, BrokerRegistration, TickerUpdates, type TickBus } from '../../src/index.ts';
import { startCluster, type RedisCluster } from '../harness/redis-cluster.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { silentLogger } from '../harness/quiet.ts';
import { waitFor } from '../harness/wait.ts';

const TICKERS = ['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN', 'META', 'GOOG', 'AMD', 'IBM'];
const FAILOVER_MS = 1500;

interface Seen {
  sender: string;
  at: number;
  position: string;
}

describe('several brokers on a Redis Cluster', () => {
  let cluster: RedisCluster;
  const brokers = new Map<string, CliProcess>();
  const buses: TickBus[] = [];

  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await Promise.all([...brokers.values()].map((b) => b.stop('SIGKILL')));
    await Promise.all(buses.map((b) => b.close()));
    await cluster.stop();
  });

  it('splits the tickers, and moves a killed broker’s tickers to the others within a bounded gap, never two at once', async () => {
    for (const name of ['a', 'b', 'c']) {
      const p = new CliProcess(['broker', '--redis-url', cluster.url, '--feed', 'sim', '--rate', '40', '--port', '0', '--name', `broker-${name}`, '--sender', `broker-${name}`, '--failover-ms', String(FAILOVER_MS)]);
      brokers.set(`broker-${name}`, p);
    }
    await Promise.all([...brokers.values()].map((p) => p.waitFor(/tickbus broker: sim feed/)));

    const sub = createBus({ redis: { url: cluster.url }, sender: 'observer', logger: silentLogger });
    const pub = createBus({ redis: { url: cluster.url }, sender: 'registrar', logger: silentLogger });
    buses.push(sub, pub);
    const seen = new Map<string, Seen[]>(TICKERS.map((t) => [t, []]));
    for (const t of TICKERS) {
      await sub.subscribe(TickerUpdates.of({ ticker: t }), (data, ctx) => {
        if (data.type === 'price') seen.get(t)?.push({ sender: ctx.sender ?? '?', at: Date.now(), position: ctx.position ?? '' });
      });
    }
    for (const t of TICKERS.slice(1)) await pub.publish(BrokerRegistration, { action: 'subscribe', ticker: t });
    // The CLI on a cluster: registering knows brokers are there (a classic PUBLISH's count is
    // per node, so it asks the group), and a pattern over sharded ticker channels is refused.
    const registered = await runCli(['register', TICKERS[0] as string, '--redis-url', cluster.url]);
    assert.equal(registered.code, 0, registered.stderr);
    assert.match(registered.stdout, /registered AAPL \((\d receivers?|\d brokers? live in the cluster)\)/);
    const tail = await runCli(['tail', 'TICKER_UPDATES_*', '--redis-url', cluster.url]);
    assert.notEqual(tail.code, 0);
    assert.match(tail.stderr, /sharded pub\/sub[\s\S]*by name/);

    // Settled: every ticker streams from one broker, and all three brokers have some.
    const ownerOf = (t: string, since: number) => new Set((seen.get(t) ?? []).filter((s) => s.at >= since).map((s) => s.sender));
    await waitFor(
      () => {
        const since = Date.now() - 400;
        const owners = TICKERS.map((t) => ownerOf(t, since));
        return owners.every((o) => o.size === 1) && new Set(owners.flatMap((o) => [...o])).size === 3;
      },
      'every ticker streamed by exactly one of three brokers',
      15_000,
    );
    const split = new Map(TICKERS.map((t) => [t, [...ownerOf(t, Date.now() - 400)][0] as string]));
    const victim = split.get('AAPL') as string;
    const moved = TICKERS.filter((t) => split.get(t) === victim);
    const windowStart = Date.now();

    const killedAt = Date.now();
    await brokers.get(victim)?.stop('SIGKILL');
    brokers.delete(victim);

    // Every one of the victim's tickers streams again, from a live broker.
    await waitFor(() => moved.every((t) => (seen.get(t) ?? []).some((s) => s.at > killedAt && s.sender !== victim)), 'the victim’s tickers taken over', 15_000);
    await new Promise((r) => setTimeout(r, 500));

    const gaps = moved.map((t) => {
      const list = seen.get(t) ?? [];
      const lastBefore = list.filter((s) => s.sender === victim).at(-1)?.at ?? killedAt;
      const firstAfter = list.find((s) => s.at > killedAt && s.sender !== victim)?.at ?? Infinity;
      return firstAfter - lastBefore;
    });
    // Never two at once: from the settled split on, each ticker's updates come in at most two
    // runs (the victim's, then its successor's), and a broker never publishes between another's.
    for (const t of TICKERS) {
      const senders = (seen.get(t) ?? []).filter((s) => s.at >= windowStart).map((s) => s.sender);
      const runs = senders.filter((s, i) => i === 0 || s !== senders[i - 1]);
      assert.ok(runs.length <= (moved.includes(t) ? 2 : 1), `${t}: one broker at a time, got runs ${runs.join(' → ')}`);
      if (moved.includes(t)) assert.notEqual(runs.at(-1), victim);
      const positions = (seen.get(t) ?? []).map((s) => s.position);
      assert.equal(new Set(positions).size, positions.length, `${t}: no update twice`);
    }
    const maxGap = Math.max(...gaps);
    console.log(
      `broker failover: ${TICKERS.length} tickers on 3 brokers; ${victim} killed with ${moved.length} (${moved.join(', ')}); taken over after ${gaps.map((g) => `${g} ms`).join(', ')} (lease ${FAILOVER_MS} ms); 0 tickers with two publishers`,
    );
    // The bound: the lease, one renewal round (a third of it), and the feed restart.
    assert.ok(maxGap < FAILOVER_MS + 2500, `gap ${maxGap} ms`);
  });
});
