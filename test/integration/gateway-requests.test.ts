// Every request with an id gets exactly one reply (fault 8 of issue 14): `pong`, `ok`, or an
// `error` without `key` (the request refused as a whole); per-key messages come before it.
// Against a real `tickbus gateway` process on a real redis-server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { TickerUpdates, createBus, type TickBus } from '../../src/index.ts';
import { CliProcess } from '../harness/cli.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

type Msg = { type: string; id?: unknown; key?: string; code?: string; [k: string]: unknown };

/** The reply that ends a request: at most one per id. */
const isReply = (m: Msg) => m.id !== undefined && (m.type === 'ok' || m.type === 'pong' || (m.type === 'error' && m.key === undefined));

class Client {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  closed: number | undefined;
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data: Buffer) => this.messages.push(JSON.parse(data.toString('utf8')) as Msg));
    this.ws.on('close', (code) => (this.closed = code));
    this.opened = new Promise((resolve, reject) => this.ws.once('open', () => resolve()).once('error', reject));
  }

  send(op: unknown): void {
    this.ws.send(typeof op === 'string' ? op : JSON.stringify(op));
  }

  replies(id: unknown): Msg[] {
    return this.messages.filter((m) => isReply(m) && m.id === id);
  }

  /** Waits for the reply to `id`, then a little more: a second one would show. */
  async reply(id: unknown, settleMs = 150): Promise<Msg> {
    await waitFor(() => this.replies(id).length > 0, `the reply to request ${String(id)}`, 3_000);
    await sleep(settleMs);
    const replies = this.replies(id);
    assert.equal(replies.length, 1, `exactly one reply to request ${String(id)}: ${JSON.stringify(replies)}`);
    return replies[0] as Msg;
  }
}

describe('gateway requests: exactly one reply per id', () => {
  let server: RedisServer;
  let gateway: CliProcess;
  let url: string;
  let pub: TickBus;
  const clients: Client[] = [];

  const client = async (): Promise<Client> => {
    const c = new Client(url);
    clients.push(c);
    await c.opened;
    await waitFor(() => c.messages.some((m) => m.type === 'welcome'), 'the welcome');
    return c;
  };

  before(async () => {
    server = await startRedis();
    gateway = new CliProcess(['gateway', '--redis-url', server.url, '--port', '0', '--batch-ms', '20', '--client-rate', '100000']);
    url = (await gateway.waitFor(/websocket (ws\S+)/))[1] as string;
    pub = createBus({ redis: { url: server.url }, logger: silentLogger });
    await pub.connect();
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await pub.close();
    await gateway.stop();
    await server.stop();
  });

  it('answers the requests that used to get nothing', async () => {
    const c = await client();
    c.send({ op: 'subscribe', symbols: ['AAPL'], id: 1 });
    assert.deepEqual((await c.reply(1)).keys, ['AAPL']);
    // Subscribing again to a symbol already held.
    c.send({ op: 'subscribe', symbols: ['AAPL'], id: 2 });
    assert.deepEqual(await c.reply(2), { type: 'ok', op: 'subscribe', keys: ['AAPL'], failed: [], id: 2 });
    // Malformed: each refused with a typed error carrying its id.
    c.send({ op: 'unsubscribe', symbols: 'AAPL', id: 3 });
    c.send({ op: 'subscribe', id: 4 });
    c.send({ op: 'subscribe', symbols: [], id: 5 });
    c.send({ op: 'subscribe', jobs: 'yes', id: 6 });
    for (const id of [3, 4, 5, 6]) {
      const reply = await c.reply(id, 0);
      assert.deepEqual({ type: reply.type, code: reply.code }, { type: 'error', code: 'TB_ERR_BAD_REQUEST' }, `request ${id}: ${JSON.stringify(reply)}`);
    }
    await sleep(150);
    for (const id of [3, 4, 5, 6]) assert.equal(c.replies(id).length, 1, `one reply to ${id}`);
    // A partly bad subscribe: its per-key error first, then the one reply, with both lists.
    c.send({ op: 'subscribe', symbols: ['MSFT', 'BAD*'], id: 7 });
    const partial = await c.reply(7);
    assert.deepEqual({ keys: partial.keys, failed: partial.failed }, { keys: ['MSFT'], failed: ['BAD*'] });
    assert.ok(c.messages.some((m) => m.type === 'error' && m.key === 'BAD*' && m.id === 7), 'the per-key error');
    c.send({ op: 'unsubscribe', symbols: ['MSFT'], id: 8 });
    assert.deepEqual((await c.reply(8)).keys, ['MSFT']);
    c.send({ op: 'ping', t: 3, id: 9 });
    assert.equal((await c.reply(9)).type, 'pong');
  });

  it('property: random requests with an id get exactly one reply each, and the connection keeps serving', async () => {
    const c = await client();
    let next = 1_000;
    const symbol = fc.constantFrom('AAPL', 'MSFT', 'nvda', ' ibm ', 'BAD*', '', 'A'.repeat(40), 'PROP1', 'PROP2');
    const names = fc.oneof(fc.array(symbol, { maxLength: 4 }), fc.string(), fc.integer(), fc.constant(null), fc.array(fc.anything(), { maxLength: 3 }));
    const field = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    const request = fc.record(
      {
        op: fc.oneof(fc.constantFrom('subscribe', 'unsubscribe', 'ping'), fc.string(), fc.anything()),
        symbols: field(names),
        channels: field(fc.oneof(fc.array(fc.constantFrom('tickstock.events.patterns', 'BROKER_REGISTRATION', 'nope'), { maxLength: 2 }), fc.anything())),
        since: field(fc.oneof(fc.dictionary(symbol, fc.oneof(fc.constant('1-0'), fc.string(), fc.integer())), fc.anything())),
        jobs: field(fc.oneof(fc.boolean(), fc.anything())),
        user: field(fc.oneof(fc.constantFrom('user_1', 'bad user!'), fc.anything())),
        t: field(fc.oneof(fc.integer(), fc.anything())),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 12 }), async (requests) => {
        const ids = requests.map((r) => {
          const id = next++;
          // Undefined fields are dropped by JSON, as they would be from a browser.
          c.send({ ...r, id });
          return id;
        });
        await waitFor(() => ids.every((id) => c.replies(id).length > 0), `a reply to each of ${ids.length} requests`, 4_000);
        await sleep(50);
        for (const id of ids) assert.equal(c.replies(id).length, 1, `exactly one reply to ${id}: ${JSON.stringify(c.replies(id))}`);
        assert.equal(c.closed, undefined, 'the connection is still open');
      }),
      { numRuns: 40, endOnFailure: true },
    );
    // It still serves: a subscription made now gets live updates.
    c.send({ op: 'subscribe', symbols: ['LIVE'], id: 'live' });
    await c.reply('live', 0);
    await pub.publish(TickerUpdates.of({ ticker: 'LIVE' }), { type: 'price', timestamp: new Date().toISOString(), symbol: 'LIVE', price: 1, volume: 1 });
    await waitFor(() => c.messages.some((m) => m.type === 'batch' && JSON.stringify(m).includes('"LIVE"')), 'a live update after the fuzzing');
  });
});
