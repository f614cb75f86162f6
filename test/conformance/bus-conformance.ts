// The bus conformance suite: the behaviour every transport must show, run once against
// the in-memory transport and once against a real redis-server.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BrokerRegistration,
  BusError,
  ChannelParamError,
  ClosedError,
  ErrorCode,
  TickerUpdates,
  UnknownChannelError,
  ValidationError,
  tickstock,
  tradingEvents,
  type TickBus,
  type BusOptions,
} from '../../src/index.ts';
import { Inbox, sleep, waitFor } from '../harness/wait.ts';

export interface ConformanceSetup {
  /** A new bus on the transport under test (each test closes what it makes). */
  makeBus(options?: BusOptions): TickBus;
  /** Puts a raw payload on a channel, bypassing tickbus entirely (SPUBLISH for a sharded channel on a cluster). */
  rawPublish(channel: string, payload: string | Buffer): Promise<void>;
  teardown(): Promise<void>;
  /**
   * A Redis Cluster: ticker channels are sharded there, and a pattern over them is refused
   * (SSUBSCRIBE takes names only); the pattern cases run on a classic family instead.
   */
  cluster?: boolean;
}

const priceEvent = (symbol: string, p = '150.25') => ({ event_type: 'price.updated' as const, symbol, price: p, timestamp: '2025-04-24T09:45:00.000Z' });

const price = (symbol: string, p = 150.25) => ({ type: 'price' as const, timestamp: '2025-04-24T09:45:00.000Z', price: p, volume: 1000, symbol });

export function runConformance(name: string, setup: () => Promise<ConformanceSetup>): void {
  describe(`bus conformance: ${name}`, () => {
    let env: ConformanceSetup;
    const open: TickBus[] = [];
    const bus = (options?: BusOptions): TickBus => {
      const b = options ? env.makeBus(options) : env.makeBus();
      open.push(b);
      return b;
    };
    before(async () => {
      env = await setup();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    });
    after(async () => {
      await env.teardown();
    });

    it('delivers a typed, validated message with its envelope fields', async () => {
      const pub = bus({ sender: 'broker_service' });
      const sub = bus();
      const inbox = new Inbox<{ data: unknown; channel: string; sender?: string; ticker: string; timestamp?: string }>();
      await sub.subscribe(TickerUpdates.of({ ticker: 'AAPL' }), (data, ctx) => {
        // The handler's data is the discriminated union: narrowing on `type` needs no cast.
        if (data.type === 'price') inbox.push({ data: data.price, channel: ctx.channel, sender: ctx.sender, ticker: ctx.params.ticker, timestamp: ctx.timestamp });
      });
      const { receivers } = await pub.publish(TickerUpdates.of({ ticker: 'AAPL' }), price('AAPL'));
      assert.equal(receivers, 1);
      const [got] = await inbox.waitFor(1);
      assert.deepEqual({ ...got, timestamp: undefined }, { data: 150.25, channel: 'TICKER_UPDATES_AAPL', sender: 'broker_service', ticker: 'AAPL', timestamp: undefined });
      assert.ok(got && !Number.isNaN(Date.parse(got.timestamp ?? '')), 'envelope timestamp is ISO-8601');
    });

    it('resolves publish with the number of receivers (0 when nobody listens)', async () => {
      const pub = bus();
      assert.equal((await pub.publish(TickerUpdates.of({ ticker: 'NOBODY' }), price('NOBODY'))).receivers, 0);
      const a = bus();
      const b = bus();
      await a.subscribe(TickerUpdates.of({ ticker: 'TWO' }), () => {});
      await b.subscribe(env.cluster ? TickerUpdates.of({ ticker: 'TWO' }) : TickerUpdates, () => {});
      assert.equal((await pub.publish(TickerUpdates.of({ ticker: 'TWO' }), price('TWO'))).receivers, 2);
    });

    it('subscribes every channel of a template by pattern, with parameters parsed back', async () => {
      const pub = bus();
      const sub = bus();
      if (env.cluster) {
        await assert.rejects(sub.subscribe(TickerUpdates, () => {}), (e: BusError) => e.code === ErrorCode.Config && /sharded/.test(e.message));
        const events = new Inbox<[string, string | undefined]>();
        await sub.subscribe(tradingEvents.PriceUpdated, (_data, ctx) => events.push([ctx.params.symbol, ctx.pattern]));
        for (const t of ['AAPL', 'MSFT', 'BRK.B']) await pub.publish(tradingEvents.PriceUpdated.of({ symbol: t }), priceEvent(t));
        const seen = await events.waitFor(3);
        assert.deepEqual(seen.map((g) => g[0]).sort(), ['AAPL', 'BRK.B', 'MSFT']);
        assert.ok(seen.every((g) => g[1] === 'price.updated.*'));
        return;
      }
      const inbox = new Inbox<[string, string | undefined]>();
      await sub.subscribe(TickerUpdates, (_data, ctx) => inbox.push([ctx.params.ticker, ctx.pattern]));
      for (const t of ['AAPL', 'MSFT', 'BRK.B']) await pub.publish(TickerUpdates.of({ ticker: t }), price(t));
      const got = await inbox.waitFor(3);
      assert.deepEqual(got.map((g) => g[0]).sort(), ['AAPL', 'BRK.B', 'MSFT']);
      assert.ok(got.every((g) => g[1] === 'TICKER_UPDATES_*'));
    });

    it('accepts channel names and globs as strings, validating against the catalogs', async () => {
      const pub = bus();
      const sub = bus();
      const inbox = new Inbox<unknown>();
      if (env.cluster) {
        await assert.rejects(sub.subscribe('TICKER_UPDATES_MS?T', () => {}), (e: BusError) => e.code === ErrorCode.Config);
        await assert.rejects(sub.subscribe('*', () => {}), (e: BusError) => e.code === ErrorCode.Config);
        await sub.subscribe('price.updated.MS?T', (data) => inbox.push(data));
        await sub.subscribe('TICKER_UPDATES_MSFT', (data) => inbox.push(data));
        await pub.publish('price.updated.MSFT', priceEvent('MSFT', '300.5'));
        await pub.publish('TICKER_UPDATES_MSFT', price('MSFT', 300.5));
        await pub.publish(tradingEvents.PriceUpdated.of({ symbol: 'MSXX' }), priceEvent('MSXX'));
        const got = await inbox.waitFor(2);
        assert.deepEqual(got.map((g) => String((g as { price: unknown }).price)).sort(), ['300.5', '300.5']);
        await sleep(50);
        assert.equal(inbox.items.length, 2);
        return;
      }
      await sub.subscribe('TICKER_UPDATES_MS?T', (data) => inbox.push(data));
      await pub.publish('TICKER_UPDATES_MSFT', price('MSFT', 300.5));
      await pub.publish(TickerUpdates.of({ ticker: 'MSXX' }), price('MSXX'));
      const [got] = await inbox.waitFor(1);
      assert.equal((got as { price: number }).price, 300.5);
      await sleep(50);
      assert.equal(inbox.items.length, 1);
    });

    it('refuses invalid data on publish with a ValidationError listing the issues', async () => {
      const pub = bus();
      await assert.rejects(
        pub.publish(TickerUpdates.of({ ticker: 'AAPL' }), { symbol: 'AAPL', price: 150 } as never),
        (e: unknown) => e instanceof ValidationError && e.code === ErrorCode.Validation && e.issues.some((i) => i.path === 'type'),
      );
      await assert.rejects(pub.publish(BrokerRegistration, { action: 'explode', ticker: 'AAPL' } as never), ValidationError);
    });

    it('rejects hostile tickers before anything reaches the transport', async () => {
      const pub = bus();
      for (const bad of ['AAPL*', 'A B', 'AAPL\r\nPUBLISH x y', '', 'X'.repeat(10_000), 'TICKER?', '[A]']) {
        assert.throws(() => TickerUpdates.of({ ticker: bad }), (e: unknown) => e instanceof ChannelParamError && e.code === ErrorCode.InvalidChannelParam, `ticker ${JSON.stringify(bad.slice(0, 20))}`);
      }
      await assert.rejects(pub.publish('TICKER_UPDATES_A B', price('AB')), UnknownChannelError);
      // Normalisation: user input is trimmed and upper-cased.
      assert.equal(TickerUpdates.name({ ticker: ' brk.b ' }), 'TICKER_UPDATES_BRK.B');
    });

    it('refuses a channel that no catalog defines', async () => {
      const pub = bus();
      await assert.rejects(pub.publish('NOT_A_CHANNEL', { x: 1 }), (e: unknown) => e instanceof UnknownChannelError && e.code === ErrorCode.UnknownChannel);
    });

    it('refuses an oversized message on publish', async () => {
      const pub = bus({ limits: { maxMessageBytes: 1024 } });
      const huge = { ...price('AAPL'), order_data: undefined, symbol: 'AAPL' };
      await pub.publish(TickerUpdates.of({ ticker: 'AAPL' }), huge);
      await assert.rejects(
        pub.publish(tickstock.Errors, { severity: 'high', message: 'x'.repeat(2000), component: 'c', timestamp: 1 }),
        (e: unknown) => e instanceof BusError && e.code === ErrorCode.MessageTooLarge,
      );
    });

    it('drops garbage on receive with an error event, and the next valid message still arrives', async () => {
      const pub = bus();
      const sub = bus();
      const inbox = new Inbox<number | undefined>();
      const errors: BusError[] = [];
      sub.on('error', (e) => errors.push(e));
      await sub.subscribe(TickerUpdates.of({ ticker: 'GARB' }), (data) => inbox.push(data.type === 'price' ? data.price : undefined));
      const ch = 'TICKER_UPDATES_GARB';
      await env.rawPublish(ch, 'this is not json');
      await env.rawPublish(ch, JSON.stringify({ timestamp: 'x', sender: 'y' }));
      await env.rawPublish(ch, JSON.stringify({ data: { type: 'price' }, timestamp: '2025-01-01T00:00:00Z', sender: 'evil' }));
      await env.rawPublish(ch, 'x'.repeat(2 * 1024 * 1024));
      await env.rawPublish(ch, Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
      await pub.publish(TickerUpdates.of({ ticker: 'GARB' }), price('GARB', 42));
      await inbox.waitFor(1);
      assert.deepEqual(inbox.items, [42]);
      assert.deepEqual(
        errors.map((e) => e.code),
        [ErrorCode.InvalidJson, ErrorCode.InvalidEnvelope, ErrorCode.Validation, ErrorCode.MessageTooLarge, ErrorCode.InvalidJson],
      );
      assert.ok(errors.every((e) => e.channel === ch));
      const rejected = await sub.context.metrics.registry.getSingleMetricAsString('tickbus_messages_rejected_total');
      assert.match(rejected, /code="TB_ERR_INVALID_JSON"[^\n]* 2/);
    });

    it('accepts envelopes with extra fields and an id', async () => {
      const sub = bus();
      const inbox = new Inbox<string | undefined>();
      await sub.subscribe(BrokerRegistration, (data, ctx) => inbox.push(`${data.action}:${data.ticker}:${ctx.id}`));
      await env.rawPublish('BROKER_REGISTRATION', JSON.stringify({ data: { action: 'subscribe', ticker: ' aapl ' }, timestamp: '2025-04-24T09:45:01.123456', sender: 'py', id: 'm-1', v: 2 }));
      assert.deepEqual(await inbox.waitFor(1), ['subscribe:AAPL:m-1']);
    });

    it('isolates a throwing handler: the error is reported and the next message arrives', async () => {
      const pub = bus();
      const sub = bus();
      const errors: BusError[] = [];
      sub.on('error', (e) => errors.push(e));
      const inbox = new Inbox<number>();
      let first = true;
      await sub.subscribe(TickerUpdates.of({ ticker: 'BOOM' }), (data) => {
        if (first) {
          first = false;
          return Promise.reject(new Error('handler bug'));
        }
        if (data.type === 'price') inbox.push(data.price ?? -1);
        return Promise.resolve();
      });
      await sub.subscribe(TickerUpdates.of({ ticker: 'SYNC' }), () => {
        throw new Error('sync bug');
      });
      await pub.publish(TickerUpdates.of({ ticker: 'BOOM' }), price('BOOM', 1));
      await pub.publish(TickerUpdates.of({ ticker: 'SYNC' }), price('SYNC', 1));
      await pub.publish(TickerUpdates.of({ ticker: 'BOOM' }), price('BOOM', 2));
      await inbox.waitFor(1);
      await waitFor(() => errors.length === 2, 'two handler errors');
      assert.deepEqual(inbox.items, [2]);
      assert.deepEqual(errors.map((e) => [e.code, e.channel]).sort(), [
        [ErrorCode.HandlerFailed, 'TICKER_UPDATES_BOOM'],
        [ErrorCode.HandlerFailed, 'TICKER_UPDATES_SYNC'],
      ]);
      assert.equal((errors.find((e) => e.channel === 'TICKER_UPDATES_BOOM')?.cause as Error).message, 'handler bug');
    });

    it('keeps order per channel, and a slow channel does not stall the others', async () => {
      const pub = bus();
      const sub = bus();
      const seen: string[] = [];
      let releaseSlow!: () => void;
      const slowGate = new Promise<void>((r) => (releaseSlow = r));
      const handler = async (data: { type: string; price?: number | null }, ctx: { params: { ticker: string } }) => {
        if (data.type !== 'price') return;
        if (ctx.params.ticker === 'SLOW' && data.price === 1) await slowGate;
        seen.push(`${ctx.params.ticker}:${data.price}`);
      };
      // One pattern, or (on a cluster, where ticker channels are sharded) each by name.
      if (env.cluster) for (const t of ['SLOW', 'FAST']) await sub.subscribe(TickerUpdates.of({ ticker: t }), handler);
      else await sub.subscribe(TickerUpdates, handler);
      for (let i = 1; i <= 5; i++) await pub.publish(TickerUpdates.of({ ticker: 'SLOW' }), price('SLOW', i));
      for (let i = 1; i <= 5; i++) await pub.publish(TickerUpdates.of({ ticker: 'FAST' }), price('FAST', i));
      await waitFor(() => seen.length === 5, 'FAST messages while SLOW is blocked');
      assert.deepEqual(seen, ['FAST:1', 'FAST:2', 'FAST:3', 'FAST:4', 'FAST:5']);
      releaseSlow();
      await waitFor(() => seen.length === 10, 'SLOW messages after release');
      assert.deepEqual(seen.slice(5), ['SLOW:1', 'SLOW:2', 'SLOW:3', 'SLOW:4', 'SLOW:5']);
    });

    it('keeps the order of one channel’s messages, one at a time or fired together (on a cluster: whatever node takes them)', async () => {
      const pub = bus();
      const sub = bus();
      const seen: string[] = [];
      await sub.subscribe(BrokerRegistration, (d) => void seen.push(d.ticker));
      const names = Array.from({ length: 150 }, (_, i) => `T${i}`);
      for (const t of names) await pub.publish(BrokerRegistration, { action: 'subscribe', ticker: t });
      await Promise.all(names.map((t) => pub.publish(BrokerRegistration, { action: 'unsubscribe', ticker: t })));
      await waitFor(() => seen.length === 300, 'every registration');
      assert.deepEqual(seen, [...names, ...names]);
    });

    it('drops the oldest queued messages of a handler that falls too far behind, and says so', async () => {
      const pub = bus();
      const sub = bus({ limits: { maxPendingPerChannel: 3 } });
      const errors: BusError[] = [];
      sub.on('error', (e) => errors.push(e));
      const seen: number[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      await sub.subscribe(TickerUpdates.of({ ticker: 'LAG' }), async (data) => {
        if (data.type === 'price' && data.price === 1) await gate;
        if (data.type === 'price') seen.push(data.price ?? -1);
      });
      for (let i = 1; i <= 8; i++) await pub.publish(TickerUpdates.of({ ticker: 'LAG' }), price('LAG', i));
      await waitFor(() => errors.length === 4, 'four drop notices');
      release();
      await waitFor(() => seen.length === 4, 'the newest messages');
      assert.deepEqual(seen, [1, 6, 7, 8]);
      assert.ok(errors.every((e) => e.code === ErrorCode.HandlerBacklog));
    });

    it('unsubscribes one handler, one channel, or everything', async () => {
      const pub = bus();
      const sub = bus();
      const a = new Inbox<string>();
      const b = new Inbox<string>();
      const subA = await sub.subscribe(TickerUpdates.of({ ticker: 'UNS' }), (_d, ctx) => a.push(ctx.channel));
      await sub.subscribe(TickerUpdates.of({ ticker: 'UNS' }), (_d, ctx) => b.push(ctx.channel));
      await sub.subscribe(BrokerRegistration, (d) => b.push(d.ticker));
      await subA.unsubscribe();
      await pub.publish(TickerUpdates.of({ ticker: 'UNS' }), price('UNS'));
      await b.waitFor(1);
      await sleep(30);
      assert.equal(a.items.length, 0, 'handler A was unsubscribed');
      await sub.unsubscribe(TickerUpdates.of({ ticker: 'UNS' }));
      assert.equal((await pub.publish(TickerUpdates.of({ ticker: 'UNS' }), price('UNS'))).receivers, 0);
      // On a cluster a classic PUBLISH counts only the subscribers of the node that took it
      // (Redis's rule), so there the proof is what arrives, not the count.
      const registered = await pub.publish(BrokerRegistration, { action: 'subscribe', ticker: 'X' });
      if (!env.cluster) assert.equal(registered.receivers, 1);
      await b.waitFor(2);
      await sub.unsubscribe();
      assert.deepEqual(sub.subscriber.subscriptions(), { channels: [], patterns: [] });
      const after = await pub.publish(BrokerRegistration, { action: 'subscribe', ticker: 'Y' });
      if (!env.cluster) assert.equal(after.receivers, 0);
      await sleep(50);
      assert.equal(b.items.length, 2, 'nothing arrives after unsubscribing everything');
    });

    it('publishes a batch in one call, in order; one invalid item sends none', async () => {
      const pub = bus();
      const sub = bus();
      const inbox = new Inbox<number>();
      const onPrice = (d: { type: string; price?: number | null }) => inbox.push(d.type === 'price' ? (d.price ?? -1) : -1);
      if (env.cluster) for (const t of ['ODD', 'EVEN']) await sub.subscribe(TickerUpdates.of({ ticker: t }), onPrice);
      else await sub.subscribe(TickerUpdates, onPrice);
      const counts = await pub.publishBatch(Array.from({ length: 50 }, (_, i) => ({ channel: TickerUpdates.of({ ticker: i % 2 ? 'ODD' : 'EVEN' }), data: price('X', i) })));
      assert.equal(counts.length, 50);
      assert.ok(counts.every((c) => c.status === 'sent' && c.receivers === 1));
      await inbox.waitFor(50);
      if (env.cluster) {
        // Two channels may live on two shards: the order holds per channel.
        assert.deepEqual(inbox.items.filter((n) => n % 2 === 0), Array.from({ length: 25 }, (_, i) => 2 * i));
        assert.deepEqual(inbox.items.filter((n) => n % 2 === 1), Array.from({ length: 25 }, (_, i) => 2 * i + 1));
      } else {
        assert.deepEqual(inbox.items, Array.from({ length: 50 }, (_, i) => i));
      }
      await assert.rejects(
        pub.publishBatch([
          { channel: TickerUpdates.of({ ticker: 'ODD' }), data: price('X', 99) },
          { channel: TickerUpdates.of({ ticker: 'ODD' }), data: { nope: true } },
        ]),
        ValidationError,
      );
      await sleep(50);
      assert.equal(inbox.items.length, 50);
    });

    it('carries bare-format channels (TickStock) unchanged on the wire', async () => {
      const pub = bus();
      const sub = bus();
      const inbox = new Inbox<string>();
      await sub.subscribe(tickstock.BacktestProgress, (d, ctx) => inbox.push(`${d.job_id}:${d.progress}:${d.status}:${String(ctx.sender)}`));
      await pub.publish(tickstock.BacktestProgress, { job_id: 'bt_1', progress: 0.5, status: 'running', timestamp: 1693123456.789 });
      await env.rawPublish('tickstock.events.backtesting.progress', JSON.stringify({ job_id: 'bt_2', progress: 1, status: 'completed', timestamp: 1693123457 }));
      assert.deepEqual(await inbox.waitFor(2), ['bt_1:0.5:running:undefined', 'bt_2:1:completed:undefined']);
    });

    it('rejects a message on a pattern-matched channel whose name is not a valid ticker channel', async () => {
      const sub = bus();
      const errors: BusError[] = [];
      sub.on('error', (e) => errors.push(e));
      const inbox = new Inbox<unknown>();
      if (env.cluster) {
        await sub.subscribe(tradingEvents.PriceUpdated, (d) => inbox.push(d));
        await env.rawPublish('price.updated.a b', JSON.stringify(priceEvent('AB')));
      } else {
        await sub.subscribe(TickerUpdates, (d) => inbox.push(d));
        await env.rawPublish('TICKER_UPDATES_a b', JSON.stringify({ data: price('AB'), timestamp: 't', sender: 's' }));
      }
      await waitFor(() => errors.length === 1, 'one error');
      assert.equal(errors[0]?.code, ErrorCode.InvalidChannelParam);
      assert.equal(inbox.items.length, 0);
    });

    it('refuses to work after close()', async () => {
      const b = env.makeBus();
      await b.connect();
      await b.subscribe(BrokerRegistration, () => {});
      await b.close();
      await assert.rejects(b.publish(BrokerRegistration, { action: 'subscribe', ticker: 'AAPL' }), ClosedError);
      await assert.rejects(b.subscribe(BrokerRegistration, () => {}), ClosedError);
    });
  });
}
