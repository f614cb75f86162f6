// Several WebSocket gateways on one Redis Cluster (3 masters, 3 replicas): a client watching
// three tickers (each on its own shard) through gateway A loses A mid-stream, reconnects to
// gateway B with its last position per symbol, and gets what it missed from each ticker's
// history, then live updates: every published update exactly once, in order, across both.
//
// The client is a raw `ws` client: the client library (tickbus-client.js) reconnects only to
// the one URL it was made with, so moving to another gateway is the application's job, done
// here as an application would: resubscribe on B with `since` = the last positions seen.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { TickerUpdates, createBus, type TickBus } from '../../src/index.ts';
import { Gateway } from '../../src/gateway/gateway.ts';
import { compareStreamIds } from '../../src/core/stream-id.ts';
import { startCluster, type RedisCluster } from '../harness/redis-cluster.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

type Msg = { type: string; [k: string]: unknown };
type Update = { symbol?: string; position?: string; replayed?: true; data: { type: string; volume?: number } };
interface Received {
  seq: number;
  position: string;
  replayed: boolean;
  via: string;
}

/**
 * A protocol client that remembers the last position per symbol and, when its gateway goes
 * away, moves to the next gateway and resubscribes from those positions.
 */
class HandoverClient {
  readonly received = new Map<string, Received[]>();
  readonly positions = new Map<string, string>();
  /** Every server message, with the gateway it came from. */
  readonly messages: Array<{ via: string; msg: Msg }> = [];
  readonly closes: Array<{ via: string; code: number }> = [];
  /** What went wrong inside event handlers, to assert on. */
  readonly problems: string[] = [];
  closedAt: number | undefined;
  resumedAt: number | undefined;
  #ws: WebSocket | undefined;
  #via = '';
  #stopped = false;

  readonly symbols: readonly string[];
  /** The gateways in order of preference: [name, ws URL]. */
  readonly gateways: ReadonlyArray<readonly [string, string]>;

  constructor(symbols: readonly string[], gateways: ReadonlyArray<readonly [string, string]>) {
    this.symbols = symbols;
    this.gateways = gateways;
  }

  of(type: string, via?: string): Msg[] {
    return this.messages.filter((m) => m.msg.type === type && (via === undefined || m.via === via)).map((m) => m.msg);
  }

  /** Connects to gateway `index` and subscribes, resuming from the positions seen so far. */
  async connect(index: number): Promise<void> {
    const [via, url] = this.gateways[index] ?? assert.fail(`no gateway #${index}`);
    this.#via = via;
    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.on('message', (raw: Buffer) => this.#onMessage(via, JSON.parse(raw.toString('utf8')) as Msg));
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.closes.push({ via, code });
      if (this.#stopped || this.#ws !== ws) return;
      // The gateway went away: straight to the next one, from where we were.
      this.closedAt = performance.now();
      void this.connect(index + 1).catch((error: unknown) => this.problems.push(`reconnecting: ${String(error)}`));
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await waitFor(() => this.of('welcome', via).length > 0, `the welcome of gateway ${via}`);
    const since = Object.fromEntries(this.symbols.flatMap((s) => (this.positions.has(s) ? [[s, this.positions.get(s) as string]] : [])));
    ws.send(JSON.stringify({ op: 'subscribe', symbols: this.symbols, since, id: via }));
    await waitFor(() => this.of('subscribed', via).length === this.symbols.length, `${this.symbols.length} "subscribed" from gateway ${via}`);
    if (this.closedAt !== undefined) this.resumedAt = performance.now();
  }

  #onMessage(via: string, msg: Msg): void {
    this.messages.push({ via, msg });
    if (msg.type !== 'batch') return;
    for (const u of msg.updates as Update[]) {
      const { symbol, position } = u;
      if (symbol === undefined || position === undefined) {
        this.problems.push(`an update without a symbol or position from ${via}: ${JSON.stringify(u)}`);
        continue;
      }
      let list = this.received.get(symbol);
      if (!list) this.received.set(symbol, (list = []));
      list.push({ seq: u.data.volume ?? -1, position, replayed: u.replayed === true, via });
      this.positions.set(symbol, position);
    }
  }

  get via(): string {
    return this.#via;
  }

  close(): void {
    this.#stopped = true;
    this.#ws?.terminate();
  }
}

describe('several gateways on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let publisher: TickBus | undefined;
  const buses: TickBus[] = [];
  const gateways: Gateway[] = [];
  const closed = new Set<Gateway>();
  const clients: HandoverClient[] = [];

  async function gateway(): Promise<{ gw: Gateway; bus: TickBus; url: string }> {
    const bus = createBus({ redis: { url: cluster.url }, logger: silentLogger, sender: 'gateway' });
    buses.push(bus);
    await bus.connect();
    const gw = new Gateway({ bus, logger: silentLogger, port: 0, batchMs: 50 });
    gateways.push(gw);
    const { url } = await gw.listen();
    return { gw, bus, url: url.replace('http', 'ws') + '/ws' };
  }

  before(async () => {
    cluster = await startCluster();
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.filter((g) => !closed.has(g)).map((g) => g.close()));
    await Promise.all([...buses, ...(publisher ? [publisher] : [])].map((b) => b.close().catch(() => undefined)));
    await cluster?.stop();
  });

  it('a client that reconnects to another gateway resumes without loss', { timeout: 40_000 }, async () => {
    // Three tickers on three different shards.
    const symbols: string[] = [];
    const shards = new Set<number>();
    for (const candidate of ['AAPL', 'MSFT', 'TSLA', 'NVDA', 'GOOG', 'AMZN', 'META', 'IBM', 'ORCL', 'INTC', 'AMD', 'NFLX']) {
      const master = await cluster.masterOf(`TICKER_UPDATES_${candidate}`);
      if (shards.has(master.port)) continue;
      shards.add(master.port);
      symbols.push(candidate);
      if (symbols.length === 3) break;
    }
    assert.equal(symbols.length, 3, 'three tickers on three shards');

    const a = await gateway();
    const b = await gateway();
    publisher = createBus({ redis: { url: cluster.url }, logger: silentLogger, sender: 'feed' });
    await publisher.connect();
    const pub = publisher;

    const client = new HandoverClient(symbols, [
      ['A', a.url],
      ['B', b.url],
    ]);
    clients.push(client);
    await client.connect(0);
    assert.deepEqual(client.of('subscribed', 'A').map((m) => m.resume), ['live', 'live', 'live'], 'fresh tickers: nothing before live');

    // The feed: every 5 ms one price per ticker, its sequence number in `volume`.
    const sent = new Map<string, string[]>(symbols.map((s) => [s, []]));
    let publishing = true;
    const feed = (async () => {
      for (let seq = 1; publishing; seq++) {
        const receipts = await Promise.all(symbols.map((symbol) => pub.publish(TickerUpdates.of({ ticker: symbol }), { type: 'price', timestamp: new Date().toISOString(), symbol, price: 100 + seq / 100, volume: seq })));
        receipts.forEach((r, i) => {
          assert.equal(r.status, 'sent');
          assert.ok(r.position, 'a ticker update has a position');
          sent.get(symbols[i] as string)?.push(r.position);
        });
        await sleep(5);
      }
    })();

    try {
      const count = (via: string) => Math.min(...symbols.map((s) => (client.received.get(s) ?? []).filter((r) => r.via === via).length));
      await waitFor(() => count('A') >= 100, '100 updates of each ticker through gateway A', 10_000);

      // Gateway A goes away mid-stream (its process stops: sockets closed, bus gone).
      closed.add(a.gw);
      await a.gw.close();
      await a.bus.close();
      await waitFor(() => client.resumedAt !== undefined, 'the client to resume on gateway B', 10_000);
      assert.equal(client.via, 'B');
      await waitFor(() => count('B') >= 100, '100 updates of each ticker through gateway B', 10_000);
    } finally {
      publishing = false;
      await feed;
    }

    // The tail: everything published reaches the client, and nothing more comes.
    await waitFor(() => symbols.every((s) => client.received.get(s)?.at(-1)?.seq === sent.get(s)?.length), 'the last update of each ticker', 10_000);
    await sleep(200);

    let sentTotal = 0;
    let receivedTotal = 0;
    let lost = 0;
    let duplicates = 0;
    for (const s of symbols) {
      const n = sent.get(s)?.length ?? 0;
      const seqs = (client.received.get(s) ?? []).map((r) => r.seq);
      const distinct = new Set(seqs);
      sentTotal += n;
      receivedTotal += seqs.length;
      duplicates += seqs.length - distinct.size;
      for (let seq = 1; seq <= n; seq++) if (!distinct.has(seq)) lost++;
    }
    const subscribedB = client.of('subscribed', 'B');
    const replayed = subscribedB.reduce((sum, m) => sum + Number(m.replayed ?? 0), 0);
    const reconnectMs = Math.round((client.resumedAt ?? NaN) - (client.closedAt ?? NaN));
    const viaA = symbols.reduce((sum, s) => sum + (client.received.get(s) ?? []).filter((r) => r.via === 'A').length, 0);
    console.log(
      `gateway handover: ${symbols.length} symbols on ${shards.size} shards, ${sentTotal} sent, ${receivedTotal} received (${viaA} via A, ${receivedTotal - viaA} via B), ${lost} lost, ${duplicates} duplicates, ${replayed} replayed from history, reconnect took ${reconnectMs} ms`,
    );

    assert.deepEqual(client.closes[0], { via: 'A', code: 1001 }, 'gateway A said it was going away');
    for (const s of symbols) {
      const got = client.received.get(s) ?? [];
      const positions = sent.get(s) ?? [];
      // Every sequence number once, in order, with the position the publisher was given.
      const twice = got.filter((r, i) => got.findIndex((o) => o.seq === r.seq) !== i).map((r) => `${r.seq} (${got.filter((o) => o.seq === r.seq).map((o) => `${o.via}${o.replayed ? ' replayed' : ' live'}`).join(', then ')})`);
      assert.deepEqual(got.map((r) => r.seq), Array.from({ length: positions.length }, (_, i) => i + 1), `${s}: every update once, in order; received twice: ${twice.join('; ') || 'none'}`);
      assert.deepEqual(got.map((r) => r.position), positions, `${s}: the positions of the published updates`);
      for (let i = 1; i < got.length; i++) assert.ok(compareStreamIds((got[i] as Received).position, (got[i - 1] as Received).position) > 0, `${s}: positions increase`);
      // A, then B: replayed ones first on B, then live.
      const firstB = got.findIndex((r) => r.via === 'B');
      assert.ok(firstB > 0 && got.slice(firstB).every((r) => r.via === 'B'), `${s}: A's updates, then B's`);
      const fromB = got.slice(firstB);
      const sub = subscribedB.find((m) => m.key === s) ?? assert.fail(`no "subscribed" for ${s} from B`);
      assert.equal(sub.resume, 'replayed', `${s}: B resumed from history`);
      const nReplayed = Number(sub.replayed);
      assert.equal(fromB.filter((r) => r.replayed).length, nReplayed, `${s}: as many replayed as B said`);
      assert.ok(fromB.slice(0, nReplayed).every((r) => r.replayed) && fromB.slice(nReplayed).every((r) => !r.replayed), `${s}: the replayed ones come first`);
      assert.ok(got.filter((r) => r.via === 'A').every((r) => !r.replayed), `${s}: nothing replayed on A`);
    }
    assert.deepEqual(client.problems, []);
    assert.equal(client.of('snapshot').length, 0, 'no snapshot: history covered the gap');
    assert.equal(client.of('error').length, 0, `no errors: ${JSON.stringify(client.of('error'))}`);
    assert.ok(reconnectMs >= 0 && reconnectMs < 5_000, `reconnect took ${reconnectMs} ms`);
  });
});
