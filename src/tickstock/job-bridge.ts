// The job bridge: seed 003's JobManager publishes a backtest with a plain
// `PUBLISH tickstock.jobs.backtest <json>`, but tickbus's workers read that channel's durable
// stream (consumer group backtest-workers), which a PUBLISH never reaches. The bridge listens
// to the pub/sub channel of that name and appends each valid request to the stream, once per
// job id however many bridges run: every bridge hears the PUBLISH, the one whose
// `SET tickbus:job-bridge:{<job_id>} NX EX 86400` succeeds queues it. Before queuing it, it
// completes the record the JobManager wrote (`job:<id>`: status, user_id, created_at,
// job_data) into a tickbus record and adds the job to its user's index; a status the
// JobManager set (its cancel_job's `cancelling`) is kept, and the worker drops such a job.
// A job submitted through JobService goes to the stream directly and never passes here.
//
// Why a transport-level subscription: through the bus, subscribing to tickstock.jobs.backtest
// joins its consumer group (the catalog declares it durable), and a second catalog entry of
// the same name would make that name mean two things to every resolver. The bridge instead
// subscribes the transport's link (the seam) to the name itself and so sees every payload
// raw: JSON that does not parse is counted like a request that fails the schema, never lost
// inside the bus's own rejection path.
import { hostname } from 'node:os';
import { ConfigError, preview } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { LogThrottle } from '../core/log-throttle.ts';
import { jobBridgeClaimKey } from '../core/keys.ts';
import { check } from '../core/schema.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { BacktestJobs } from '../catalogs/tickstock.ts';
import { connectCommands, type CommandLink } from '../transports/commands.ts';
import type { SubscribeLink } from '../transports/transport.ts';
import type { BacktestJob } from '../jobs/job-worker.ts';
import type { JobStore } from '../jobs/job-store.ts';

export interface JobBridgeOptions {
  bus: TickBus;
  store: JobStore;
  logger: Logger;
  /** Written into the claim key, for an operator who asks which bridge queued a job. @default bridge-<hostname>-<pid> */
  name?: string;
}

export const JOB_BRIDGE_DEFAULTS = Object.freeze({
  /** How long a claim holds: as long as seed 003's record lives (a resend after that is a new job). */
  claimTtlSeconds: 86_400,
  /** Log lines a second for refused requests; the rest are counted. */
  refusedLogsPerSecond: 5,
  /** Characters of a refused payload shown in the log. */
  payloadPreviewChars: 120,
});

/** What the bridge did with what it heard. */
export interface JobBridgeStats {
  received: number;
  queued: number;
  /** Another bridge (or an earlier PUBLISH of the same job id) queued it. */
  duplicates: number;
  /** Not JSON, or not a backtest request (BacktestJobSchema). */
  invalid: number;
  /** Valid, claimed, but could not be appended to the stream (the record says failed). */
  failed: number;
}

export class JobBridge {
  readonly name: string;
  readonly stats: JobBridgeStats = { received: 0, queued: 0, duplicates: 0, invalid: 0, failed: 0 };
  readonly #options: JobBridgeOptions;
  readonly #throttle = new LogThrottle(JOB_BRIDGE_DEFAULTS.refusedLogsPerSecond);
  #link: SubscribeLink | undefined;
  #claims: CommandLink | undefined;
  /** Requests are handled one after the other, in the order heard. */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: JobBridgeOptions) {
    this.#options = options;
    this.name = options.name ?? `bridge-${hostname()}-${process.pid}`;
  }

  /** Resolves once subscribed: a PUBLISH after this is heard. */
  async start(): Promise<this> {
    const transport = this.#options.bus.context.transport;
    if (transport.redis === undefined) throw new ConfigError('The job bridge needs Redis: its queue is a stream, and the memory transport has none.');
    this.#claims = await connectCommands(transport.redis, { name: `tickbus:${this.name}` });
    const link = transport.createSubscribeLink((_channel, payload) => this.#enqueue(payload));
    this.#link = link;
    link.on('error', (error) => this.#options.logger.warn({ err: error }, 'job bridge: subscription error'));
    try {
      await link.connect();
      await link.subscribe([BacktestJobs.template]);
    } catch (error) {
      await this.close();
      throw error;
    }
    this.#options.logger.info({ bridge: this.name, channel: BacktestJobs.template }, 'job bridge: listening for published jobs');
    return this;
  }

  /** Stops listening; requests already heard are finished first. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#link?.close().catch(() => undefined);
    await this.#chain;
    await this.#claims?.close().catch(() => undefined);
    this.#link = undefined;
    this.#claims = undefined;
  }

  #enqueue(payload: string): void {
    this.stats.received++;
    this.#chain = this.#chain
      .then(() => this.#handle(payload))
      .catch((error: unknown) => this.#options.logger.error({ err: error }, 'job bridge: request not handled'));
  }

  async #handle(payload: string): Promise<void> {
    const job = await this.#parse(payload);
    if (job === undefined || this.#closed) return;
    const { logger, store, bus } = this.#options;
    const claims = this.#claims as CommandLink;
    const key = jobBridgeClaimKey(job.job_id);
    const claimed = await claims.send<string | null>(['SET', key, this.name, 'NX', 'EX', String(JOB_BRIDGE_DEFAULTS.claimTtlSeconds)], key);
    if (claimed === null) {
      this.stats.duplicates++;
      logger.debug({ job: job.job_id }, 'job bridge: already queued (another bridge, or a resend)');
      return;
    }
    await store.adopt(job);
    try {
      const receipt = await bus.publish(BacktestJobs, job);
      if (receipt.status === 'dropped') throw new Error("the publisher's fallback buffer was full");
    } catch (error) {
      // Nobody else will queue it (they lost the claim, and a PUBLISH is not heard twice):
      // the record says so, and a resend of the same job id may try again.
      this.stats.failed++;
      await claims.send(['DEL', key], key).catch(() => undefined);
      await store.transition(job.job_id, ['submitted'], 'failed', { error: `not queued: ${(error as Error).message}`, finished_at: new Date().toISOString() }).catch(() => undefined);
      logger.warn({ job: job.job_id, err: error }, 'job bridge: job not queued');
      return;
    }
    this.stats.queued++;
    logger.info({ job: job.job_id, user: job.user_id }, 'job bridge: queued a published job');
  }

  /** The request, or undefined (counted, logged compactly) when it is not one. */
  async #parse(payload: string): Promise<BacktestJob | undefined> {
    let value: unknown;
    let problem: string;
    try {
      value = JSON.parse(payload) as unknown;
      let checked = check(BacktestJobs.schema, value);
      if (checked instanceof Promise) checked = await checked;
      if (!checked.issues) return checked.value;
      problem = checked.issues
        .slice(0, 3)
        .map((i) => `${(i.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.') || '(root)'}: ${i.message}`)
        .join('; ');
    } catch {
      problem = 'not JSON';
    }
    this.stats.invalid++;
    const suppressed = this.#throttle.take();
    if (suppressed >= 0) {
      this.#options.logger.warn(
        { channel: BacktestJobs.template, problem, payload: preview(payload, JOB_BRIDGE_DEFAULTS.payloadPreviewChars), invalid: this.stats.invalid, ...(suppressed > 0 ? { suppressed } : {}) },
        'job bridge: not a backtest request; ignored',
      );
    }
    return undefined;
  }
}
