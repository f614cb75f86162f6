// Job records (seed 003's JobManager): a hash `job:<job_id>` with the request, who owns it,
// its status and progress, and timestamps, kept for 24 hours; and a per-user index
// `jobs:user:<user_id>` (a sorted set by creation time) for listing. Every status change is
// one Lua script that checks the status it starts from, so two workers, or a worker and a
// cancel, can never both win.
import { connectCommands, hashReply, type CommandLink } from '../transports/commands.ts';
import type { RedisConfig } from '../core/config.ts';
import { jobKey, userJobsKey } from '../core/keys.ts';

export type JobStatus = 'submitted' | 'running' | 'completed' | 'failed' | 'cancelled' | 'cancelling';

export interface JobRecord {
  job_id: string;
  job_type: string;
  user_id: string;
  status: JobStatus;
  progress: number;
  message?: string;
  created_at: string;
  updated_at: string;
  started_at?: string;
  finished_at?: string;
  /** Times a worker took it (more than 1 after a worker died mid-job). */
  attempts: number;
  worker?: string;
  /** The request as submitted (JSON). */
  request: unknown;
  result?: unknown;
  error?: string;
}

export const JOB_TTL_SECONDS = 24 * 3600;

// Creates the record unless it exists. The user's index is written after it, by a second
// command: on a cluster the record and the index live on different shards (their key names
// are the seed's, without a shared hash tag), so one script cannot hold both.
const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

const INDEX = `redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

// Fills in the fields a record lacks (HSETNX: what its writer set stays, status included),
// and gives it the 24 hours if it has no expiry; returns its created_at, or false when there
// is no record.
const ADOPT = `if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for i = 2, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return redis.call('HGET', KEYS[1], 'created_at')`;

/** A record's created_at as epoch ms: ISO (tickbus) or Unix seconds (seed 003's time.time()). */
function createdMs(createdAt: string | null | undefined, fallback: number): number {
  if (!createdAt) return fallback;
  const seconds = Number(createdAt);
  if (Number.isFinite(seconds) && seconds > 0) return Math.round(seconds * 1000);
  const ms = Date.parse(createdAt);
  return Number.isFinite(ms) ? ms : fallback;
}

// Moves the status from one of ARGV[1] (comma-separated) to ARGV[2] and sets the fields
// that follow; returns the status it found (the move happened when it is one of ARGV[1]).
const TRANSITION = `local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if allowed == current then
    redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 3))
    return current
  end
end
return current`;

// Sets fields (ARGV[3]…) if the status is one of ARGV[1]; returns the status found.
const UPDATE = `local current = redis.call('HGET', KEYS[1], 'status')
if not current then return false end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if allowed == current then
    redis.call('HSET', KEYS[1], unpack(ARGV, 3))
    return current
  end
end
return current`;

function parse(hash: Record<string, string>): JobRecord | undefined {
  if (!hash.job_id) return undefined;
  const json = (text: string | undefined): unknown => {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  };
  return {
    job_id: hash.job_id,
    job_type: hash.job_type ?? '',
    user_id: hash.user_id ?? '',
    status: (hash.status ?? 'submitted') as JobStatus,
    progress: Number(hash.progress ?? 0),
    ...(hash.message ? { message: hash.message } : {}),
    created_at: hash.created_at ?? '',
    updated_at: hash.updated_at ?? '',
    ...(hash.started_at ? { started_at: hash.started_at } : {}),
    ...(hash.finished_at ? { finished_at: hash.finished_at } : {}),
    attempts: Number(hash.attempts ?? 0),
    ...(hash.worker ? { worker: hash.worker } : {}),
    request: json(hash.job_data),
    ...(hash.result ? { result: json(hash.result) } : {}),
    ...(hash.error ? { error: hash.error } : {}),
  };
}

export class JobStore {
  readonly #client: CommandLink;

  private constructor(client: CommandLink) {
    this.#client = client;
  }

  static async connect(redis: RedisConfig, name = 'tickbus:jobs', connectTimeoutMs?: number): Promise<JobStore> {
    // Commands fail with their own errors while the connection is down; node-redis reconnects.
    return new JobStore(await connectCommands(redis, { name, ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }) }));
  }

  /** Records a new job; false when a job with that id exists. */
  async create(request: { job_id: string; job_type: string; user_id: string }, now = new Date()): Promise<boolean> {
    const iso = now.toISOString();
    const fields = ['job_id', request.job_id, 'job_type', request.job_type, 'user_id', request.user_id, 'status', 'submitted', 'progress', '0', 'attempts', '0', 'created_at', iso, 'updated_at', iso, 'job_data', JSON.stringify(request)];
    const created = await this.#client.send<number>(['EVAL', CREATE, '1', jobKey(request.job_id), String(JOB_TTL_SECONDS), ...fields], jobKey(request.job_id));
    if (created !== 1) return false;
    const index = userJobsKey(request.user_id);
    await this.#client.send(['EVAL', INDEX, '1', index, String(JOB_TTL_SECONDS), String(now.getTime()), request.job_id], index);
    return true;
  }

  /**
   * Makes a record another writer made (seed 003's JobManager writes status, user_id,
   * created_at and job_data only) a whole tickbus record: the fields it lacks are added, the
   * ones it has are kept (a `cancelling` set by its cancel_job stays), and the job joins its
   * user's index, so status, list and cancel see it. Creates the record when there is none.
   * Resolves with true when it created it.
   */
  async adopt(request: { job_id: string; job_type: string; user_id: string }, now = new Date()): Promise<boolean> {
    const iso = now.toISOString();
    const fields = ['job_id', request.job_id, 'job_type', request.job_type, 'user_id', request.user_id, 'status', 'submitted', 'progress', '0', 'attempts', '0', 'created_at', iso, 'updated_at', iso, 'job_data', JSON.stringify(request)];
    const key = jobKey(request.job_id);
    const createdAt = await this.#client.send<string | null>(['EVAL', ADOPT, '1', key, String(JOB_TTL_SECONDS), ...fields], key);
    if (createdAt === null) return this.create(request, now);
    const index = userJobsKey(request.user_id);
    await this.#client.send(['EVAL', INDEX, '1', index, String(JOB_TTL_SECONDS), String(createdMs(createdAt, now.getTime())), request.job_id], index);
    return false;
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    return parse(hashReply(await this.#client.send(['HGETALL', jobKey(jobId)], jobKey(jobId))));
  }

  /**
   * Moves a job from one of `from` to `to`, setting `fields`; returns the status it found
   * (undefined when the record is gone). The move happened when the result is in `from`.
   */
  async transition(jobId: string, from: readonly JobStatus[], to: JobStatus, fields: Record<string, string | number> = {}): Promise<JobStatus | undefined> {
    const flat = Object.entries({ updated_at: new Date().toISOString(), ...fields }).flatMap(([k, v]) => [k, String(v)]);
    const found = await this.#client.send<string | null>(['EVAL', TRANSITION, '1', jobKey(jobId), from.join(','), to, ...flat], jobKey(jobId));
    return (found ?? undefined) as JobStatus | undefined;
  }

  /** Sets fields without a status change (progress), if the job is in one of `when`. */
  async update(jobId: string, when: readonly JobStatus[], fields: Record<string, string | number>): Promise<boolean> {
    const flat = Object.entries({ updated_at: new Date().toISOString(), ...fields }).flatMap(([k, v]) => [k, String(v)]);
    const found = await this.#client.send<string | null>(['EVAL', UPDATE, '1', jobKey(jobId), when.join(','), '', ...flat], jobKey(jobId));
    return found !== null && when.includes(found as JobStatus);
  }

  /** The jobs of one user, newest first (those whose record has not expired). */
  async list(userId: string, limit = 50): Promise<JobRecord[]> {
    const ids = await this.#client.send<string[]>(['ZRANGE', userJobsKey(userId), '0', String(limit - 1), 'REV'], userJobsKey(userId));
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is JobRecord => r !== undefined);
  }

  async close(): Promise<void> {
    await this.#client.close();
  }
}
