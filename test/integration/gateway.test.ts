// The WebSocket gateway on a real redis-server, driven by real WebSocket clients (ws, and
// the gateway's own client library): rooms, batching, conflation, resume from history or a
// snapshot, the protocol's errors, JWT, origins, frame size, and slow readers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { SignJWT, importPKCS8 } from 'jose';
import { WebSocket } from 'ws';
import { BrokerRegistration, TickerUpdates, createBus, tickstock, type TickBus } from '../../src/index.ts';
import { Gateway, type GatewayOptions } from '../../src/gateway/gateway.ts';
import { TickbusClient } from '../../src/gateway/public/tickbus-client.js';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

type Msg = { type: string; [k: string]: unknown };

/** A raw protocol client: every server message in order. */
class RawClient {
  readonly ws: WebSocket;
  readonly messages = new Inbox<Msg>();
  closed: { code: number; reason: string } | undefined;
  readonly opened: Promise<void>;

  constructor(url: string, options: { headers?: Record<string, string> } = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data: Buffer) => this.messages.push(JSON.parse(data.toString('utf8')) as Msg));
    this.ws.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  send(op: unknown): void {
    this.ws.send(JSON.stringify(op));
  }

  of(type: string): Msg[] {
    return this.messages.items.filter((m) => m.type === type);
  }

  async next(type: string, predicate: (m: Msg) => boolean = () => true, timeoutMs = 5_000): Promise<Msg> {
    await waitFor(() => this.of(type).some(predicate), `a "${type}" message`, timeoutMs);
    return this.of(type).find(predicate) as Msg;
  }

  updates(): Array<{ symbol?: string; position?: string; replayed?: boolean; data: { type: string; price?: number } }> {
    return this.of('batch').flatMap((b) => b.updates as Array<{ symbol?: string; position?: string; replayed?: boolean; data: { type: string; price?: number } }>);
  }
}

/**
 * A client that subscribes and then never reads again: a bare TCP socket that does the
 * WebSocket handshake itself (a WebSocket library would keep draining the socket).
 */
async function stalledClient(wsUrl: string, symbol: string): Promise<Socket> {
  const { hostname, port } = new URL(wsUrl);
  const socket = connect(Number(port), hostname);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(`GET /ws HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await new Promise<void>((resolve) => {
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('"welcome"')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
  // One masked text frame (clients must mask), then stop reading for good.
  const payload = Buffer.from(JSON.stringify({ op: 'subscribe', symbols: [symbol] }));
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
  socket.pause();
  return socket;
}

const price = (symbol: string, p: number) => ({ type: 'price' as const, timestamp: new Date().toISOString(), symbol, price: p, volume: 1 });

describe('gateway', () => {
  let server: RedisServer;
  let pub: TickBus;
  const gateways: Gateway[] = [];
  const buses: TickBus[] = [];
  const clients: Array<{ ws: WebSocket } | TickbusClient> = [];

  async function gateway(options: Partial<GatewayOptions> = {}): Promise<{ gw: Gateway; url: string; bus: TickBus }> {
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'gateway' });
    buses.push(bus);
    await bus.connect();
    const gw = new Gateway({ bus, logger: silentLogger, port: 0, batchMs: 50, ...options });
    gateways.push(gw);
    const { url } = await gw.listen();
    return { gw, url: url.replace('http', 'ws') + '/ws', bus };
  }

  function raw(url: string, options?: { headers?: Record<string, string> }): RawClient {
    const c = new RawClient(url, options);
    clients.push(c);
    return c;
  }

  before(async () => {
    server = await startRedis();
    pub = createBus({ redis: { url: server.url }, logger: silentLogger });
    await pub.connect();
  });
  after(async () => {
    for (const c of clients) {
      if (c instanceof TickbusClient) c.close();
      else c.ws.terminate();
    }
    await Promise.all(gateways.map((g) => g.close()));
    await Promise.all([...buses, pub].map((b) => b.close()));
    await server.stop();
  });

  it('welcomes, subscribes, and sends updates in batches with their positions; one Redis subscription per symbol', async () => {
    const { url, gw } = await gateway({ batchMs: 100 });
    const registrations = new Inbox<string>();
    await pub.subscribe(BrokerRegistration, (r) => registrations.push(`${r.action} ${r.ticker} ${r.client_id ?? ''}`));
    const a = raw(url);
    const b = raw(url);
    await Promise.all([a.opened, b.opened]);
    const welcome = await a.next('welcome');
    assert.equal(welcome.batchMs, 100);
    a.send({ op: 'subscribe', symbols: ['rooma', 'ROOMA', ' rooma '], id: 1 });
    b.send({ op: 'subscribe', symbols: ['ROOMA'] });
    const sub = await a.next('subscribed');
    assert.deepEqual({ key: sub.key, resume: sub.resume, id: sub.id }, { key: 'ROOMA', resume: 'live', id: 1 });
    await b.next('subscribed');
    assert.equal(a.of('subscribed').length, 1, 'one symbol named three ways is one subscription');
    assert.equal(server.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_ROOMA').split('\n')[1]?.trim(), '1', 'one Redis subscription for two clients');
    const receipts = [];
    for (let n = 0; n < 20; n++) receipts.push(await pub.publish(TickerUpdates.of({ ticker: 'ROOMA' }), price('ROOMA', 100 + n)));
    await waitFor(() => a.updates().length === 20 && b.updates().length === 20, 'all 20 at both');
    assert.deepEqual(a.updates().map((u) => u.data.price), Array.from({ length: 20 }, (_, n) => 100 + n));
    assert.deepEqual(a.updates().map((u) => u.position), receipts.map((r) => r.position));
    assert.ok(a.of('batch').length < 20, `batched: ${a.of('batch').length} frames for 20 updates`);
    assert.ok(registrations.items.includes(`subscribe ROOMA ${gw.clientId}`), "the broker was asked for the ticker, in the gateway's name");
    a.send({ op: 'unsubscribe', symbols: ['ROOMA'] });
    await a.next('unsubscribed');
    assert.equal(server.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_ROOMA').split('\n')[1]?.trim(), '1', 'b still watches');
    b.ws.close();
    await waitFor(() => server.cli('PUBSUB', 'NUMSUB', 'TICKER_UPDATES_ROOMA').split('\n')[1]?.trim() === '0', 'the room released when the last client left');
    await waitFor(() => registrations.items.includes(`unsubscribe ROOMA ${gw.clientId}`), 'the lease released');
    await pub.unsubscribe(BrokerRegistration);
  });

  it('conflates to the latest price per symbol within a flush when asked', async () => {
    const { url } = await gateway({ batchMs: 300, conflate: true });
    const a = raw(url);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['CONF'] });
    await a.next('subscribed');
    await Promise.all(Array.from({ length: 10 }, (_, n) => pub.publish(TickerUpdates.of({ ticker: 'CONF' }), price('CONF', n))));
    await pub.publish(TickerUpdates.of({ ticker: 'CONF' }), { type: 'order', timestamp: new Date().toISOString(), symbol: 'CONF', order_data: { id: 'o1' } });
    await waitFor(() => a.updates().some((u) => u.data.type === 'order'), 'the order update');
    await new Promise((r) => setTimeout(r, 350));
    const prices = a.updates().filter((u) => u.data.type === 'price').map((u) => u.data.price);
    assert.ok(prices.length < 10 && prices.at(-1) === 9, `conflated prices: ${prices.join(',')}`);
    assert.equal(a.updates().filter((u) => u.data.type === 'order').length, 1, 'orders are never conflated');
  });

  it('resumes a client that comes back with its last positions: what it missed from history, then live, no gap, no duplicate', async () => {
    const { url } = await gateway();
    const ref = TickerUpdates.of({ ticker: 'RESUME' });
    const first = new TickbusClient(url, { WebSocket });
    clients.push(first);
    const seen: number[] = [];
    first.on('update', (u: { data: { price: number } }) => seen.push(u.data.price));
    await first.connect();
    const subscribed = new Promise((resolve) => first.on('subscribed', resolve));
    first.subscribe(['RESUME']);
    await subscribed;
    for (let n = 0; n < 50; n++) await pub.publish(ref, price('RESUME', n));
    await waitFor(() => seen.length === 50, 'the first 50');
    const last = first.positions.get('RESUME');
    first.close();
    for (let n = 50; n < 150; n++) await pub.publish(ref, price('RESUME', n));
    const back = raw(url);
    await back.opened;
    back.send({ op: 'subscribe', symbols: ['RESUME'], since: { RESUME: last } });
    const resumed = await back.next('subscribed');
    assert.deepEqual({ resume: resumed.resume, replayed: resumed.replayed }, { resume: 'replayed', replayed: 100 });
    for (let n = 150; n < 170; n++) await pub.publish(ref, price('RESUME', n));
    await waitFor(() => back.updates().length >= 120, 'history and live');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(back.updates().map((u) => u.data.price), Array.from({ length: 120 }, (_, n) => 50 + n), 'every missed one once, in order, then live');
    assert.ok(back.updates().slice(0, 100).every((u) => u.replayed) && !back.updates()[100]?.replayed);
  });

  it('the client library, given two gateways, moves to the other when its own goes away and resumes there without loss', async () => {
    const a = await gateway();
    const b = await gateway();
    const ref = TickerUpdates.of({ ticker: 'HANDOVER' });
    const client = new TickbusClient([a.url, b.url], { WebSocket, reconnect: { baseMs: 20, maxMs: 100 } });
    clients.push(client);
    const seen: number[] = [];
    client.on('update', (u: { data: { price: number } }) => seen.push(u.data.price));
    await client.connect();
    const subscribed = new Promise((resolve) => client.on('subscribed', resolve));
    client.subscribe(['HANDOVER']);
    await subscribed;
    for (let n = 0; n < 30; n++) await pub.publish(ref, price('HANDOVER', n));
    await waitFor(() => seen.length === 30, 'the first 30 through gateway A');
    const resumed = new Promise<{ resume?: string }>((resolve) => client.on('subscribed', resolve));
    await a.gw.close();
    for (let n = 30; n < 60; n++) await pub.publish(ref, price('HANDOVER', n));
    assert.equal((await resumed).resume, 'replayed');
    assert.equal(client.url, b.url, 'moved to gateway B');
    for (let n = 60; n < 70; n++) await pub.publish(ref, price('HANDOVER', n));
    await waitFor(() => seen.length >= 70, 'the rest through gateway B');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, Array.from({ length: 70 }, (_, n) => n), 'every update once, in order');
  });

  it('sends a snapshot of the last value when the gap is older than history, and says so', async () => {
    const { url } = await gateway({ lastValue: (symbol) => Promise.resolve(symbol === 'SNAP' ? price('SNAP', 42) : undefined) });
    const a = raw(url);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['SNAP'], since: { SNAP: '1-0' } });
    const snap = await a.next('snapshot');
    assert.equal((snap.data as { price: number }).price, 42);
    assert.equal((await a.next('subscribed')).resume, 'snapshot');
    // Without a last-value cache, the newest message in history serves.
    await pub.publish(TickerUpdates.of({ ticker: 'SNAP2' }), price('SNAP2', 7));
    a.send({ op: 'subscribe', symbols: ['SNAP2'] });
    const snap2 = await a.next('snapshot', (m) => m.key === 'SNAP2');
    assert.equal((snap2.data as { price: number }).price, 7);
    assert.match(String(snap2.position), /^\d+-\d+$/);
  });

  it('issue 14 fault 1: a forged position published by hand moves no floor; the room, new clients and positions stay real', async () => {
    const { url, bus } = await gateway();
    const errors: string[] = [];
    bus.on('error', (e) => errors.push(e.code));
    const ref = TickerUpdates.of({ ticker: 'FRGD' });
    const a = new TickbusClient(url, { WebSocket });
    clients.push(a);
    const seen: Array<{ price: number; position?: string }> = [];
    a.on('update', (u: { position?: string; data: { price: number } }) => seen.push({ price: u.data.price, position: u.position }));
    await a.connect();
    const subscribed = new Promise((resolve) => a.on('subscribed', resolve));
    a.subscribe(['FRGD']);
    await subscribed;
    for (let n = 0; n < 3; n++) await pub.publish(ref, price('FRGD', 100 + n));
    await waitFor(() => seen.length === 3, 'three real updates');
    const forged = (position: string) => JSON.stringify({ data: { type: 'price', timestamp: '2026-12-01T00:00:00Z', price: 1, volume: 1, symbol: 'FRGD' }, timestamp: '2026-12-01T00:00:00Z', sender: 'evil', position });
    server.cli('PUBLISH', ref.name, forged('99999999999999-0'));
    // Within a plausible clock error, but not in the stream: found out by asking it.
    server.cli('PUBLISH', ref.name, forged(`${Date.now() + 120_000}-0`));
    for (let n = 3; n < 6; n++) await pub.publish(ref, price('FRGD', 100 + n));
    await waitFor(() => seen.filter((u) => u.price !== 1).length === 6, `the real updates after the forged ones (have ${seen.length})`);
    assert.deepEqual(seen.filter((u) => u.price !== 1).map((u) => u.price), [100, 101, 102, 103, 104, 105]);
    assert.ok(seen.filter((u) => u.price === 1).every((u) => u.position === undefined), 'a forged update reaches clients without its position');
    assert.ok(seen.filter((u) => u.price !== 1).every((u) => /^\d+-\d+$/.test(u.position ?? '')), 'real ones keep theirs');
    assert.equal(a.positions.get('FRGD'), seen.at(-1)?.position, "the client's resume point is a real position");
    await waitFor(() => errors.filter((c) => c === 'TB_ERR_UNTRUSTED_POSITION').length === 2, 'both forged positions reported');
    const metrics = await (await fetch(url.replace('ws', 'http').replace(/\/ws$/, '/metrics'))).text();
    assert.match(metrics, /tickbus_untrusted_positions_total\{channel="TICKER_UPDATES_\{ticker\}",reason="ahead_of_clock"\} 1/);
    assert.match(metrics, /tickbus_untrusted_positions_total\{channel="TICKER_UPDATES_\{ticker\}",reason="not_in_history"\} 1/);
    // A client arriving now gets live updates too, and resuming from the room's last position replays nothing twice.
    const b = raw(url);
    await b.opened;
    b.send({ op: 'subscribe', symbols: ['FRGD'], since: { FRGD: a.positions.get('FRGD') } });
    assert.deepEqual(Object.fromEntries(Object.entries(await b.next('subscribed')).filter(([k]) => ['resume', 'replayed', 'gap'].includes(k))), { resume: 'replayed', replayed: 0 });
    for (let n = 6; n < 9; n++) await pub.publish(ref, price('FRGD', 100 + n));
    await waitFor(() => b.updates().length === 3, `the new client's live updates (have ${b.updates().length})`);
    assert.deepEqual(b.updates().map((u) => u.data.price), [106, 107, 108]);
  });

  it('issue 14 fault 6: a position the stream no longer holds, in a stream that lost nothing since, replays what it holds and says gap', async () => {
    const { url } = await gateway({ lastValue: () => Promise.resolve(price('REBORN', 999)) });
    const ref = TickerUpdates.of({ ticker: 'REBORN' });
    let last: string | undefined;
    for (let n = 0; n < 5; n++) last = (await pub.publish(ref, price('REBORN', n))).position;
    // What a Redis restarted without persistence leaves: the stream begins again, and every
    // entry it holds came after the client's position.
    server.cli('DEL', `tickbus:{${ref.name}}:stream`);
    await new Promise((r) => setTimeout(r, 5)); // a later millisecond, as after a restart
    for (let n = 5; n < 25; n++) await pub.publish(ref, price('REBORN', n));
    const a = raw(url);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['REBORN'], since: { REBORN: last }, id: 6 });
    const sub = await a.next('subscribed');
    assert.deepEqual({ resume: sub.resume, replayed: sub.replayed, gap: sub.gap, id: sub.id }, { resume: 'replayed', replayed: 20, gap: true, id: 6 });
    await waitFor(() => a.updates().length === 20, 'the 20 the new stream holds');
    assert.deepEqual(a.updates().map((u) => u.data.price), Array.from({ length: 20 }, (_, i) => 5 + i));
    assert.equal(a.of('snapshot').length, 0);
  });

  it('tells the clients of a room when the gateway itself lost updates that history no longer holds (a notice with the key)', async () => {
    const { url } = await gateway();
    const ref = TickerUpdates.of({ ticker: 'LOSTROOM' });
    const a = raw(url);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['LOSTROOM'] });
    await a.next('subscribed');
    await pub.publish(ref, price('LOSTROOM', 1));
    await waitFor(() => a.updates().length === 1, 'the first update');
    // The gateway's position goes with the stream (a Redis restarted without persistence),
    // then its Redis link drops: its catch-up finds a gap, and the client hears of it.
    server.cli('DEL', `tickbus:{${ref.name}}:stream`);
    server.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const notice = await a.next('notice', (m) => m.key === 'LOSTROOM');
    assert.equal(notice.code, 'TB_ERR_STREAM_TRIMMED');
    assert.match(String(notice.message), /Resubscribe with "since"/);
    // And the room goes on live.
    await pub.publish(ref, price('LOSTROOM', 2));
    await waitFor(() => a.updates().length === 2, 'live again after the notice');
  });

  it('issue 14 fault 7: a "since" that is no stream id is refused with a typed error before subscribing, with nothing of Redis in it', async () => {
    const { url, gw } = await gateway();
    const a = raw(url);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['BADSINCE'], since: { BADSINCE: '99999999999999999999999-99999999999999999999' }, id: 7 });
    const error = await a.next('error', (m) => m.id === 7);
    assert.deepEqual({ code: error.code, key: error.key }, { code: 'TB_ERR_INVALID_POSITION', key: 'BADSINCE' });
    assert.doesNotMatch(String(error.message), /ERR|127\.0\.0\.1|stream command/);
    a.send({ op: 'ping', id: 'after' });
    await a.next('pong');
    assert.equal(a.of('subscribed').length, 0, 'not subscribed');
    assert.equal(gw.stats().rooms, 0, 'no room was opened');
    a.send({ op: 'subscribe', symbols: ['BADSINCE'], since: 'yesterday', id: 8 });
    assert.equal((await a.next('error', (m) => m.id === 8)).code, 'TB_ERR_BAD_REQUEST');
    a.send({ op: 'subscribe', symbols: ['BADSINCE'], id: 9 });
    assert.equal((await a.next('subscribed', (m) => m.id === 9)).key, 'BADSINCE');
  });

  it('answers bad requests with stable error codes and keeps serving', async () => {
    const { url } = await gateway({ maxSubscriptions: 3, channels: ['tickstock.events.patterns'] });
    const a = raw(url);
    await a.opened;
    a.ws.send('not json');
    a.send({ op: 'dance' });
    a.send({ op: 'subscribe', symbols: ['AAPL*'] });
    a.send({ op: 'subscribe', symbols: 'AAPL' });
    a.send({ op: 'subscribe', channels: ['BROKER_REGISTRATION'] });
    a.send({ op: 'subscribe', symbols: ['A1', 'A2', 'A3', 'A4'] });
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await waitFor(() => a.of('error').length >= 7, 'seven errors');
    // Replies to different requests may come in any order (a request's reply carries its id).
    assert.deepEqual(
      a.of('error').map((e) => e.code).sort(),
      ['TB_ERR_BAD_REQUEST', 'TB_ERR_BAD_REQUEST', 'TB_ERR_BAD_REQUEST', 'TB_ERR_BAD_REQUEST', 'TB_ERR_INVALID_CHANNEL_PARAM', 'TB_ERR_TOO_MANY_SUBSCRIPTIONS', 'TB_ERR_UNKNOWN_CHANNEL'],
    );
    a.send({ op: 'subscribe', channels: ['tickstock.events.patterns'], id: 'p' });
    assert.equal((await a.next('subscribed', (m) => m.id === 'p')).key, 'tickstock.events.patterns');
    // An exposed catalog channel flows like a symbol (bare TickStock JSON, no position).
    await pub.publish(tickstock.PatternEvents, { event_type: 'pattern_detected', pattern: 'doji', symbol: 'AAPL', timestamp: 1_700_000_000, confidence: 0.8, timeframe: 'daily' });
    await waitFor(() => a.of('batch').length > 0, 'the pattern event');
    const [event] = a.of('batch').flatMap((b) => b.updates as Array<{ channel: string; data: { pattern: string } }>);
    assert.deepEqual({ channel: event?.channel, pattern: event?.data.pattern }, { channel: 'tickstock.events.patterns', pattern: 'doji' });
    a.send({ op: 'ping', t: 5 });
    assert.equal((await a.next('pong')).t, 5);
  });

  it('limits the request rate, and closes a client that keeps at it (4029)', async () => {
    const { url } = await gateway({ ratePerSecond: 5 });
    const a = raw(url);
    await a.opened;
    // In one write, as a flooding client's frames arrive: the gateway reads them in one go and
    // closes before the replies to the first refusals go out, yet the client learns why.
    const socket = (a.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.cork();
    for (let i = 0; i < 60; i++) a.send({ op: 'ping' });
    socket.uncork();
    await waitFor(() => a.closed !== undefined, 'the close');
    assert.equal(a.closed?.code, 4029);
    assert.ok(a.of('error').some((e) => e.code === 'TB_ERR_RATE_LIMITED'));
  });

  it('closes a connection that sends a frame over the size limit (1009)', async () => {
    const { url } = await gateway({ maxFrameBytes: 1024 });
    const a = raw(url);
    await a.opened;
    a.ws.send(JSON.stringify({ op: 'subscribe', symbols: ['X'.repeat(5000)] }));
    await waitFor(() => a.closed !== undefined, 'the close');
    assert.equal(a.closed?.code, 1009);
  });

  it('refuses origins it does not allow (403)', async () => {
    const { url } = await gateway({ allowedOrigins: ['https://desk.example'] });
    await assert.rejects(raw(url, { headers: { origin: 'https://evil.example' } }).opened, /HTTP 403/);
    const ok = raw(url, { headers: { origin: 'https://desk.example' } });
    await ok.opened;
    await ok.next('welcome');
  });

  it('with JWT (HS256 or RS256): no token or a bad one is refused (401); a token names the symbols its user may see', async () => {
    const secret = 'a-test-secret-that-is-long-enough-1234';
    const { url } = await gateway({ auth: { secret } });
    await assert.rejects(raw(url).opened, /HTTP 401/);
    await assert.rejects(raw(`${url}?token=garbage`).opened, /HTTP 401/);
    const expired = await new SignJWT({ symbols: ['AAPL'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(new TextEncoder().encode(secret));
    await assert.rejects(raw(`${url}?token=${expired}`).opened, /HTTP 401/);
    const token = await new SignJWT({ symbols: ['JWTA'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const a = raw(`${url}?token=${token}`);
    await a.opened;
    a.send({ op: 'subscribe', symbols: ['JWTA', 'JWTB'] });
    const error = await a.next('error');
    assert.deepEqual({ code: error.code, key: error.key }, { code: 'TB_ERR_FORBIDDEN', key: 'JWTB' });
    await a.next('subscribed', (m) => m.key === 'JWTA');
    await pub.publish(TickerUpdates.of({ ticker: 'JWTB' }), price('JWTB', 1));
    await pub.publish(TickerUpdates.of({ ticker: 'JWTA' }), price('JWTA', 2));
    await waitFor(() => a.updates().length === 1, 'the allowed update');
    assert.equal(a.updates()[0]?.symbol, 'JWTA', 'no data for the forbidden symbol');

    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rs = await gateway({ auth: { publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() } });
    const rsToken = await new SignJWT({ symbols: ['*'] })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('1h')
      .sign(await importPKCS8(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'RS256'));
    const b = raw(rs.url, { headers: { authorization: `Bearer ${rsToken}` } });
    await b.opened;
    b.send({ op: 'subscribe', symbols: ['ANY'] });
    await b.next('subscribed');
    await assert.rejects(raw(`${rs.url}?token=${token}`).opened, /HTTP 401/, 'an HS256 token is not accepted where RS256 is configured');
  });

  for (const batchMs of [0, 50]) {
    it(`conflates, then drops, then closes (4008) a client that does not read, while the others are served (batchMs ${batchMs})`, async () => {
      const { url, gw } = await gateway({ batchMs, highWaterBytes: 16 * 1024, slowClientCloseMs: 300 });
      const fast = raw(url);
      await fast.opened;
      fast.send({ op: 'subscribe', symbols: ['FLOOD'] });
      await fast.next('subscribed');
      // The slow client stops reading: its socket buffer fills, then the gateway's.
      const slow = await stalledClient(url, 'FLOOD');
      await waitFor(() => gw.health().connections === 2, 'both connected');
      await new Promise((r) => setTimeout(r, 100));
      // Enough to fill the kernel's socket buffers on both ends, then the gateway's 4 x 16 KiB.
      const big = 'x'.repeat(4000);
      const N = 4_000;
      for (let n = 0; n < N; n++) await pub.publish(TickerUpdates.of({ ticker: 'FLOOD' }), { type: 'order', timestamp: new Date().toISOString(), symbol: 'FLOOD', order_data: { n, pad: big } });
      await waitFor(() => fast.updates().length === N, `the fast client gets all ${N} (has ${fast.updates().length})`, 30_000);
      await waitFor(() => gw.health().connections === 1, 'the slow client to be cut off', 10_000);
      const metrics = await gw.registry.metrics();
      assert.match(metrics, /tickbus_gateway_closed_total\{code="4008"\} 1/);
      assert.match(metrics, /tickbus_gateway_updates_dropped_total\{reason="dropped"\} [1-9]/);
      slow.destroy();
    });
  }
});
