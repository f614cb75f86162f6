// `tickbus jobs`: submit a backtest job, follow its status, cancel it, list a user's jobs,
// and run the reference backtest worker with the job bridge (seed 003; docs/jobs.md).
import { accessSync, constants, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveRedisConfig } from '../../core/config.ts';
import type { JobStore, JobRecord } from '../../jobs/job-store.ts';
import type { JobService, BacktestRequest } from '../../jobs/job-service.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';
import { exitSoonAfter, guardProcess, runUntilSignal, startupFailure } from './service.ts';

/** `tickbus jobs worker`'s defaults. */
export const JOBS_WORKER_DEFAULTS = Object.freeze({
  /** The simulated market's seed (the sim feed's). */
  seed: 42,
  /** Bars per symbol at most (src/tickstock/history.ts coarsens the interval to fit). */
  maxBars: 25_000,
  /** How long connecting to Redis may take at start-up. */
  connectTimeoutMs: 5_000,
});

interface WorkerCliOptions extends ConnectionOptions {
  replay?: string;
  name?: string;
  bridge: boolean;
  seed: string;
  maxBars: string;
}

function whole(value: string, name: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`${name} must be a whole number of at least ${min}, got "${value}".`, ExitCode.Usage);
  return n;
}

interface JobsOptions extends ConnectionOptions {
  json?: boolean;
}

async function withService<T>(options: JobsOptions, run: (service: JobService) => Promise<T>): Promise<T> {
  const [{ JobStore }, { JobService }] = await Promise.all([import('../../jobs/job-store.ts'), import('../../jobs/job-service.ts')]);
  const bus = await commandBus(options, 'tickbus-cli');
  let store: JobStore | undefined;
  try {
    await bus.connect();
    store = await JobStore.connect(resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {}), 'tickbus:cli');
    return await run(new JobService(bus, store));
  } finally {
    await store?.close();
    await bus.close();
  }
}

function show(job: JobRecord, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(job)}\n`);
    return;
  }
  const pct = `${Math.round(job.progress * 100)}%`;
  const tail = job.error ? ` error: ${job.error}` : job.message ? ` (${job.message})` : '';
  process.stdout.write(`${job.job_id}  ${job.status.padEnd(10)} ${pct.padStart(4)}  user ${job.user_id}  created ${job.created_at}${job.attempts > 1 ? `  attempts ${job.attempts}` : ''}${tail}\n`);
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('Backtest jobs: submit, follow, cancel, list (seed 003).');
  jobs.addHelpText(
    'after',
    `
Examples:
  $ tickbus jobs submit --user user_456 --symbols AAPL,GOOGL --from 2024-01-01 --to 2024-12-31 --patterns Doji,Hammer
  $ tickbus jobs status bt_3f2a…
  $ tickbus jobs cancel bt_3f2a…
  $ tickbus jobs list --user user_456
  $ tickbus jobs worker`,
  );

  addConnectionOptions(
    jobs
      .command('submit')
      .description('Submit a backtest job (validated, recorded for 24 hours, queued for a worker).')
      .option('--user <id>', 'the user the job belongs to')
      .option('--symbols <list>', 'symbols, comma-separated')
      .option('--from <date>', 'start date, YYYY-MM-DD')
      .option('--to <date>', 'end date, YYYY-MM-DD')
      .option('--patterns <list>', 'patterns to test, comma-separated', '')
      .option('--params <json>', 'job parameters, a JSON object')
      .option('--job-id <id>', 'the job id (default: a new one)')
      .option('--file <path>', 'the whole request as a JSON file (seed 003 format) instead of the options')
      .option('--json', 'print the record as JSON'),
  )
    .addHelpText('after', '\nExamples:\n  $ tickbus jobs submit --user user_456 --symbols AAPL,GOOGL --from 2024-01-01 --to 2024-12-31 --patterns Doji')
    .action(async (options: JobsOptions & { user?: string; symbols?: string; from?: string; to?: string; patterns: string; params?: string; jobId?: string; file?: string }) => {
      let request: BacktestRequest;
      if (options.file) {
        try {
          request = JSON.parse(readFileSync(options.file, 'utf8')) as BacktestRequest;
        } catch (error) {
          throw new CliError(`--file ${options.file}: ${(error as Error).message}`, ExitCode.Usage);
        }
      } else {
        if (!options.user || !options.symbols || !options.from || !options.to) throw new CliError('jobs submit needs --user, --symbols, --from and --to (or --file).', ExitCode.Usage);
        let parameters: Record<string, unknown> | undefined;
        if (options.params) {
          try {
            parameters = JSON.parse(options.params) as Record<string, unknown>;
          } catch (error) {
            throw new CliError(`--params is not JSON (${(error as Error).message}).`, ExitCode.Usage);
          }
        }
        const split = (s: string) => s.split(',').map((v) => v.trim()).filter(Boolean);
        request = { user_id: options.user, symbols: split(options.symbols).map((s) => s.toUpperCase()), start_date: options.from, end_date: options.to, patterns: split(options.patterns), ...(parameters ? { parameters } : {}), ...(options.jobId ? { job_id: options.jobId } : {}) };
      }
      const job = await withService(options, (s) => s.submit(request));
      show(job, options.json);
    });

  addConnectionOptions(jobs.command('status').description("A job's status, progress and result.").argument('<job-id>').option('--json', 'print the record as JSON'))
    .addHelpText('after', '\nExamples:\n  $ tickbus jobs status bt_3f2a… --json')
    .action(async (jobId: string, options: JobsOptions) => {
      const job = await withService(options, (s) => s.status(jobId));
      show(job, options.json);
      if (!options.json && job.result !== undefined) process.stdout.write(`result: ${JSON.stringify(job.result)}\n`);
    });

  addConnectionOptions(jobs.command('cancel').description('Cancel a job: one not yet started never starts; a running one is stopped by its worker.').argument('<job-id>'))
    .addHelpText('after', '\nExamples:\n  $ tickbus jobs cancel bt_3f2a…')
    .action(async (jobId: string, options: JobsOptions) => {
      const outcome = await withService(options, (s) => s.cancel(jobId));
      process.stdout.write(`${jobId}: ${outcome === 'cancelling' ? 'cancelling (its worker was told to stop)' : outcome}\n`);
    });

  addConnectionOptions(
    jobs
      .command('worker')
      .description("Run the reference backtest worker and the job bridge (seed 003's PUBLISHed jobs into the queue).")
      .option('--replay <file>', 'bars from the trades of this replay file (NDJSON or CSV, docs/feeds.md) instead of the simulated market')
      .option('--name <name>', "this worker's name in the backtest-workers group (default: host-pid)")
      .option('--no-bridge', 'only work: do not queue jobs published with PUBLISH tickstock.jobs.backtest (another process bridges them)')
      .option('--seed <n>', 'seed of the simulated market (same seed, symbol and dates: same bars)', String(JOBS_WORKER_DEFAULTS.seed))
      .option('--max-bars <n>', 'bars per symbol at most; longer ranges get coarser bars', String(JOBS_WORKER_DEFAULTS.maxBars)),
  )
    .addHelpText(
      'after',
      `
Takes jobs from the durable queue (consumer group backtest-workers: each job runs once,
on one worker) and backtests the job's patterns over its symbols and dates. The bridge
hears jobs published the seed's way (PUBLISH tickstock.jobs.backtest) and queues each once,
however many bridges run. Bars: the simulated market's seeded history (1-minute bars,
14:30-21:00 UTC on weekdays, coarser for long ranges), or --replay's trades.

Examples:
  $ tickbus jobs worker                                  # simulated history, with the bridge
  $ tickbus jobs worker --replay trades.ndjson --name bt-1
  $ tickbus jobs worker --no-bridge --redis-url redis://10.0.0.5:6379`,
    )
    .action(async (options: WorkerCliOptions) => {
      const seed = whole(options.seed, '--seed', 0);
      const maxBarsPerSymbol = whole(options.maxBars, '--max-bars', 1);
      // A replay file that is not there fails the start, not every job it would have run.
      if (options.replay !== undefined) {
        try {
          accessSync(options.replay, constants.R_OK);
        } catch {
          throw new CliError(`--replay ${options.replay}: no readable file there; give the path of an NDJSON or CSV trade file (docs/feeds.md).`, ExitCode.Usage);
        }
      }
      const [{ startBacktestRuntime }, { createLogger }] = await Promise.all([import('../../tickstock/backtest-runtime.ts'), import('../../core/logger.ts')]);
      const logger = createLogger('jobs-worker');
      const redis = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {});
      let runtime;
      try {
        runtime = await startBacktestRuntime({
          redis: options.redisUrl ? { url: options.redisUrl } : {},
          logger,
          bridge: options.bridge,
          seed,
          maxBarsPerSymbol,
          connectTimeoutMs: JOBS_WORKER_DEFAULTS.connectTimeoutMs,
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.replay === undefined ? {} : { replay: options.replay }),
        });
      } catch (error) {
        throw exitSoonAfter(startupFailure(error, redis.display));
      }
      const unguard = guardProcess(runtime.bus.context.background, logger);
      const bars = options.replay === undefined ? `simulated market (seed ${seed})` : `replay ${options.replay}`;
      process.stderr.write(`tickbus jobs worker: ${runtime.worker?.name ?? 'no worker'}, bridge ${runtime.bridge ? 'on' : 'off'}, bars from ${bars}, Redis ${runtime.bus.context.transport.target}\n`);
      const running = runtime;
      await runUntilSignal(async () => {
        await running.close();
        unguard();
      }, (line) => process.stderr.write(`tickbus jobs worker: ${line}\n`));
    });

  addConnectionOptions(jobs.command('list').description("A user's jobs of the last 24 hours, newest first.").requiredOption('--user <id>', 'the user').option('-n, --count <n>', 'at most this many', '50').option('--json', 'one JSON record a line'))
    .addHelpText('after', '\nExamples:\n  $ tickbus jobs list --user user_456')
    .action(async (options: JobsOptions & { user: string; count: string }) => {
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1) throw new CliError(`--count must be a whole number of at least 1, got "${options.count}".`, ExitCode.Usage);
      const list = await withService(options, (s) => s.list(options.user, count));
      for (const job of list) show(job, options.json);
      if (!options.json) process.stderr.write(`${list.length} job(s) of ${options.user}\n`);
    });
}
