// A backtest worker (seed 003's TickStockPL side): a member of a consumer group on the
// durable channel tickstock.jobs.backtest, so each job goes to one worker. It moves the
// job's record to running, calls the handler with a progress reporter and an abort signal,
// and reports the result (or the error) on tickstock.events.backtesting.results, progress on
// ...progress, and the record follows. A cancel command on tickstock.jobs.system aborts the
// job it names; a job cancelled before it was taken is dropped without running.
//
// A worker that dies mid-job: its job stays pending in the group and another worker claims
// it after claimIdleMs and runs it again (attempt 2, …); after maxAttempts it is marked
// failed. A long job is kept from looking idle by keep-alives, so it is not claimed while
// its worker still works on it. A job whose handler throws is failed at once: a backtest
// that fails on its data fails again.
import { hostname } from 'node:os';
import { BusError, DeadLetteredError, preview } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Consumer, DeadLetter, DurableContext } from '../bus/consumer.ts';
import type { Subscription } from '../bus/subscriber.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BacktestJobs, BacktestProgress, BacktestResults, SystemJobs } from '../catalogs/tickstock.ts';
import type { DataOf } from '../core/channel.ts';
import type { JobStatus, JobStore } from './job-store.ts';
import { SpanKind, inSpan, tracingOn } from '../core/tracing.ts';

export type BacktestJob = DataOf<typeof BacktestJobs>;

export interface JobContext {
  readonly job: BacktestJob;
  /** 1 the first time; more when an earlier worker died on it. */
  readonly attempt: number;
  /** Aborted when the job is cancelled: stop, and return or throw. */
  readonly signal: AbortSignal;
  /** Reports progress (0.0 to 1.0) on the progress channel and in the record. */
  readonly progress: (fraction: number, message?: string) => Promise<void>;
}

type JobResults = Record<string, unknown> | undefined;

/** Runs one job; returns (or resolves with) its results, an object, or throws its error. */
export type JobHandler = (context: JobContext) => Promise<JobResults> | JobResults;

export interface JobWorkerOptions {
  bus: TickBus;
  store: JobStore;
  handler: JobHandler;
  logger: Logger;
  /** @default JOB_DEFAULTS.group ('backtest-workers') */
  group?: string;
  /** This worker's name in the group. @default <hostname>-<pid> */
  name?: string;
  /** A job held this long without a keep-alive is taken over by another worker. @default JOB_DEFAULTS.claimIdleMs (30000) */
  claimIdleMs?: number;
  /** How often to look for such jobs. @default claimIdleMs / 2 */
  claimIntervalMs?: number;
  /** Workers that may take a job (and die on it) before it is marked failed. @default JOB_DEFAULTS.maxAttempts (3) */
  maxAttempts?: number;
}

/** The worker's defaults, and the bounds of what it derives from claimIdleMs. */
export const JOB_DEFAULTS = Object.freeze({
  /** The consumer group backtest workers share, so that each job goes to one of them. */
  group: 'backtest-workers',
  /** A job held this long without a keep-alive is taken over by another worker. */
  claimIdleMs: 30_000,
  /** Workers that may take a job (and die on it) before it is marked failed. */
  maxAttempts: 3,
  /** Jobs read at a time: one, since a backtest is long and another worker may be idle. */
  batchSize: 1,
  /** claimIntervalMs defaults to half of claimIdleMs, but not below this. */
  minClaimIntervalMs: 100,
  /** The consumer's retry back-off starts at a quarter of claimIdleMs, at most this… */
  maxRetryBaseMs: 100,
  /** …and grows to half of claimIdleMs, at most this. */
  maxRetryMaxMs: 5_000,
  /** A running job's keep-alive comes every third of claimIdleMs, but not more often than this. */
  minKeepAliveMs: 50,
  /** Characters of a failed job's error on the results channel. */
  errorChars: 4000,
  /** Characters of a progress message on the progress channel. */
  progressMessageChars: 1000,
});

const now = () => Date.now() / 1000;
const FINAL: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export class JobWorker {
  readonly name: string;
  readonly #options: JobWorkerOptions;
  readonly #claimIdleMs: number;
  readonly #running = new Map<string, AbortController>();
  #consumer: Consumer<BacktestJob> | undefined;
  #commands: Subscription | undefined;
  #closing = false;

  constructor(options: JobWorkerOptions) {
    this.#options = options;
    this.name = options.name ?? `${hostname()}-${process.pid}`;
    this.#claimIdleMs = options.claimIdleMs ?? JOB_DEFAULTS.claimIdleMs;
  }

  /** Jobs this worker is running now. */
  get running(): string[] {
    return [...this.#running.keys()];
  }

  async start(): Promise<this> {
    const { bus } = this.#options;
    this.#commands = await bus.subscribe(SystemJobs, (command) => {
      if (command.command === 'cancel_job' && command.job_id) this.#running.get(command.job_id)?.abort();
    });
    const claimIdleMs = this.#claimIdleMs;
    try {
      this.#consumer = await bus.consume(BacktestJobs, (job, ctx) => this.#take(job, ctx), {
        group: this.#options.group ?? JOB_DEFAULTS.group,
        consumer: this.name,
        batchSize: JOB_DEFAULTS.batchSize,
        maxAttempts: this.#options.maxAttempts ?? JOB_DEFAULTS.maxAttempts,
        claimIdleMs,
        claimIntervalMs: this.#options.claimIntervalMs ?? Math.max(JOB_DEFAULTS.minClaimIntervalMs, Math.floor(claimIdleMs / 2)),
        retry: { baseMs: Math.min(JOB_DEFAULTS.maxRetryBaseMs, claimIdleMs / 4), maxMs: Math.min(JOB_DEFAULTS.maxRetryMaxMs, Math.floor(claimIdleMs / 2)) },
        start: 'beginning',
      });
    } catch (error) {
      // A worker that could not start takes nothing: its cancel subscription goes too.
      await this.#commands.unsubscribe().catch(() => undefined);
      this.#commands = undefined;
      throw error;
    }
    this.#consumer.on('deadLettered', (letter) => bus.context.background.run('jobs_dead_letter', () => this.#gaveUp(letter)));
    this.#consumer.on('error', (error) => this.#options.logger.warn({ err: error }, 'job worker: consumer error'));
    return this;
  }

  /** Stops taking jobs; a job at work is aborted and left for another worker to run again. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const c of this.#running.values()) c.abort(new Error('worker shutting down'));
    await this.#commands?.unsubscribe();
    await this.#consumer?.close();
  }

  async #take(job: BacktestJob, ctx: DurableContext): Promise<void> {
    const { store, logger } = this.#options;
    const at = () => new Date().toISOString();
    let found = await store.transition(job.job_id, ['submitted', 'running'], 'running', { started_at: at(), worker: this.name, attempts: ctx.attempt });
    if (found === undefined) {
      // Queued by a producer that keeps no record (another language, or an expired one): record it now.
      await store.create(job);
      found = await store.transition(job.job_id, ['submitted'], 'running', { started_at: at(), worker: this.name, attempts: ctx.attempt });
    }
    if (found === 'cancelling') return this.#cancelled(job.job_id);
    if (found !== 'submitted' && found !== 'running') {
      logger.info({ job: job.job_id, status: found }, 'job worker: not running a job that is already over');
      return;
    }
    const controller = new AbortController();
    this.#running.set(job.job_id, controller);
    // Keep-alives: a long job must not look idle to the other workers.
    const keepAlive = setInterval(() => this.#options.bus.context.background.run('jobs_keep_alive', () => this.#consumer?.keepAlive(ctx.position)), Math.max(JOB_DEFAULTS.minKeepAliveMs, Math.floor(this.#claimIdleMs / 3)));
    try {
      await this.#progress(job.job_id, 0, 'started');
      let results: Record<string, unknown> | undefined;
      try {
        const run = () => this.#options.handler({ job, attempt: ctx.attempt, signal: controller.signal, progress: (p, m) => this.#progress(job.job_id, p, m) });
        // With tracing on, the run is a span in the submitter's trace (the queue's process span is its parent).
        results = await (tracingOn() ? inSpan('job backtest', SpanKind.INTERNAL, { 'tickbus.job_id': job.job_id, 'tickbus.attempt': ctx.attempt }, undefined, run) : run());
      } catch (error) {
        // Shutting down is not cancelling: throw, so the job stays pending for another worker.
        if (this.#closing) throw error;
        if (controller.signal.aborted) return await this.#cancelled(job.job_id);
        const message = error instanceof Error ? error.message : String(error);
        await store.transition(job.job_id, ['running', 'cancelling'], 'failed', { error: message, finished_at: at() });
        await this.#options.bus.publish(BacktestResults, { job_id: job.job_id, status: 'failed', error: preview(message, JOB_DEFAULTS.errorChars), timestamp: now() });
        logger.warn({ job: job.job_id, err: error }, 'job failed');
        return;
      }
      if (this.#closing && controller.signal.aborted) throw new Error('worker shut down before the job finished');
      if (controller.signal.aborted) return await this.#cancelled(job.job_id);
      const moved = await store.transition(job.job_id, ['running'], 'completed', { progress: 1, result: JSON.stringify(results ?? {}), finished_at: at() });
      if (moved === 'cancelling') return await this.#cancelled(job.job_id);
      await this.#options.bus.publish(BacktestProgress, { job_id: job.job_id, progress: 1, status: 'completed', timestamp: now() });
      await this.#options.bus.publish(BacktestResults, { job_id: job.job_id, status: 'completed', ...(results ? { results } : {}), timestamp: now() });
    } finally {
      clearInterval(keepAlive);
      this.#running.delete(job.job_id);
    }
  }

  async #progress(jobId: string, fraction: number, message?: string): Promise<void> {
    const progress = Math.min(1, Math.max(0, fraction));
    await this.#options.store.update(jobId, ['running'], { progress, ...(message ? { message } : {}) });
    await this.#options.bus.publish(BacktestProgress, { job_id: jobId, progress, status: 'running', timestamp: now(), ...(message ? { message: preview(message, JOB_DEFAULTS.progressMessageChars) } : {}) });
  }

  async #cancelled(jobId: string): Promise<void> {
    const found = await this.#options.store.transition(jobId, ['running', 'cancelling', 'submitted'], 'cancelled', { finished_at: new Date().toISOString() });
    if (found !== undefined && FINAL.includes(found)) return;
    const record = await this.#options.store.get(jobId);
    await this.#options.bus.publish(BacktestProgress, { job_id: jobId, progress: record?.progress ?? 0, status: 'cancelled', timestamp: now() });
    await this.#options.bus.publish(BacktestResults, { job_id: jobId, status: 'cancelled', timestamp: now() });
    this.#options.logger.info({ job: jobId }, 'job cancelled');
  }

  /** Workers kept dying on this job (or it could not be read): failed, never left running. */
  async #gaveUp(letter: DeadLetter): Promise<void> {
    let jobId: string | undefined;
    try {
      jobId = (JSON.parse(letter.payload ?? '') as { job_id?: string }).job_id;
    } catch {
      jobId = undefined;
    }
    if (!jobId) return;
    const error = letter.error instanceof DeadLetteredError ? `gave up after ${letter.attempts} attempts: its workers died or stalled` : letter.error.message;
    const found = await this.#options.store.transition(jobId, ['submitted', 'running', 'cancelling'], 'failed', { error, finished_at: new Date().toISOString() });
    if (found !== undefined && !FINAL.includes(found)) await this.#options.bus.publish(BacktestResults, { job_id: jobId, status: 'failed', error, timestamp: now() });
    this.#options.logger.error({ job: jobId, err: new BusError(letter.error.code, error) }, 'job failed for good');
  }
}
