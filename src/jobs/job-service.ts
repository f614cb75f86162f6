// Submitting, tracking and cancelling backtest jobs (seed 003's JobManager, on tickbus).
// A job is validated against the catalog, recorded (job:<id>, 24 hours), and appended to the
// durable channel tickstock.jobs.backtest, so that one submitted while no worker runs waits
// for one. Cancellation: a job not yet taken is marked cancelled (a worker that takes it
// later drops it); a running one is marked cancelling and the seed's command goes out on
// tickstock.jobs.system for its worker to stop.
import { randomUUID } from 'node:crypto';
import { BusError, ErrorCode } from '../core/errors.ts';
import { check, validationError } from '../core/schema.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BacktestJobs, BacktestResults, SystemJobs } from '../catalogs/tickstock.ts';
import type { JobRecord, JobStatus, JobStore } from './job-store.ts';

/** What a caller gives: the seed's backtest request; job_id, job_type and timestamp are filled in when absent. */
export interface BacktestRequest {
  job_id?: string;
  user_id: string;
  symbols: string[];
  start_date: string;
  end_date: string;
  patterns: string[];
  parameters?: Record<string, unknown>;
}

const now = () => Date.now() / 1000;

export class JobService {
  readonly #bus: TickBus;
  readonly #store: JobStore;

  constructor(bus: TickBus, store: JobStore) {
    this.#bus = bus;
    this.#store = store;
  }

  /** Validates, records and queues a job; resolves with its record (status `submitted`). */
  async submit(request: BacktestRequest): Promise<JobRecord> {
    const job = { job_type: 'backtest' as const, ...request, job_id: request.job_id ?? `bt_${randomUUID()}`, timestamp: now() };
    let checked = check(BacktestJobs.schema, job);
    if (checked instanceof Promise) checked = await checked;
    if (checked.issues) throw validationError(checked.issues, BacktestJobs.template);
    if (!(await this.#store.create(job))) throw new BusError(ErrorCode.DuplicateJob, `Job "${job.job_id}" was already submitted; give a new job_id, or omit it to get one.`);
    try {
      await this.#bus.publish(BacktestJobs, checked.value);
    } catch (error) {
      await this.#store.transition(job.job_id, ['submitted'], 'failed', { error: `not queued: ${(error as Error).message}`, finished_at: new Date().toISOString() });
      throw error;
    }
    return (await this.#store.get(job.job_id)) as JobRecord;
  }

  async status(jobId: string): Promise<JobRecord> {
    const record = await this.#store.get(jobId);
    if (!record) throw new BusError(ErrorCode.UnknownJob, `No job "${jobId}" (never submitted, or its record expired after 24 hours).`);
    return record;
  }

  list(userId: string, limit?: number): Promise<JobRecord[]> {
    return this.#store.list(userId, limit);
  }

  /**
   * Cancels a job. Resolves with what happened: `cancelled` (it had not started, and never
   * will), `cancelling` (its worker was told to stop), or the final status it already had.
   */
  async cancel(jobId: string): Promise<JobStatus> {
    const finishedAt = new Date().toISOString();
    const found = await this.#store.transition(jobId, ['submitted'], 'cancelled', { finished_at: finishedAt });
    if (found === undefined) throw new BusError(ErrorCode.UnknownJob, `No job "${jobId}" to cancel.`);
    if (found === 'submitted') {
      await this.#bus.publish(BacktestResults, { job_id: jobId, status: 'cancelled', timestamp: now() });
      return 'cancelled';
    }
    if (found === 'running' || found === 'cancelling') {
      await this.#store.transition(jobId, ['running'], 'cancelling');
      await this.#bus.publish(SystemJobs, { command: 'cancel_job', job_id: jobId, timestamp: now() });
      return 'cancelling';
    }
    return found;
  }
}
