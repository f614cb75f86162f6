// OpenTelemetry traces across real processes' parts on a private redis-server: the SDK's
// in-memory exporter registered as an application would, then one trace from a bot's order
// request through the broker to the order update the bot receives, one from a price publish
// to a gateway client's delivery, and one from a job submitted to its run. Each test file
// runs in its own process, so the global tracer provider set here touches no other test.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { Gateway } from '../../src/gateway/gateway.ts';
import { TickerUpdates, createBotClient, createBus, defineCatalog, defineChannel, IDENTIFIER } from '../../src/index.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { GatewayClient } from '../harness/gateway-client.ts';
import { waitFor } from '../harness/wait.ts';
import { z } from 'zod';

const exporter = new InMemorySpanExporter();

const Work = defineChannel({ name: 'TEST_WORK_{queue}', schema: z.object({ n: z.number() }), params: { queue: IDENTIFIER }, durable: { maxLen: 1_000 } });
const Bare = defineChannel({ name: 'test:bare', schema: z.object({ n: z.number() }), wire: 'bare' });
const catalog = defineCatalog('tracing', 'Channels for the tracing test.', { Work, Bare });

const spans = () => exporter.getFinishedSpans();
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;
const traceOf = (s: ReadableSpan) => s.spanContext().traceId;
/** The first finished span named so (in the trace, when given), once it has ended. */
async function span(name: string, where: (s: ReadableSpan) => boolean = () => true): Promise<ReadableSpan> {
  await waitFor(() => spans().some((s) => s.name === name && where(s)), `a span "${name}" (have ${[...new Set(spans().map((s) => s.name))].join(', ')})`);
  return spans().find((s) => s.name === name && where(s)) as ReadableSpan;
}

describe('OpenTelemetry traces (in-memory exporter)', () => {
  let server: RedisServer;
  let broker: BrokerRuntime | undefined;
  const closers: Array<() => Promise<unknown>> = [];

  before(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    server = await startRedis();
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await broker?.stop();
    await server.stop();
    trace.disable();
    context.disable();
  });

  it('follows a bot\'s order request through the broker to the order updates the bot receives, in one trace', async () => {
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 5 }), logger: silentLogger, sweepIntervalMs: 100 });
    const bot = createBotClient({ clientId: 'traced-bot', redis: { url: server.url }, logger: silentLogger, retryMs: 100 });
    closers.push(() => bot.close());
    await bot.watch('MSFT', {});
    const ticket = await bot.placeOrder({ symbol: 'MSFT', side: 'buy', qty: 3, type: 'market' });
    const final = await ticket.done;
    assert.equal(final.order_data?.status, 'filled');

    const request = await span('publish ORDER_REQUESTS');
    const traceId = traceOf(request);
    const handled = await span('process ORDER_REQUESTS', (s) => traceOf(s) === traceId);
    assert.equal(parentOf(handled), idOf(request), 'the broker handles the request as a child of the bot\'s publish');
    assert.equal(handled.attributes['messaging.destination.name'], 'ORDER_REQUESTS');
    // The order's updates (new, fill) are published by the broker inside that handling, and received by the bot.
    // A publish span ends with its receipt, which may come after the bot has handled the message: wait for both kinds.
    const inTrace = (name: string) => spans().filter((s) => s.name === name && traceOf(s) === traceId).length;
    await waitFor(() => inTrace('process TICKER_UPDATES_{ticker}') >= 2 && inTrace('publish TICKER_UPDATES_{ticker}') >= 2, 'both order updates published and handled in the trace');
    const updates = spans().filter((s) => s.name === 'publish TICKER_UPDATES_{ticker}' && traceOf(s) === traceId);
    assert.equal(updates.length, 2, 'two order updates published in the order\'s trace');
    for (const u of updates) {
      assert.equal(parentOf(u), idOf(handled), 'published by the broker\'s handling of the request');
      assert.equal(u.attributes['messaging.destination.name'], 'TICKER_UPDATES_MSFT');
      const received = spans().filter((s) => s.name === 'process TICKER_UPDATES_{ticker}' && parentOf(s) === idOf(u));
      assert.equal(received.length, 1, 'the bot receives each update as a child of its publish');
    }
    // Price updates from the feed's own ticks are traces of their own: not the order's, nor the registration's that started the ticker.
    await waitFor(() => spans().some((s) => s.name === 'publish TICKER_UPDATES_{ticker}' && traceOf(s) !== traceId), 'a price update traced');
    const prices = spans().filter((s) => s.name === 'publish TICKER_UPDATES_{ticker}' && traceOf(s) !== traceId);
    assert.ok(prices.every((s) => s.parentSpanContext === undefined), 'each price update is a trace of its own');
  });

  it('follows a price publish to the gateway\'s delivery to its client', async () => {
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'gateway' });
    const pub = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'pricer' });
    const gw = new Gateway({ bus, logger: silentLogger, port: 0 });
    closers.push(() => bus.close(), () => pub.close(), () => gw.close());
    const { url } = await gw.listen();
    const client = new GatewayClient(url.replace('http', 'ws') + '/ws');
    closers.push(() => Promise.resolve(client.close()));
    await client.opened;
    client.send({ op: 'subscribe', symbols: ['TRACED'] });
    await waitFor(() => client.messages.some((m) => m.type === 'subscribed'), 'subscribed');
    const receipt = await pub.publish(TickerUpdates.of({ ticker: 'TRACED' }), { type: 'price', timestamp: new Date().toISOString(), symbol: 'TRACED', price: 10, volume: 1 });
    await waitFor(() => client.updates().length === 1, 'the update at the client');
    const published = await span('publish TICKER_UPDATES_{ticker}', (s) => s.attributes['tickbus.position'] === receipt.position);
    const handled = await span('process TICKER_UPDATES_{ticker}', (s) => parentOf(s) === idOf(published));
    const delivered = await span('deliver TICKER_UPDATES_{ticker}', (s) => parentOf(s) === idOf(handled));
    assert.equal(traceOf(delivered), traceOf(published));
    assert.deepEqual([delivered.attributes['tickbus.room'], delivered.attributes['tickbus.members'], delivered.attributes['tickbus.position']], ['TRACED', 1, receipt.position]);
  });

  it('carries the trace through a durable queue to the handler, and leaves a bare channel\'s payload alone', async () => {
    const pub = createBus({ redis: { url: server.url }, logger: silentLogger, catalogs: [catalog] });
    const sub = createBus({ redis: { url: server.url }, logger: silentLogger, catalogs: [catalog] });
    closers.push(() => pub.close(), () => sub.close());
    const got: number[] = [];
    await sub.consume(Work.of({ queue: 'traced' }), (d) => {
      got.push(d.n);
    }, { group: 'traced' });
    await pub.publish(Work.of({ queue: 'traced' }), { n: 1 });
    await waitFor(() => got.length === 1, 'the durable message');
    const published = await span('publish TEST_WORK_{queue}');
    const handled = await span('process TEST_WORK_{queue}', (s) => parentOf(s) === idOf(published));
    assert.equal(handled.attributes['tickbus.attempt'], 1);
    // The envelope on the stream carries the W3C trace context; a bare message is the data alone.
    const entry = server.cli('XRANGE', 'tickbus:{TEST_WORK_traced}:stream', '-', '+');
    assert.match(entry, new RegExp(`"traceparent":"00-${traceOf(published)}-${idOf(published)}-01"`));
    const raw: string[] = [];
    const watcher = createBus({ redis: { url: server.url }, logger: silentLogger, catalogs: [catalog] });
    closers.push(() => watcher.close());
    await watcher.subscribe(Bare, (d) => raw.push(JSON.stringify(d)));
    await pub.publish(Bare, { n: 7 });
    await waitFor(() => raw.length === 1, 'the bare message');
    assert.deepEqual(raw, ['{"n":7}']);
    assert.ok(spans().some((s) => s.name === 'publish test:bare'), 'a bare publish still has its span');
  });

  it('starts a new trace for a malformed or forged traceparent, and never rejects the message for it', async () => {
    const sub = createBus({ redis: { url: server.url }, logger: silentLogger, catalogs: [catalog] });
    closers.push(() => sub.close());
    const errors: unknown[] = [];
    sub.on('error', (e) => errors.push(e));
    const got: number[] = [];
    await sub.subscribe(TickerUpdates.of({ ticker: 'FORGED' }), () => got.push(1));
    const envelope = (extra: Record<string, unknown>) => JSON.stringify({ data: { type: 'price', timestamp: new Date().toISOString(), symbol: 'FORGED', price: 1, volume: 1 }, timestamp: new Date().toISOString(), sender: 'x', ...extra });
    server.cli('PUBLISH', 'TICKER_UPDATES_FORGED', envelope({ traceparent: 'not-a-traceparent', tracestate: 42 }));
    server.cli('PUBLISH', 'TICKER_UPDATES_FORGED', envelope({ traceparent: `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01` }));
    server.cli('PUBLISH', 'TICKER_UPDATES_FORGED', envelope({ traceparent: { toString: null } }));
    await waitFor(() => got.length === 3, 'all three delivered');
    assert.deepEqual(errors, []);
    const handled = spans().filter((s) => s.name === 'process TICKER_UPDATES_{ticker}' && s.attributes['messaging.destination.name'] === 'TICKER_UPDATES_FORGED');
    assert.equal(handled.length, 3);
    assert.ok(handled.every((s) => s.parentSpanContext === undefined), 'each a root span of its own trace');
  });
});
