// Issue 14, fault 2: a broker and a gateway, as real processes, under a Redis that is
// killed (SIGKILL) and started again on the same port, over and over. Both must stay up,
// and a WebSocket client of the gateway must get updates again after every restart. Before
// the fix the broker died of an unhandled rejection from its group round within a few
// restarts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess } from '../harness/cli.ts';
import { sleep, waitFor } from '../harness/wait.ts';

const RESTARTS = 8;
/** Each restart cycle lasts at least this long (kill, down, start, updates flowing again). */
const CYCLE_MS = 3500;

describe('Redis restarts under a running broker and gateway', () => {
  let server: RedisServer;
  const procs: CliProcess[] = [];
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await server.stop();
  });

  it(`both stay up through ${RESTARTS} restarts, and updates reach the client after each`, async () => {
    // warn: a crash and the retry lines are in stderr when this fails.
    const env = { TICKBUS_LOG_LEVEL: 'warn' };
    const broker = new CliProcess(['broker', '--feed', 'sim', '--redis-url', server.url, '--port', '0', '--rate', '10'], env);
    const gateway = new CliProcess(['gateway', '--redis-url', server.url, '--port', '0', '--batch-ms', '100'], env);
    procs.push(broker, gateway);
    await broker.waitFor(/health (http:\/\/\S+)\/health/);
    const [, wsUrl] = await gateway.waitFor(/websocket (ws:\/\/\S+)/);

    let updates = 0;
    const ws = new WebSocket(wsUrl as string);
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as { type: string; updates?: unknown[] };
      if (msg.type === 'batch') updates += msg.updates?.length ?? 0;
    });
    let closed = false;
    ws.on('close', () => (closed = true));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // The gateway registers AAPL with the broker in its own name; the broker starts streaming it.
    ws.send(JSON.stringify({ op: 'subscribe', symbols: ['AAPL'], id: 1 }));
    await waitFor(() => updates >= 5, 'the first AAPL updates through the gateway', 15_000);

    const alive = (what: string) => {
      assert.equal(broker.child.exitCode, null, `the broker exited (${what}). stderr:\n${broker.stderr.slice(-4000)}`);
      assert.equal(gateway.child.exitCode, null, `the gateway exited (${what}). stderr:\n${gateway.stderr.slice(-4000)}`);
      assert.equal(closed, false, `the client's connection was closed (${what})`);
    };
    const resumedIn: number[] = [];
    for (let i = 1; i <= RESTARTS; i++) {
      const cycle = Date.now();
      await server.kill();
      await sleep(300);
      await server.restart();
      const restarted = Date.now();
      const before = updates;
      try {
        await waitFor(() => updates >= before + 3 || broker.child.exitCode !== null || gateway.child.exitCode !== null, `updates after restart ${i}`, 12_000);
      } finally {
        alive(`restart ${i}`);
      }
      resumedIn.push(Date.now() - restarted);
      const rest = CYCLE_MS - (Date.now() - cycle);
      if (rest > 0) await sleep(rest);
      alive(`after restart ${i}`);
    }
    process.stderr.write(`updates resumed after each restart within (ms): ${resumedIn.join(', ')}\n`);
    ws.close();
    assert.equal(await gateway.stop('SIGTERM'), 0, gateway.stderr.slice(-2000));
    assert.equal(await broker.stop('SIGTERM'), 0, broker.stderr.slice(-2000));
  });
});
