// TickStock end to end (issue 16), on a real redis-server: seed 003's JobManager, in Python
// and unchanged (test/python/seed003_job_manager.py), submits and cancels backtests with
// PUBLISH; tickbus's job bridges queue each once, and the reference backtest worker runs it
// over the simulated market's history, with progress and results on the seed's channels.
// Also: a job through JobService (the stream path) still runs, on a `tickbus jobs worker`
// process, and that command's help shows examples.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { createBus, tickstock, type TickBus } from '../../src/index.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { jobKey, streamKey, userJobsKey } from '../../src/core/keys.ts';
import { JobStore } from '../../src/jobs/job-store.ts';
import { JobService } from '../../src/jobs/job-service.ts';
import { startBacktestRuntime, type BacktestRuntime } from '../../src/tickstock/backtest-runtime.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { Inbox, sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { CliProcess, runCli, runProcess } from '../harness/cli.ts';

// Debian's interpreter, not a pyenv shim on PATH: python3-redis installs into it.
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../python/seed003_job_manager.py', import.meta.url));
const STREAM = streamKey(tickstock.BacktestJobs.template);

function requirePython(): void {
  const probe = spawnSync(PYTHON, ['-c', 'import redis'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) assert.fail(`${PYTHON} with redis-py is needed (apt-get install python3-redis): ${probe.error?.message ?? probe.stderr}`);
}

type Progress = { job_id: string; progress: number; status: string };
type Result = { job_id: string; status: string; error?: string; results?: Record<string, unknown> };

/** Seed 003's backtest request (its example), with a job id of the test's. */
const seedJob = (jobId: string, over: Record<string, unknown> = {}) => ({
  job_type: 'backtest',
  job_id: jobId,
  user_id: 'user_456',
  symbols: ['AAPL', 'GOOGL'],
  start_date: '2024-01-01',
  end_date: '2024-12-31',
  patterns: ['Doji', 'Hammer'],
  parameters: { initial_capital: 100000, position_size: 0.1 },
  ...over,
});

describe('TickStock backtests end to end (seed 003 JobManager → bridge → worker)', () => {
  let server: RedisServer;
  let raw: ReturnType<typeof createClient>;
  let watcher: TickBus;
  const progress = new Inbox<Progress>();
  const results = new Inbox<Result>();
  const runtimes: BacktestRuntime[] = [];

  const python = async (...args: string[]): Promise<void> => {
    const r = await runProcess(PYTHON, [SCRIPT, ...args], { REDIS_URL: server.url }, 30_000);
    assert.equal(r.code, 0, `seed003_job_manager.py ${args[0]} exited ${r.code}: ${r.stderr}`);
  };
  const runtime = async (name: string, over: { bridge?: boolean; worker?: boolean } = {}): Promise<BacktestRuntime> => {
    const rt = await startBacktestRuntime({ redis: { url: server.url }, logger: silentLogger, name, claimIdleMs: 5_000, ...over });
    runtimes.push(rt);
    return rt;
  };
  /** Entries of the job queue for one job id. */
  const queued = async (jobId: string): Promise<number> => {
    const entries = await raw.xRange(STREAM, '-', '+');
    return (entries ?? []).filter((e) => (JSON.parse(e.message.payload ?? '{}') as { job_id?: string }).job_id === jobId).length;
  };
  const resultOf = async (jobId: string, timeoutMs = 30_000): Promise<Result> => {
    await waitFor(() => results.items.some((r) => r.job_id === jobId), `the result of ${jobId}`, timeoutMs);
    return results.items.find((r) => r.job_id === jobId) as Result;
  };

  before(async () => {
    requirePython();
    server = await startRedis();
    raw = createClient({ url: server.url });
    await raw.connect();
    watcher = createBus({ redis: { url: server.url }, logger: silentLogger });
    await watcher.subscribe(tickstock.BacktestProgress, (p) => progress.push(p));
    await watcher.subscribe(tickstock.BacktestResults, (r) => results.push(r));
  });
  afterEach(async () => {
    for (const rt of runtimes.splice(0)) await rt.close();
  });
  after(async () => {
    await watcher?.close();
    await raw?.quit();
    await server?.stop();
  });

  it('`tickbus jobs worker --help` shows its options and examples', async () => {
    const r = await runCli(['jobs', 'worker', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const text of ['--replay <file>', '--name <name>', '--no-bridge', '--redis-url', 'Examples:', '$ tickbus jobs worker']) assert.ok(r.stdout.includes(text), `help mentions ${text}:\n${r.stdout}`);
  });

  it("runs a job JobManager submitted exactly once with two bridges, with progress, per-pattern results and a completed record", async () => {
    const [a, b] = [await runtime('bt-a'), await runtime('bt-b')];
    const id = 'bt_seed_once';
    await python('submit', JSON.stringify(seedJob(id)));
    const result = await resultOf(id);
    assert.equal(result.status, 'completed', JSON.stringify(result));
    // One append to the queue, one run.
    assert.equal(await queued(id), 1);
    assert.equal(a.bridge!.stats.queued + b.bridge!.stats.queued, 1);
    assert.equal(a.bridge!.stats.duplicates + b.bridge!.stats.duplicates, 1);
    assert.equal(results.items.filter((r) => r.job_id === id).length, 1);
    // Progress: rising, from the start to 1.
    const mine = progress.items.filter((p) => p.job_id === id);
    const values = mine.map((p) => p.progress);
    assert.ok(values.length >= 5, `several progress reports: ${values.join(', ')}`);
    for (let i = 1; i < values.length; i++) assert.ok((values[i] as number) > (values[i - 1] as number), `progress rises: ${values.join(', ')}`);
    assert.deepEqual(mine.at(-1), { ...mine.at(-1), progress: 1, status: 'completed' });
    // The result: trades, P&L and hit rate, per pattern.
    const res = result.results as { summary: Record<string, number>; by_pattern: Record<string, Record<string, number>>; history: Record<string, unknown>; symbols: string[] };
    assert.deepEqual(res.symbols, ['AAPL', 'GOOGL']);
    assert.deepEqual(Object.keys(res.by_pattern).sort(), ['Doji', 'Hammer']);
    for (const stats of Object.values(res.by_pattern)) for (const field of ['trades', 'total_pnl', 'hit_rate', 'detections']) assert.equal(typeof stats[field], 'number', field);
    const hammer = res.by_pattern.Hammer as Record<string, number>;
    assert.ok((hammer.trades as number) > 0, 'Hammers were traded');
    assert.equal(res.summary.total_trades, hammer.trades, 'Doji is neutral: counted, never traded');
    assert.equal(res.history.source, 'simulated');
    // The record JobManager wrote, completed by the worker, and listed for its user.
    const rec = await raw.hGetAll(jobKey(id));
    assert.equal(rec.status, 'completed');
    assert.equal(rec.attempts, '1');
    assert.equal(rec.progress, '1');
    assert.ok(rec.worker === 'bt-a' || rec.worker === 'bt-b', rec.worker);
    assert.match(rec.created_at ?? '', /^\d+\.\d+$/, "JobManager's created_at is kept");
    assert.deepEqual((JSON.parse(rec.result ?? '{}') as { summary: unknown }).summary, res.summary);
    assert.ok((await raw.zRange(userJobsKey('user_456'), 0, -1)).includes(id), "in the user's index");
    assert.ok((await raw.ttl(jobKey(id))) > 0);
  });

  it('a job JobManager sends twice (a resend) is queued and run once', async () => {
    const [a, b] = [await runtime('bt-a'), await runtime('bt-b')];
    const id = 'bt_seed_resend';
    await python('submit', JSON.stringify(seedJob(id, { symbols: ['MSFT'], start_date: '2024-03-01', end_date: '2024-03-29' })));
    assert.equal((await resultOf(id)).status, 'completed');
    await python('submit', JSON.stringify(seedJob(id, { symbols: ['MSFT'], start_date: '2024-03-01', end_date: '2024-03-29' })));
    await waitFor(() => a.bridge!.stats.duplicates + b.bridge!.stats.duplicates === 3, 'both bridges heard the resend');
    await sleep(300);
    assert.equal(await queued(id), 1);
    assert.equal(results.items.filter((r) => r.job_id === id).length, 1);
    assert.equal(progress.items.filter((p) => p.job_id === id && p.progress === 0).length, 1, 'started once');
  });

  it('a malformed PUBLISH is counted and ignored; the bridge keeps serving', async () => {
    const rt = await runtime('bt-a');
    await python('publish-raw', 'not json {');
    await python('publish-raw', JSON.stringify({ job_type: 'backtest', job_id: 'bt_bad', symbols: [] }));
    await waitFor(() => rt.bridge!.stats.invalid === 2, 'both refused');
    assert.equal(await queued('bt_bad'), 0);
    const id = 'bt_after_garbage';
    await python('submit', JSON.stringify(seedJob(id, { symbols: ['IBM'], start_date: '2024-02-05', end_date: '2024-02-09' })));
    assert.equal((await resultOf(id)).status, 'completed');
    assert.deepEqual(rt.bridge!.stats, { received: 3, queued: 1, duplicates: 0, invalid: 2, failed: 0 });
  });

  it("JobManager's cancel_job on a job not yet started: it never runs and ends cancelled", async () => {
    const bridgeOnly = await runtime('bridge-only', { worker: false });
    const id = 'bt_seed_cancel';
    await python('submit', JSON.stringify(seedJob(id)));
    await waitFor(async () => (await queued(id)) === 1, 'the job queued');
    assert.equal(bridgeOnly.bridge!.stats.queued, 1);
    await python('cancel', id);
    assert.equal(await raw.hGet(jobKey(id), 'status'), 'cancelling');
    await runtime('bt-late', { bridge: false });
    const result = await resultOf(id);
    assert.equal(result.status, 'cancelled');
    const rec = await raw.hGetAll(jobKey(id));
    assert.equal(rec.status, 'cancelled');
    assert.equal(rec.started_at, undefined, 'never started');
    assert.equal(progress.items.filter((p) => p.job_id === id && p.status === 'running').length, 0, 'no progress: it never ran');
  });

  it('a job submitted through JobService (the stream path) runs on a `tickbus jobs worker` process', async () => {
    const worker = new CliProcess(['jobs', 'worker', '--no-bridge', '--name', 'cli-worker', '--redis-url', server.url]);
    try {
      await worker.waitFor(/tickbus jobs worker: cli-worker, bridge off/, 'stderr', 20_000);
      const bus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'tickstock_app' });
      const store = await JobStore.connect(resolveRedisConfig({ url: server.url }));
      try {
        const job = await new JobService(bus, store).submit({ user_id: 'user_789', symbols: ['AAPL'], start_date: '2024-06-03', end_date: '2024-06-28', patterns: ['Hammer', 'Bullish Engulfing'] });
        const result = await resultOf(job.job_id);
        assert.equal(result.status, 'completed', JSON.stringify(result));
        const rec = await store.get(job.job_id);
        assert.equal(rec?.status, 'completed');
        assert.equal(rec?.worker, 'cli-worker');
        assert.equal(rec?.attempts, 1);
        assert.equal(await queued(job.job_id), 1);
        assert.equal(await raw.exists(`tickbus:job-bridge:{${job.job_id}}`), 0, 'no bridge was involved');
      } finally {
        await store.close();
        await bus.close();
      }
    } finally {
      assert.equal(await worker.stop(), 0, worker.stderr);
    }
  });
});
