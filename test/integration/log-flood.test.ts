// Rejected input is logged compactly (fault 10 of issue 14): a flood of garbage on channels
// that a real broker, gateway and service listen on gives short lines (code, channel, a
// preview; no stack), a bounded amount of them, while a handler that crashes still logs
// its stack. Every process here is real, on a real redis-server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { WebSocket } from 'ws';
import { createBus } from '../../src/index.ts';
import { CliProcess } from '../harness/cli.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { Plain, deliveryCatalog } from '../fixtures/delivery-channels.ts';

const SUBSCRIBER_SCRIPT = fileURLToPath(new URL('../fixtures/log-subscriber.ts', import.meta.url));
const LOGS = { TICKBUS_LOG_LEVEL: 'info' };
/** What one rejected message may cost in the logs, at most. */
const MAX_LINE = 400;

type Line = { text: string; json: Record<string, unknown> & { code?: string; channel?: string; err?: { code?: string; channel?: string; stack?: string; message?: string } } };

function lines(stderr: string): Line[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((text) => ({ text, json: JSON.parse(text) as Line['json'] }));
}

/** Lines about rejected input: a bus error of the input kind, or a broker notice about one. */
function rejections(all: Line[]): Line[] {
  return all.filter(({ json }) => /^TB_ERR_(VALIDATION|INVALID_JSON|INVALID_ENVELOPE|MESSAGE_TOO_LARGE)$/.test(json.err?.code ?? '') || /^TB_BROKER_INVALID_/.test(json.code ?? ''));
}

describe('logs under a garbage flood', () => {
  let server: RedisServer;
  const processes: CliProcess[] = [];
  let ws: WebSocket | undefined;

  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    ws?.terminate();
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    await server.stop();
  });

  it('logs each rejected message as one short line with its code and channel, throttled; a handler crash keeps its stack', async () => {
    const broker = new CliProcess(['broker', '--redis-url', server.url, '--port', '0', '--rate', '1'], LOGS);
    const gateway = new CliProcess(['gateway', '--redis-url', server.url, '--port', '0'], LOGS);
    const service = new CliProcess([], LOGS, [process.execPath, '--import', 'tsx', SUBSCRIBER_SCRIPT, server.url, 'logs']);
    processes.push(broker, gateway, service);
    await broker.waitFor(/health http\S+\/health/);
    const wsUrl = (await gateway.waitFor(/websocket (ws\S+)/))[1] as string;
    await service.waitFor(/ready/, 'stdout', 30_000);
    // A browser in the AAPL room: the gateway holds a subscription to TICKER_UPDATES_AAPL.
    ws = new WebSocket(wsUrl);
    const replies: string[] = [];
    ws.on('message', (m: Buffer) => replies.push(m.toString('utf8')));
    await new Promise((resolve, reject) => ws?.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ op: 'subscribe', symbols: ['AAPL'] }));
    await waitFor(() => replies.some((r) => r.includes('"subscribed"')), 'the AAPL room');

    // The flood: not JSON, not an envelope, schema violations with long junk, oversized.
    const raw = createClient({ url: server.url });
    await raw.connect();
    const junk = 'x'.repeat(5_000);
    const garbage = (i: number): string[] => [
      `not json ${i} ${junk}`,
      JSON.stringify({ hello: i, junk }),
      JSON.stringify({ data: { action: junk, ticker: junk, type: junk, n: junk, side: junk }, timestamp: new Date().toISOString(), sender: 'evil' }),
    ];
    const oversized = 'y'.repeat(1024 * 1024 + 10);
    const channels = ['BROKER_REGISTRATION', 'ORDER_REQUESTS', 'TICKER_UPDATES_AAPL', 'TEST_PLAIN_logs'];
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 150; i++) {
      for (const channel of channels) for (const payload of garbage(i)) sends.push(raw.publish(channel, payload));
      for (const payload of garbage(i)) sends.push(raw.xAdd('tickbus:{TEST_WORK_logs}:stream', '*', { payload }));
    }
    for (const channel of channels) sends.push(raw.publish(channel, oversized));
    await Promise.all(sends);
    await raw.close();

    // A real fault: the service's handler throws.
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger, catalogs: [deliveryCatalog] });
    await bus.publish(Plain.of({ queue: 'logs' }), { n: 7, poison: true });
    await bus.close();
    await waitFor(() => service.stderr.includes('handler crashed on purpose'), 'the handler crash in the log', 10_000);
    await sleep(1_000);
    await Promise.all([broker.stop(), gateway.stop(), service.stop()]);

    const seen = new Set<string>();
    for (const [name, p] of [['broker', broker], ['gateway', gateway], ['service', service]] as const) {
      const all = lines(p.stderr);
      const rejected = rejections(all);
      assert.ok(rejected.length > 0, `${name} logged the rejections`);
      for (const { text, json } of rejected) {
        assert.ok(text.length < MAX_LINE, `${name}: a rejection's log line is ${text.length} bytes (at most ${MAX_LINE}): ${text}`);
        assert.equal(json.err?.stack, undefined, `${name}: no stack for bad input`);
        const code = json.err?.code ?? json.code;
        const channel = json.err?.channel ?? json.channel;
        assert.ok(code, `${name}: the line has the code`);
        assert.ok(channel, `${name}: the line has the channel: ${text}`);
        seen.add(`${name} ${channel}`);
      }
      // 1,800+ bad messages each: the logs take a bounded share of them.
      const bytes = rejected.reduce((n, l) => n + l.text.length + 1, 0);
      assert.ok(bytes < 100_000, `${name}: ${bytes} bytes of logs for the flood`);
    }
    for (const expected of ['broker BROKER_REGISTRATION', 'broker ORDER_REQUESTS', 'gateway TICKER_UPDATES_AAPL', 'service TEST_PLAIN_logs', 'service TEST_WORK_logs']) {
      assert.ok(seen.has(expected), `a rejection logged by the ${expected.replace(' ', ' on ')} (seen: ${[...seen].join(', ')})`);
    }
    const crash = lines(service.stderr).find((l) => l.text.includes('handler crashed on purpose'));
    assert.ok(crash, 'the handler crash is logged');
    assert.match(JSON.stringify(crash.json.err), /handler crashed on purpose/);
    assert.match(String(crash.json.err?.stack), /\n\s+at /, 'with its stack');
  });
});
