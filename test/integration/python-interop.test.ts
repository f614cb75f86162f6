// A Python service (redis-py and json only: test/python/tickbus_wire.py) against a real
// broker and tickbus subscribers on a private Redis: the documented wire format, both ways.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { BrokerNotice } from '../../src/broker/broker-service.ts';
import { BrokerErrors, BrokerRegistration, type BrokerErrorMessage } from '../../src/catalogs/broker.ts';
import { createBus, streamKey, tickstock, ErrorCode, ValidationError, type BusError, type DataOf, type MessageContext, type TickBus } from '../../src/index.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { Work, deliveryCatalog } from '../fixtures/delivery-channels.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { JobStore } from '../../src/jobs/job-store.ts';
import { JobService } from '../../src/jobs/job-service.ts';
import { runProcess, type CliResult } from '../harness/cli.ts';

// Debian's interpreter, not a pyenv shim on PATH: python3-redis installs into it.
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../python/tickbus_wire.py', import.meta.url));
const INSTALL_HINT = 'Install it with: apt-get install python3-redis (.ci/run does this).';

let pythonProblem: string | undefined | null = null;

/**
 * A missing interpreter or module fails each test here with how to fix it; it is never a
 * skip. Probed once, asked by every test so that each one reports the failure.
 */
function requirePythonRedis(): void {
  if (pythonProblem === null) {
    const probe = spawnSync(PYTHON, ['-c', 'import redis'], { encoding: 'utf8' });
    if (probe.error) pythonProblem = `${PYTHON} was not found; the Python interop tests need it with redis-py. ${INSTALL_HINT}`;
    else if (probe.status !== 0) pythonProblem = `${PYTHON} cannot import redis (${probe.stderr.trim().split('\n').at(-1)}). ${INSTALL_HINT}`;
    else pythonProblem = undefined;
  }
  if (pythonProblem !== undefined) assert.fail(pythonProblem);
}

/**
 * Runs the script as a subprocess, asynchronously: the broker runs in this process, and a
 * blocking spawnSync would stop it from serving the script.
 */
function runPython(redisUrl: string, args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return runProcess(PYTHON, [SCRIPT, ...args], { REDIS_URL: redisUrl }, timeoutMs);
}

/** The script's stdout as JSON lines. */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Runs the script and checks it exited 0, showing its stderr when it did not. */
async function runOk(redisUrl: string, args: string[]): Promise<Record<string, unknown>[]> {
  const result = await runPython(redisUrl, args);
  assert.equal(result.code, 0, `tickbus_wire.py ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return jsonLines(result.stdout);
}

function assertPriceLines(lines: Record<string, unknown>[], symbol: string, count: number): void {
  assert.equal(lines.length, count, `expected ${count} price lines, got ${JSON.stringify(lines)}`);
  for (const line of lines) {
    assert.equal(line.symbol, symbol);
    assert.equal(typeof line.price, 'number');
    assert.ok((line.price as number) > 0, `a positive price: ${JSON.stringify(line)}`);
    assert.equal(typeof line.volume, 'number');
    assert.ok((line.volume as number) >= 0);
    assert.equal(line.sender, 'broker_service');
  }
}

describe('Python services on the wire format (redis-py)', () => {
  let server: RedisServer;
  let broker: BrokerRuntime;
  const buses: TickBus[] = [];
  const bus = async (): Promise<TickBus> => {
    const b = createBus({ redis: { url: server.url }, sender: 'interop_test', logger: silentLogger });
    buses.push(b);
    await b.connect();
    return b;
  };

  before(async () => {
    server = await startRedis();
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 50 }), logger: silentLogger });
  });
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
  });
  after(async () => {
    await broker?.stop();
    await server?.stop();
  });

  it("registers with the seed's plain form and reads the broker's price updates", async () => {
    requirePythonRedis();
    const lines = await runOk(server.url, ['register', 'AAPL', '3']);
    assertPriceLines(lines, 'AAPL', 3);
    assert.ok(broker.service.tickers.includes('AAPL'), 'the broker streams the ticker Python registered');
  });

  it('publishes a bare backtest progress message that tickbus validates and delivers', async () => {
    requirePythonRedis();
    const b = await bus();
    const received = new Inbox<{ data: DataOf<typeof tickstock.BacktestProgress>; ctx: MessageContext }>();
    const errors: BusError[] = [];
    b.on('error', (e) => errors.push(e));
    await b.subscribe(tickstock.BacktestProgress, (data, ctx) => received.push({ data, ctx }));

    const before = Date.now() / 1000;
    const [report] = await runOk(server.url, ['publish-progress', 'job-42']);
    assert.deepEqual(report, { channel: 'tickstock.events.backtesting.progress', receivers: 1 });

    const [got] = await received.waitFor(1, 'the progress message');
    assert.ok(got);
    const { timestamp, ...rest } = got.data;
    assert.deepEqual(rest, { job_id: 'job-42', progress: 0.5, status: 'running' });
    assert.ok(timestamp >= before - 1 && timestamp <= Date.now() / 1000 + 1, `time.time() seconds, got ${timestamp}`);
    assert.equal(got.ctx.channel, 'tickstock.events.backtesting.progress');
    assert.equal(got.ctx.sender, undefined, 'a bare channel has no envelope');
    assert.deepEqual(errors, []);
  });

  it('sends a registration with an unknown action: refused with TB_ERR_VALIDATION, and the broker keeps serving', async () => {
    requirePythonRedis();
    const b = await bus();
    const errors = new Inbox<BusError>();
    b.on('error', (e) => errors.push(e));
    const accepted: unknown[] = [];
    await b.subscribe(BrokerRegistration, (data) => accepted.push(data));
    const notices = new Inbox<BrokerErrorMessage>();
    await b.subscribe(BrokerErrors, (notice) => notices.push(notice));

    const [report] = await runOk(server.url, ['publish-invalid']);
    assert.deepEqual(report, { channel: 'BROKER_REGISTRATION', receivers: 2 }, 'the broker and this subscriber');

    const [error] = await errors.waitFor(1, 'the validation error event');
    assert.ok(error instanceof ValidationError, `a ValidationError, got ${String(error)}`);
    assert.equal(error.code, ErrorCode.Validation);
    assert.equal(error.channel, 'BROKER_REGISTRATION');
    assert.ok(
      error.issues.some((issue) => issue.path === 'action'),
      `the issue names the action field: ${JSON.stringify(error.issues)}`,
    );
    assert.deepEqual(accepted, [], 'the handler never sees invalid data');

    // The broker refused it too, and said so on BROKER_ERRORS...
    const [notice] = await notices.waitFor(1, 'the broker notice');
    assert.equal(notice?.code, BrokerNotice.InvalidRegistration);
    // ...and still serves: a new registration is honoured and streamed.
    assertPriceLines(await runOk(server.url, ['register', 'MSFT', '2']), 'MSFT', 2);
    assert.ok(broker.service.tickers.includes('MSFT'), 'the broker streams MSFT');
    assert.equal(broker.service.health().status, 'ok');
    assert.equal(errors.items.length, 1, 'one invalid message, one error event');
  });
  it('a Python producer appends to a durable channel that a tickbus consumer group handles and acknowledges', async () => {
    requirePythonRedis();
    const b = createBus({ redis: { url: server.url }, catalogs: [deliveryCatalog], logger: silentLogger });
    buses.push(b);
    const ref = Work.of({ queue: 'py-in' });
    const got = new Inbox<{ n: number; id: string | undefined; sender: string | undefined }>();
    await b.consume(ref, (d, ctx) => got.push({ n: d.n, id: ctx.id, sender: ctx.sender }), { group: 'ts', start: 'beginning' });
    const lines = await runOk(server.url, ['append-durable', ref.name, '5']);
    assert.equal(lines.length, 5);
    await got.waitFor(5, 'the five messages Python appended');
    assert.deepEqual(got.items.map((m) => m.n), [0, 1, 2, 3, 4]);
    assert.ok(got.items.every((m) => m.sender === 'py_bot' && m.id?.startsWith('py-')));
    await waitFor(() => server.cli('XPENDING', streamKey(ref.name), 'ts').startsWith('0'), 'every message acknowledged');
  });

  it('a Python consumer group takes what tickbus publishes on a durable channel', async () => {
    requirePythonRedis();
    const b = createBus({ redis: { url: server.url }, catalogs: [deliveryCatalog], sender: 'interop_test', logger: silentLogger });
    buses.push(b);
    const ref = Work.of({ queue: 'py-out' });
    const receipts = [];
    for (let n = 0; n < 5; n++) receipts.push(await b.publish(ref, { n }));
    const lines = await runOk(server.url, ['consume-durable', ref.name, 'py', '5']);
    assert.deepEqual(lines.map((l) => l.n), [0, 1, 2, 3, 4]);
    assert.deepEqual(lines.map((l) => l.position), receipts.map((r) => r.position));
    assert.ok(lines.every((l) => l.sender === 'interop_test' && typeof l.id === 'string'), 'the envelope, with its message id');
    assert.ok(server.cli('XPENDING', streamKey(ref.name), 'py').startsWith('0'), 'Python acknowledged each one');
  });
  it('a Python worker takes a backtest job from the group and reports progress and the result on the documented wire format', async () => {
    requirePythonRedis();
    const b = await bus();
    const store = await JobStore.connect(resolveRedisConfig({ url: server.url }));
    try {
      const service = new JobService(b, store);
      const progress = new Inbox<{ job_id: string; progress: number }>();
      const results = new Inbox<{ job_id: string; status: string; results?: Record<string, unknown> }>();
      await b.subscribe(tickstock.BacktestProgress, (p) => progress.push(p));
      await b.subscribe(tickstock.BacktestResults, (r) => results.push(r));
      const job = await service.submit({ user_id: 'user_py', symbols: ['AAPL', 'MSFT'], start_date: '2024-01-01', end_date: '2024-03-31', patterns: ['Doji'] });
      const [line] = await runOk(server.url, ['backtest-worker', '1']);
      assert.deepEqual({ id: line?.job_id, found: line?.found }, { id: job.job_id, found: 'submitted' });
      await progress.waitFor(2);
      assert.deepEqual(progress.items.map((p) => [p.job_id, p.progress]), [[job.job_id, 0.5], [job.job_id, 1]], 'validated by the catalog on the way in');
      const [result] = await results.waitFor(1);
      assert.deepEqual({ status: result?.status, results: result?.results }, { status: 'completed', results: { trades: 6, engine: 'python' } });
      const record = await service.status(job.job_id);
      assert.deepEqual({ status: record.status, result: record.result, worker: record.worker }, { status: 'completed', result: { trades: 6, engine: 'python' }, worker: 'py-worker' });
    } finally {
      await store.close();
    }
  });
});
