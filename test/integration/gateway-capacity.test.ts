// A gateway at the end of its open files (issue 18's scale work found the edge): past its
// connection cap it answers 503 with Retry-After and counts TB_ERR_GATEWAY_FULL, the cap
// following the process's open-file limit by default; and with the cap set above what the
// kernel allows, the connections the kernel refuses do not take the process down. Either
// way the clients it holds keep getting their updates. Real redis-server and gateway
// processes, the limit lowered with the shell's ulimit.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { TickerUpdates, createBus, type TickBus } from '../../src/index.ts';
import { CliProcess, TICKBUS_COMMAND } from '../harness/cli.ts';
import { GatewayClient } from '../harness/gateway-client.ts';
import { startRedis } from '../harness/redis-server.ts';
import { waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { Held } from '../harness/held.ts';

const price = (symbol: string, p: number) => ({ type: 'price' as const, timestamp: new Date().toISOString(), symbol, price: p, volume: 1 });

/** The answer to one WebSocket attempt: open, or the HTTP status it was refused with (0: dropped). */
function attempt(url: string, sockets: WebSocket[]): Promise<{ status: number; retryAfter?: string | undefined; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    sockets.push(ws);
    ws.once('open', () => resolve({ status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
    });
    ws.once('error', () => resolve({ status: 0 }));
  });
}

describe('a gateway at its connection limit', () => {
  const held = new Held();
  const { servers, processes, sockets, buses } = held;
  after(() => held.release());

  /** A gateway started under `ulimit -n files`; its URLs and a bus to publish with. */
  async function gateway(files: number, args: string[] = []): Promise<{ wsUrl: string; healthUrl: string; bus: TickBus; process: CliProcess }> {
    const server = await startRedis();
    servers.push(server);
    const command = ['bash', '-c', `ulimit -n ${files} && exec "$@"`, 'tickbus', ...TICKBUS_COMMAND, 'gateway', '--redis-url', server.url, '--port', '0', '--batch-ms', '0', ...args];
    const process = new CliProcess([], { TICKBUS_LOG_LEVEL: 'warn' }, command);
    processes.push(process);
    const wsUrl = (await process.waitFor(/websocket (ws\S+)/))[1] as string;
    const healthUrl = (await process.waitFor(/health (http\S+\/health)/))[1] as string;
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    buses.push(bus);
    await bus.connect();
    return { wsUrl, healthUrl, bus, process };
  }

  /** A client subscribed to `symbol` that has had its `ok`. */
  async function watcher(wsUrl: string, symbol: string): Promise<GatewayClient> {
    const client = new GatewayClient(wsUrl);
    sockets.push(client.ws);
    await client.opened;
    client.send({ op: 'subscribe', symbols: [symbol], id: 'w' });
    assert.equal((await client.reply('w')).type, 'ok');
    return client;
  }

  /** Publishes prices of `symbol` until `client` has one at `p` or above. */
  async function served(bus: TickBus, client: GatewayClient, symbol: string, p: number): Promise<void> {
    await waitFor(async () => {
      await bus.publish(TickerUpdates.of({ ticker: symbol }), price(symbol, p));
      return client.updates().some((u) => (u.data.price as number) >= p);
    }, `an update of ${symbol} at ${p} for a client the gateway holds`, 15_000);
  }

  it('by default caps connections below the open-file limit and answers the rest 503 with Retry-After', async () => {
    // 400 files less the 256 kept back: 144 connections.
    const { wsUrl, healthUrl, bus, process } = await gateway(400);
    const health = async () => (await (await fetch(healthUrl)).json()) as { status: string; connections: number; max_connections: number };
    assert.equal((await health()).max_connections, 144);
    const first = await watcher(wsUrl, 'CAPA');
    const answers = await Promise.all(Array.from({ length: 180 }, () => attempt(wsUrl, sockets)));
    const opened = answers.filter((a) => a.status === 101).length;
    const full = answers.filter((a) => a.status === 503);
    assert.equal(opened, 143, `the watcher and 143 more fill the 144; got ${JSON.stringify(answers.filter((a) => a.status !== 101 && a.status !== 503))}`);
    assert.equal(full.length, 180 - 143, 'every connection past the cap is answered 503, none dropped');
    assert.equal(full[0]?.retryAfter, '5');
    assert.match(full[0]?.body ?? '', /maximum of 144 connections; retry in 5 s/);
    assert.equal((await health()).connections, 144);
    const metrics = await (await fetch(healthUrl.replace('/health', '/metrics'))).text();
    assert.match(metrics, new RegExp(`tickbus_gateway_errors_total\\{code="TB_ERR_GATEWAY_FULL"\\} ${180 - 143}\\b`));
    // The operator hears of it once in a while, not once per refusal.
    await waitFor(() => /gateway: full, refusing new connections/.test(process.stdout + process.stderr), 'the log line about a full gateway');
    assert.equal((process.stdout + process.stderr).match(/gateway: full, refusing/g)?.length, 1);
    await served(bus, first, 'CAPA', 1);
    // A place freed is a place taken.
    const openOnes = sockets.filter((ws) => ws.readyState === WebSocket.OPEN && ws !== first.ws);
    openOnes[0]?.close();
    await waitFor(async () => (await health()).connections === 143, 'the closed connection to leave');
    assert.equal((await attempt(wsUrl, sockets)).status, 101);
    assert.equal(process.child.exitCode, null);
  });

  it('with the cap above the kernel limit, survives the connections the kernel refuses and keeps serving the rest', async () => {
    const { wsUrl, healthUrl, bus, process } = await gateway(200, ['--max-connections', '1000']);
    const first = await watcher(wsUrl, 'KERN');
    const answers = await Promise.all(Array.from({ length: 300 }, () => attempt(wsUrl, sockets)));
    const opened = answers.filter((a) => a.status === 101).length;
    assert.ok(opened > 100 && opened < 300, `the kernel's limit of 200 files let some in and not all: ${opened} opened`);
    // Still alive, still answering HTTP and still delivering to the clients it holds.
    await served(bus, first, 'KERN', 1);
    for (const ws of sockets) if (ws !== first.ws) ws.terminate();
    // Until the gateway has seen the flood's sockets close, it may have no file for the
    // health check's connection either (the kernel drops it): a failed fetch is "not yet".
    const connections = async () => ((await (await fetch(healthUrl)).json()) as { connections: number }).connections;
    await waitFor(async () => (await connections().catch(() => -1)) === 1, 'the flood to leave');
    await served(bus, first, 'KERN', 2);
    assert.equal((await attempt(wsUrl, sockets)).status, 101, 'a new client gets in once files are free again');
    assert.equal(process.child.exitCode, null);
  });
});
