// What tickbus services leave in a shared Redis: real broker and `up` processes on a private
// redis-server, started and stopped as users do. `tickbus health` lists only the services
// that run, a killed service's beat expires, and a cleanly stopped system leaves no key
// without an expiry but those docs/wire-format.md names as persistent.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { waitFor } from '../harness/wait.ts';
import { printFigures } from '../harness/delivery.ts';

const HEARTBEATS = 'tickbus:{health}:heartbeats';
/** The keys docs/wire-format.md documents as persistent: streams with retention, dead letters. */
const PERSISTENT = /^tickbus:\{[^}]+\}:(stream|dead)$/;
const BEAT_MS = 200;

describe('key lifetimes', () => {
  let server: RedisServer;
  let env: NodeJS.ProcessEnv;
  const running: CliProcess[] = [];
  before(async () => {
    server = await startRedis();
    env = { REDIS_URL: server.url };
  });
  afterEach(() => {
    for (const p of running.splice(0)) p.child.kill('SIGKILL');
    server.cli('FLUSHALL');
  });
  after(async () => {
    await server.stop();
  });

  const broker = async (): Promise<CliProcess> => {
    const p = new CliProcess(['broker', '--port', '0', '--heartbeat-ms', String(BEAT_MS)], env);
    running.push(p);
    await p.waitFor(/health (http:\/\/\S+)\/health/);
    return p;
  };
  /** The instances `tickbus health --json` lists, by pid. */
  const listed = async (): Promise<Array<{ pid: number; liveness: string }>> => {
    const r = await runCli(['health', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const snapshot = JSON.parse(r.stdout) as { services: Array<{ instance: string; liveness: string }> };
    return snapshot.services.map((s) => ({ pid: Number(s.instance.slice(s.instance.lastIndexOf(':') + 1)), liveness: s.liveness }));
  };
  const pids = async () => (await listed()).map((s) => s.pid).sort((a, b) => a - b);

  it('fault 9: brokers started and stopped cleanly leave no beat behind, and a killed one\'s beat expires', async () => {
    // Several clean starts and stops: each removes its own beat on the way out.
    for (let i = 0; i < 3; i++) {
      const p = await broker();
      await waitFor(async () => (await pids()).includes(p.child.pid as number), 'its beat in `tickbus health`', 10_000);
      assert.equal(await p.stop('SIGTERM'), 0);
      assert.deepEqual(await pids(), [], 'a broker that stopped cleanly is not listed');
    }

    // One killed beside a live one: the live one's beats drop the dead one's when it expires.
    const live = await broker();
    const victim = await broker();
    const both = [live.child.pid as number, victim.child.pid as number].sort((a, b) => a - b);
    await waitFor(async () => (await pids()).join() === both.join(), 'both brokers listed', 10_000);
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedAt = Date.now();
    await waitFor(async () => (await pids()).join() === String(live.child.pid), 'the killed broker to leave `tickbus health`', 10_000);
    const expiredAfterMs = Date.now() - killedAt;
    assert.ok(server.cli('HKEYS', HEARTBEATS).split('\n').every((k) => !k.endsWith(`:${victim.child.pid}`)), 'its beat is gone from the hash, not only hidden');

    // The last one killed: nobody prunes, the keys expire by themselves.
    live.child.kill('SIGKILL');
    await live.exited;
    await waitFor(() => server.cli('EXISTS', HEARTBEATS) === '0', 'the heartbeat hash to expire with its last beat', 10_000);
    assert.deepEqual(await pids(), []);
    printFigures('fault 9 (heartbeats)', { clean_stops: 3, listed_after_stops: 0, beat_ms: BEAT_MS, killed_beat_gone_after_ms: expiredAfterMs });
  });

  it('fault 9: `tickbus up` stopped cleanly leaves no tickbus key without an expiry but the persistent streams', async () => {
    const up = new CliProcess(['up', '--port', '0', '--tickers', 'AAPL,MSFT', '--rate', '20'], env);
    running.push(up);
    const [, url] = await up.waitFor(/health +(http:\/\/\S+)\/health/);
    const health = async () => (await (await fetch(`${url}/health`)).json()) as { ticker_list: string[] };
    await waitFor(async () => (await health()).ticker_list.join() === 'AAPL,MSFT', 'AAPL and MSFT streaming', 15_000);
    await waitFor(() => server.cli('EXISTS', 'tickbus:last:{AAPL}', 'tickbus:last:{MSFT}') === '2' && server.cli('HLEN', HEARTBEATS) === '1', 'prices and a heartbeat in Redis', 15_000);
    const whileUp = server.cli('KEYS', '*').split('\n').filter(Boolean).sort();
    assert.equal(await up.stop('SIGINT'), 0);

    const left = server.cli('KEYS', '*').split('\n').filter(Boolean).sort();
    const lifetimes = left.map((key) => ({ key, pttl: Number(server.cli('PTTL', key)) }));
    const forever = lifetimes.filter((k) => k.pttl === -1 && !PERSISTENT.test(k.key)).map((k) => k.key);
    printFigures('fault 9 (`up` keys)', { while_up: whileUp.length, left: left.length, without_ttl: lifetimes.filter((k) => k.pttl === -1).map((k) => k.key).join(',') || '-' });
    assert.deepEqual(forever, [], 'every key that is only meaningful while its owner runs has an expiry or is gone');
    assert.equal(server.cli('EXISTS', HEARTBEATS), '0', 'its beat removed on the way out');
    assert.ok(left.includes('tickbus:{TICKER_UPDATES_AAPL}:stream'), 'the ticker history stays (documented as persistent)');
  });
});
