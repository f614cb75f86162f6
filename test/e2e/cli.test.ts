// The CLI as a user drives it: subprocesses, their output and their exit codes.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis, freePort, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { TickerUpdates, createBus, deadLetterKey } from '../../src/index.ts';
import { Work, deliveryCatalog } from '../fixtures/delivery-channels.ts';

describe('tickbus CLI', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server.stop();
  });
  afterEach(() => {
    server.cli('FLUSHALL');
  });

  it('has --help on every command, with examples, and --version', async () => {
    const top = await runCli(['--help']);
    assert.equal(top.code, 0);
    const section = top.stdout.split('Commands:')[1]?.split('Environment:')[0] ?? '';
    const commands = [...section.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    assert.deepEqual(commands, ['up', 'broker', 'gateway', 'patterns', 'tail', 'publish', 'register', 'unregister', 'health', 'dead', 'jobs', 'schema']);
    for (const cmd of [['up'], ['broker'], ['gateway'], ['patterns'], ['tail'], ['publish'], ['register'], ['unregister'], ['health'], ['dead-letters'], ['jobs'], ['jobs', 'submit'], ['jobs', 'status'], ['jobs', 'cancel'], ['jobs', 'list'], ['schema', 'export']]) {
      const help = await runCli([...cmd, '--help']);
      assert.equal(help.code, 0, cmd.join(' '));
      assert.match(help.stdout, /Usage: tickbus/, cmd.join(' '));
      assert.match(help.stdout, /Examples:/, cmd.join(' '));
    }
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
  });

  it('exits 2 on a usage error', async () => {
    const r = await runCli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command/);
    const zero = await runCli(['tail', 'X', '-n', '0']);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /--count must be a whole number of at least 1/);
  });

  it('`up` refuses a bad ticker before starting anything', async () => {
    const r = await runCli(['up', '--port', '0', '--tickers', 'AAPL,bad ticker!'], { REDIS_URL: server.url }, 10_000);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /Invalid ticker "bad ticker!"/);
    assert.doesNotMatch(r.stderr, /using Redis/, 'nothing was started');
  });

  it('says in one line where it tried when Redis is unreachable (exit 4)', async () => {
    const port = await freePort();
    const r = await runCli(['publish', 'BROKER_REGISTRATION', '{"action":"subscribe","ticker":"AAPL"}', '--redis-url', `redis://127.0.0.1:${port}`]);
    assert.equal(r.code, 4);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*REDIS_URL`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('validates before publishing: bad JSON, schema violations and unknown channels exit 3', async () => {
    const env = { REDIS_URL: server.url };
    const badJson = await runCli(['publish', 'BROKER_REGISTRATION', '{nope'], env);
    assert.equal(badJson.code, 3);
    assert.match(badJson.stderr, /not valid JSON/);
    const invalid = await runCli(['publish', 'BROKER_REGISTRATION', '{"action":"explode","ticker":"AAPL"}'], env);
    assert.equal(invalid.code, 3);
    assert.match(invalid.stderr, /action: Invalid option.*TB_ERR_VALIDATION/);
    const unknown = await runCli(['publish', 'NOT_A_CHANNEL', '{}'], env);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stderr, /TB_ERR_UNKNOWN_CHANNEL/);
    const hostile = await runCli(['publish', 'TICKER_UPDATES_A*', '{}'], env);
    assert.equal(hostile.code, 3);
  });

  it('tails valid and invalid messages, and publishes from a file', async () => {
    const env = { REDIS_URL: server.url };
    const tail = new CliProcess(['tail', 'TICKER_UPDATES_*', '--json', '-n', '2'], env);
    await waitFor(() => server.cli('PUBSUB', 'NUMPAT') === '1', 'tail to subscribe', 15_000);
    server.cli('PUBLISH', 'TICKER_UPDATES_AAPL', 'garbage');
    const dir = mkdtempSync(join(tmpdir(), 'tickbus-cli-'));
    const file = join(dir, 'price.json');
    writeFileSync(file, JSON.stringify({ type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150, volume: 10, symbol: 'AAPL' }));
    const pub = await runCli(['publish', 'TICKER_UPDATES_AAPL', `@${file}`], env);
    assert.equal(pub.code, 0, pub.stderr);
    assert.match(pub.stdout, /published to TICKER_UPDATES_AAPL \(1 receiver, position \d+-\d+\)/);
    assert.equal(await tail.exited, 0);
    const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines[0], { channel: 'TICKER_UPDATES_AAPL', valid: false, code: 'TB_ERR_INVALID_JSON', reason: 'Message on "TICKER_UPDATES_AAPL" is not valid JSON.', preview: 'garbage' });
    assert.equal(lines[1]?.valid, true);
    assert.deepEqual(lines[1]?.data, { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', price: 150, volume: 10, symbol: 'AAPL' });
    assert.equal(lines[1]?.sender, 'tickbus-cli');
  });

  it('`tail | head`: a reader that goes away ends tail quietly (exit 0), not with an EPIPE crash', async () => {
    const tail = new CliProcess(['tail', 'TICKER_UPDATES_*', '--json'], { REDIS_URL: server.url });
    await waitFor(() => server.cli('PUBSUB', 'NUMPAT') === '1', 'tail to subscribe', 15_000);
    server.cli('PUBLISH', 'TICKER_UPDATES_AAPL', 'first');
    await waitFor(() => tail.stdout.includes('\n'), 'the first line');
    // The reader has its line and leaves, as `head -1` does.
    tail.child.stdout?.destroy();
    for (let n = 0; n < 50 && tail.child.exitCode === null; n++) {
      server.cli('PUBLISH', 'TICKER_UPDATES_AAPL', `more ${n}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await tail.exited, 0, tail.stderr);
    assert.doesNotMatch(tail.stderr, /EPIPE|Unhandled/);
  });

  it('exports the JSON Schema of every catalog', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tickbus-schema-'));
    const r = await runCli(['schema', 'export', '--out', out]);
    assert.equal(r.code, 0);
    assert.deepEqual(readdirSync(out).sort(), ['broker.schema.json', 'system.schema.json', 'tickstock.schema.json', 'trading-events.schema.json']);
    const broker = JSON.parse(readFileSync(join(out, 'broker.schema.json'), 'utf8')) as { channels: Record<string, { data: { type: string }; pattern: string }> };
    assert.equal(broker.channels['TICKER_UPDATES_{ticker}']?.pattern, 'TICKER_UPDATES_*');
    assert.ok(broker.channels['BROKER_REGISTRATION']?.data);
  });

  it('runs the broker until SIGTERM, then shuts down cleanly', async () => {
    const broker = new CliProcess(['broker', '--port', '0', '--rate', '20'], { REDIS_URL: server.url });
    const [, url] = await broker.waitFor(/health (http:\/\/\S+)\/health/);
    const pub = await runCli(['publish', 'BROKER_REGISTRATION', '{"action":"subscribe","ticker":"CLI"}'], { REDIS_URL: server.url });
    assert.equal(pub.code, 0);
    await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { tickers: number }).tickers === 1, 'the broker to stream CLI');
    const started = Date.now();
    assert.equal(await broker.stop('SIGTERM'), 0);
    assert.ok(Date.now() - started < 5000, 'shut down promptly');
    assert.match(broker.stderr, /SIGTERM: shutting down/);
  });

  it('registers and unregisters tickers with the broker, and shows services in `health`', async () => {
    const env = { REDIS_URL: server.url };
    const nobody = await runCli(['register', 'AAPL'], env);
    assert.equal(nobody.code, 5, 'no broker is listening yet');
    assert.match(nobody.stderr, /No broker is listening.*tickbus broker/);

    const broker = new CliProcess(['broker', '--port', '0', '--rate', '20'], env);
    await broker.waitFor(/health (http:\/\/\S+)\/health/);
    const reg = await runCli(['register', ' aapl ', '--client-id', 'cli-bot', '--ttl', '60'], env);
    assert.equal(reg.code, 0, reg.stderr);
    assert.match(reg.stdout, /registered AAPL \(1 receiver\)/);
    await waitFor(() => server.cli('ZRANGE', 'tickbus:{broker}:leases', '0', '-1') === 'AAPL|cli-bot', 'the lease in Redis');
    const bad = await runCli(['register', 'AAPL*'], env);
    assert.equal(bad.code, 3);

    await waitFor(() => server.cli('HLEN', 'tickbus:{health}:heartbeats') === '1', 'a heartbeat');
    const health = await runCli(['health'], env);
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stdout, /^Redis redis:\/\/127\.0\.0\.1:\d+\/0: ping [\d.]+ ms, memory \S+, \d+ clients/);
    assert.match(health.stdout, /broker\s+\S+:\d+\s+alive\s+ok/);
    const json = JSON.parse((await runCli(['health', '--json'], env)).stdout) as { services: Array<{ service: string; liveness: string; details: { ticker_list: string[] } }> };
    assert.equal(json.services[0]?.service, 'broker');
    assert.equal(json.services[0]?.liveness, 'alive');

    const unreg = await runCli(['unregister', 'AAPL', '--client-id', 'cli-bot'], env);
    assert.equal(unreg.code, 0, unreg.stderr);
    await waitFor(() => server.cli('ZCARD', 'tickbus:{broker}:leases') === '0', 'the lease released');
    assert.equal(await broker.stop('SIGTERM'), 0);
  });

  it('`npm start` runs `tickbus up`', async () => {
    const start = new CliProcess([], { REDIS_URL: server.url }, ['npm', 'start', '--silent', '--', '--port', '0', '--tickers', 'NPM']);
    try {
      await start.waitFor(/tickbus up: using Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\)/);
      await start.waitFor(/broker streaming NPM from the sim feed/);
    } catch (error) {
      // A failed wait must not leave npm and tickbus running: the file would never end.
      await start.stop('SIGKILL');
      throw error;
    }
    await start.stop('SIGINT'); // npm itself dies of the signal; tickbus shuts down in order
    // tickbus up starts a broker, the pattern library, a backtest worker and a gateway: on a
    // loaded machine it may take longer than the default wait to see the signal.
    await waitFor(() => /SIGINT: shutting down/.test(start.stderr), 'tickbus to shut down', 20_000);
  });

  it('`up` says which Redis it uses and streams its starting tickers', async () => {
    const up = new CliProcess(['up', '--port', '0', '--tickers', 'AAPL,MSFT', '--rate', '20'], { REDIS_URL: server.url });
    await up.waitFor(/using Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\)/);
    const [, url] = await up.waitFor(/health +(http:\/\/\S+)\/health/);
    const health = async () => (await (await fetch(`${url}/health`)).json()) as { ticker_list: string[]; status: string; gateway: { connections: number } };
    await waitFor(async () => (await health()).ticker_list.join() === 'AAPL,MSFT', 'AAPL and MSFT streaming');
    assert.equal((await health()).status, 'ok');
    assert.equal((await health()).gateway.connections, 0, 'the gateway runs beside the broker');
    assert.match(up.stderr, new RegExp(`dashboard ${url}/`));
    assert.match(await (await fetch(`${url}/`)).text(), /<title>tickbus/);
    assert.match(await (await fetch(`${url}/metrics`)).text(), /tickbus_gateway_connections 0/);
    assert.equal(await up.stop('SIGINT'), 0);
  });
  it('`tail --after` replays a ticker\'s history after a position, then goes live', async () => {
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    try {
      const receipts = [];
      for (let n = 0; n < 5; n++) receipts.push(await bus.publish(TickerUpdates.of({ ticker: 'HIST' }), { type: 'price', timestamp: '2025-04-24T09:45:00.000Z', symbol: 'HIST', price: 100 + n }));
      const tail = await runCli(['tail', 'TICKER_UPDATES_HIST', '--after', receipts[1]?.position as string, '--json', '-n', '3'], { REDIS_URL: server.url });
      assert.equal(tail.code, 0, tail.stderr);
      const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as { data: { price: number }; position: string; replayed: boolean });
      assert.deepEqual(lines.map((l) => l.data.price), [102, 103, 104]);
      assert.deepEqual(lines.map((l) => l.position), receipts.slice(2).map((r) => r.position));
      assert.ok(lines.every((l) => l.replayed));
      assert.match(tail.stderr, /replayed 3 message\(s\) from history/);
      const bad = await runCli(['tail', 'TICKER_UPDATES_HIST', '--after', 'yesterday'], { REDIS_URL: server.url });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /resumeAfter must be a position/);
    } finally {
      await bus.close();
    }
  });

  it('issue 14 fault 7: `tail --after` with a position past what Redis takes is a usage error in our words, not a tail that never replays', async () => {
    const tail = await runCli(['tail', 'TICKER_UPDATES_HIST', '--after', '99999999999999999999999-99999999999999999999', '-n', '1'], { REDIS_URL: server.url }, 10_000);
    assert.equal(tail.code, 2, tail.stderr);
    assert.match(tail.stderr, /must be a position/);
    assert.doesNotMatch(tail.stderr, /ERR|stream command/);
  });

  it('`dead-letters` lists what consumers gave up on, and `--requeue` puts it back', async () => {
    const bus = createBus({ redis: { url: server.url }, catalogs: [deliveryCatalog], logger: silentLogger });
    try {
      const ref = Work.of({ queue: 'cli' });
      let healthy = false;
      const done: number[] = [];
      const consumer = await bus.consume(
        ref,
        (d) => {
          if (!healthy) throw new Error('pricing service down');
          done.push(d.n);
        },
        { group: 'g', maxAttempts: 1 },
      );
      consumer.on('error', () => undefined);
      await bus.publish(ref, { n: 7 });
      await waitFor(() => consumer.stats.deadLettered === 1, 'the dead letter');
      const list = await runCli(['dead-letters', ref.name, '--json'], { REDIS_URL: server.url });
      assert.equal(list.code, 0, list.stderr);
      const [letter] = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
      assert.equal(letter?.error?.includes('pricing service down'), true);
      assert.equal(letter?.attempts, '1');
      assert.equal(letter?.code, 'TB_ERR_HANDLER_FAILED');
      healthy = true;
      const requeue = await runCli(['dead-letters', ref.name, '--requeue'], { REDIS_URL: server.url });
      assert.equal(requeue.code, 0, requeue.stderr);
      assert.match(requeue.stdout, /requeued as \d+-\d+/);
      await waitFor(() => done.length === 1, 'the requeued message handled');
      assert.deepEqual(done, [7]);
      assert.equal(server.cli('XLEN', deadLetterKey(ref.name)).trim(), '0');
      const notDurable = await runCli(['dead-letters', 'TICKER_UPDATES_AAPL'], { REDIS_URL: server.url });
      assert.equal(notDurable.code, 2);
      assert.match(notDurable.stderr, /not a durable channel/);
    } finally {
      await bus.close();
    }
  });
  it('`jobs` submits, shows, lists and cancels backtest jobs, with exit codes for bad input and unknown jobs', async () => {
    const env = { REDIS_URL: server.url };
    const submit = await runCli(['jobs', 'submit', '--user', 'user_cli', '--symbols', 'aapl,GOOGL', '--from', '2024-01-01', '--to', '2024-06-30', '--patterns', 'Doji', '--params', '{"initial_capital":1000}', '--json'], env);
    assert.equal(submit.code, 0, submit.stderr);
    const job = JSON.parse(submit.stdout) as { job_id: string; status: string; request: { symbols: string[] } };
    assert.equal(job.status, 'submitted');
    assert.deepEqual(job.request.symbols, ['AAPL', 'GOOGL']);
    const status = await runCli(['jobs', 'status', job.job_id], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^${job.job_id}\\s+submitted\\s+0%\\s+user user_cli`));
    const list = await runCli(['jobs', 'list', '--user', 'user_cli'], env);
    assert.match(list.stdout, new RegExp(job.job_id));
    const cancel = await runCli(['jobs', 'cancel', job.job_id], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout.trim(), `${job.job_id}: cancelled`);
    const bad = await runCli(['jobs', 'submit', '--user', 'u', '--symbols', 'AAPL', '--from', '01/01/2024', '--to', '2024-06-30'], env);
    assert.equal(bad.code, 3, 'an invalid request exits 3');
    assert.match(bad.stderr, /start_date/);
    const missing = await runCli(['jobs', 'status', 'bt_nope'], env);
    assert.equal(missing.code, 6);
    assert.match(missing.stderr, /No job "bt_nope"/);
    const usage = await runCli(['jobs', 'submit', '--user', 'u'], env);
    assert.equal(usage.code, 2);
  });
});
