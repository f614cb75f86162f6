// Backtest jobs over the bus (seed 003) on a real redis-server: submitted, recorded, taken by
// one worker, progress and results on the seed's channels, cancelled before or during a run,
// and taken over (or failed) when a worker process dies mid-job.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ErrorCode, ValidationError, createBus, tickstock, type BusError, type TickBus } from '../../src/index.ts';
import { resolveRedisConfig } from '../../src/core/config.ts';
import { JobStore, type JobRecord } from '../../src/jobs/job-store.ts';
import { jobKey } from '../../src/core/keys.ts';
import { JobService, type BacktestRequest } from '../../src/jobs/job-service.ts';
import { JobWorker, type JobHandler } from '../../src/jobs/job-worker.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { CliProcess } from '../harness/cli.ts';
import { printFigures } from '../harness/delivery.ts';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { Gateway } from '../../src/gateway/gateway.ts';

const WORKER_SCRIPT = fileURLToPath(new URL('../fixtures/job-worker.ts', import.meta.url));

const request = (over: Partial<BacktestRequest> = {}): BacktestRequest => ({
  user_id: 'user_456',
  symbols: ['AAPL', 'GOOGL'],
  start_date: '2024-01-01',
  end_date: '2024-12-31',
  patterns: ['Doji', 'Hammer'],
  parameters: { initial_capital: 100000 },
  ...over,
});

describe('backtest jobs', () => {
  let server: RedisServer;
  const closers: Array<() => Promise<void>> = [];
  const workers: Array<() => Promise<void>> = [];
  let service: JobService;
  let watcher: TickBus;
  const progress = new Inbox<{ job_id: string; progress: number; status: string }>();
  const results = new Inbox<{ job_id: string; status: string; error?: string; results?: Record<string, unknown>; timestamp: number }>();

  async function store(): Promise<JobStore> {
    const s = await JobStore.connect(resolveRedisConfig({ url: server.url }));
    closers.push(() => s.close());
    return s;
  }

  async function worker(handler: JobHandler, options: { name?: string; claimIdleMs?: number; maxAttempts?: number } = {}): Promise<JobWorker> {
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: options.name ?? 'worker' });
    const w = new JobWorker({ bus, store: await store(), logger: silentLogger, handler, claimIdleMs: options.claimIdleMs ?? 2_000, ...options });
    // Every test's workers are gone before the next: they all join the one group.
    workers.push(async () => {
      await w.close();
      await bus.close();
    });
    return w.start();
  }

  const record = (id: string): Promise<JobRecord> => service.status(id);
  const resultOf = async (id: string) => {
    await waitFor(() => results.items.some((r) => r.job_id === id), `the result of ${id}`, 10_000);
    return results.items.find((r) => r.job_id === id);
  };

  before(async () => {
    server = await startRedis();
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'tickstock_app' });
    closers.push(() => bus.close());
    service = new JobService(bus, await store());
    watcher = createBus({ redis: { url: server.url }, logger: silentLogger });
    closers.push(() => watcher.close());
    await watcher.subscribe(tickstock.BacktestProgress, (p) => progress.push(p));
    await watcher.subscribe(tickstock.BacktestResults, (r) => results.push(r));
  });
  afterEach(async () => {
    for (const close of workers.splice(0)) await close();
  });
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await server.stop();
  });

  it('submits a job: validated, recorded for 24 hours, queued durably even with no worker running', async () => {
    const job = await service.submit(request({ job_id: 'bt_first' }));
    assert.deepEqual({ id: job.job_id, status: job.status, user: job.user_id, progress: job.progress }, { id: 'bt_first', status: 'submitted', user: 'user_456', progress: 0 });
    const ttl = Number(server.cli('TTL', jobKey('bt_first')));
    assert.ok(ttl > 86_000 && ttl <= 86_400, `a 24-hour TTL, got ${ttl}`);
    assert.equal(server.cli('XLEN', 'tickbus:{tickstock.jobs.backtest}:stream').trim(), '1', 'waiting in the durable stream');
    await assert.rejects(service.submit(request({ job_id: 'bt_first' })), (e: BusError) => e.code === ErrorCode.DuplicateJob);
    await assert.rejects(service.submit(request({ symbols: [] })), ValidationError);
    await assert.rejects(service.status('bt_nope'), (e: BusError) => e.code === ErrorCode.UnknownJob);

    // A worker that starts later takes it, reports progress, and the record follows.
    await worker(async ({ progress: report }) => {
      await report(0.25, 'loading bars');
      await report(0.75);
      return { trades: 12, pnl: 1234.5 };
    });
    const result = await resultOf('bt_first');
    assert.deepEqual(result, { job_id: 'bt_first', status: 'completed', results: { trades: 12, pnl: 1234.5 }, timestamp: result?.timestamp });
    const done = await record('bt_first');
    assert.equal(done.status, 'completed');
    assert.equal(done.progress, 1);
    assert.deepEqual(done.result, { trades: 12, pnl: 1234.5 });
    assert.ok(done.started_at && done.finished_at && done.attempts === 1);
    assert.deepEqual(progress.items.filter((p) => p.job_id === 'bt_first').map((p) => [p.progress, p.status]), [[0, 'running'], [0.25, 'running'], [0.75, 'running'], [1, 'completed']]);
    assert.deepEqual((await service.list('user_456')).map((j) => j.job_id), ['bt_first']);
  });

  it('gives each job to one worker, and reports a failing one as failed', async () => {
    const ran = new Map<string, string[]>();
    const handler = (name: string): JobHandler => async ({ job }) => {
      ran.set(job.job_id, [...(ran.get(job.job_id) ?? []), name]);
      if (job.parameters?.explode) throw new Error('no data for GOOGL in 2024');
      await new Promise((r) => setTimeout(r, 20));
      return { ok: true };
    };
    await worker(handler('w2'), { name: 'w2' });
    await worker(handler('w3'), { name: 'w3' });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await service.submit(request({ user_id: 'user_many', parameters: { explode: i === 3 } }))).job_id);
    await waitFor(async () => (await Promise.all(ids.map((id) => record(id)))).every((r) => r.status === 'completed' || r.status === 'failed'), 'all ten to finish', 15_000);
    for (const id of ids) assert.equal(ran.get(id)?.length, 1, `${id} ran once`);
    const failed = await record(ids[3] as string);
    assert.deepEqual({ status: failed.status, error: failed.error }, { status: 'failed', error: 'no data for GOOGL in 2024' });
    assert.equal((await resultOf(ids[3] as string))?.status, 'failed');
    assert.equal((await service.list('user_many')).length, 10);
  });

  it('cancels a running job: its worker stops and reports cancelled', async () => {
    const started = new Inbox<string>();
    await worker(async ({ job, signal, progress: report }) => {
      started.push(job.job_id);
      await report(0.1);
      await new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
      return undefined;
    });
    const job = await service.submit(request({ job_id: 'bt_cancel_running', user_id: 'user_c' }));
    await started.waitFor(1);
    await waitFor(async () => (await record(job.job_id)).status === 'running', 'running');
    assert.equal(await service.cancel(job.job_id), 'cancelling');
    assert.equal((await resultOf(job.job_id))?.status, 'cancelled');
    assert.equal((await record(job.job_id)).status, 'cancelled');
    assert.ok(progress.items.some((p) => p.job_id === job.job_id && p.status === 'cancelled'));
  });

  it('never starts a job cancelled before a worker took it', async () => {
    // No worker for this group yet: the job waits in the stream.
    const lonely = createBus({ redis: { url: server.url }, logger: silentLogger });
    closers.push(() => lonely.close());
    const job = await service.submit(request({ job_id: 'bt_cancel_early', user_id: 'user_c' }));
    assert.equal(await service.cancel(job.job_id), 'cancelled');
    assert.equal(await service.cancel(job.job_id), 'cancelled', 'cancelling again says so');
    let ran = false;
    await worker(() => {
      ran = true;
      return undefined;
    }, { name: 'late' });
    await waitFor(() => server.cli('XPENDING', 'tickbus:{tickstock.jobs.backtest}:stream', 'backtest-workers').startsWith('0'), 'the request taken and dropped');
    assert.equal(ran, false);
    assert.equal((await record(job.job_id)).status, 'cancelled');
  });

  it('a worker killed mid-job: another takes the job over after the idle time', async () => {
    const victim = new CliProcess([], {}, [process.execPath, '--import', 'tsx', WORKER_SCRIPT, server.url, 'victim', '500']);
    closers.push(() => Promise.resolve(void victim.child.kill('SIGKILL')));
    await waitFor(() => victim.stdout.includes('ready'), 'the victim worker', 20_000);
    const job = await service.submit(request({ job_id: 'bt_orphan', user_id: 'user_k' }));
    await waitFor(() => victim.stdout.includes('running bt_orphan'), 'the victim to take the job');
    assert.equal((await record(job.job_id)).status, 'running');
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedAt = Date.now();
    const attempts: number[] = [];
    await worker(({ attempt }) => {
      attempts.push(attempt);
      return { rescued: true };
    }, { name: 'rescuer', claimIdleMs: 500 });
    const result = await resultOf(job.job_id);
    assert.equal(result?.status, 'completed');
    const rescued = await record(job.job_id);
    assert.deepEqual({ status: rescued.status, attempts: rescued.attempts, worker: rescued.worker }, { status: 'completed', attempts: 2, worker: 'rescuer' });
    assert.deepEqual(attempts, [2]);
    printFigures('jobs: worker killed mid-job', { taken_over_ms: Date.now() - killedAt, attempts: rescued.attempts });
  });

  it('a job whose workers keep dying is failed after its attempts, never left running', async () => {
    const victim = new CliProcess([], {}, [process.execPath, '--import', 'tsx', WORKER_SCRIPT, server.url, 'victim2', '500']);
    closers.push(() => Promise.resolve(void victim.child.kill('SIGKILL')));
    await waitFor(() => victim.stdout.includes('ready'), 'the victim worker', 20_000);
    const job = await service.submit(request({ job_id: 'bt_doomed', user_id: 'user_k' }));
    await waitFor(() => victim.stdout.includes('running bt_doomed'), 'the victim to take the job');
    victim.child.kill('SIGKILL');
    await victim.exited;
    let ran = false;
    // One attempt allowed: the one the dead worker used.
    await worker(() => {
      ran = true;
      return undefined;
    }, { name: 'strict', claimIdleMs: 500, maxAttempts: 1 });
    const result = await resultOf(job.job_id);
    assert.equal(result?.status, 'failed');
    assert.match(result?.error ?? '', /gave up after 1 attempts/);
    assert.equal((await record(job.job_id)).status, 'failed');
    assert.equal(ran, false, 'not run again');
  });
  it("the gateway forwards a user's job progress and result to that user only", async () => {
    const secret = 'a-test-secret-that-is-long-enough-1234';
    const gwBus = createBus({ redis: { url: server.url }, logger: silentLogger, sender: 'gateway' });
    const jobStore = await store();
    const open = new Gateway({ bus: gwBus, logger: silentLogger, port: 0, batchMs: 20, jobOwner: async (id) => (await jobStore.get(id))?.user_id });
    const secured = new Gateway({ bus: gwBus, logger: silentLogger, port: 0, batchMs: 20, auth: { secret }, jobOwner: async (id) => (await jobStore.get(id))?.user_id });
    closers.push(async () => {
      await open.close();
      await secured.close();
      await gwBus.close();
    });
    const wsUrl = (u: string) => `${u.replace('http', 'ws')}/ws`;
    const openUrl = wsUrl((await open.listen()).url);
    const securedUrl = wsUrl((await secured.listen()).url);
    type Msg = { type: string; code?: string; updates?: Array<{ channel: string; data: { job_id: string; status: string; progress?: number } }> };
    const connect = async (url: string, subscribe: Record<string, unknown>) => {
      const ws = new WebSocket(url);
      const got = new Inbox<Msg>();
      ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString('utf8')) as Msg));
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ op: 'subscribe', jobs: true, ...subscribe }));
      await waitFor(() => got.items.some((m) => m.type === 'subscribed' || m.type === 'error'), 'the reply');
      closers.push(() => Promise.resolve(ws.terminate()));
      return got;
    };
    const alice = await connect(openUrl, { user: 'alice' });
    const bob = await connect(openUrl, { user: 'bob' });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const aliceJwt = await connect(`${securedUrl}?token=${token}`, {});
    const impostor = await connect(`${securedUrl}?token=${token}`, { user: 'bob' });
    assert.equal(impostor.items.find((m) => m.type === 'error')?.code, 'TB_ERR_FORBIDDEN', "a token for alice cannot follow bob's jobs");

    await worker(async ({ progress: report }) => {
      await report(0.5);
      return { ok: 1 };
    });
    const mine = await service.submit(request({ job_id: 'bt_alice', user_id: 'alice' }));
    const updates = (got: Inbox<Msg>) => got.items.flatMap((m) => (m.type === 'batch' ? (m.updates ?? []) : []));
    for (const got of [alice, aliceJwt]) {
      await waitFor(() => updates(got).some((u) => u.channel === 'tickstock.events.backtesting.results'), "alice's result");
      assert.deepEqual(updates(got).map((u) => [u.data.job_id, u.data.status, u.data.progress]), [[mine.job_id, 'running', 0], [mine.job_id, 'running', 0.5], [mine.job_id, 'completed', 1], [mine.job_id, 'completed', undefined]]);
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(updates(bob), [], "bob sees nothing of alice's job");
  });
});
