// The private redis-server a benchmark runs on: started on a free port (never 6379),
// stopped when the measuring ends, fails or is interrupted, and by a watchdog should the
// benchmark be killed; and what it tells about itself (its CPU time).
import { startRedis, type RedisServer } from '../../test/harness/redis-server.ts';
import type { Machine } from './machine.ts';
import { guardProcess, killAllWorkers } from './proc.ts';

export interface PrivateRedisRun {
  /** The report's machine; its redis-server version becomes the one that runs. */
  machine: Machine;
  /** Added to the `Redis: …` line: what the benchmark keeps in it. */
  note?: string;
  /** Where the CPU profiles go, when the run records them. */
  profileDir?: string | undefined;
  /** Runs once the server is stopped, also after SIGINT or SIGTERM (temporary files). */
  cleanUp?: () => void;
}

/**
 * Starts a private redis-server, runs `measure` on it and stops it. On SIGINT or SIGTERM
 * kills the workers, stops the server, cleans up and exits with code 130.
 */
export async function withPrivateRedis<T>(run: PrivateRedisRun, measure: (server: RedisServer) => Promise<T>): Promise<T> {
  let server: RedisServer | undefined;
  let release: () => void = () => undefined;
  const stop = async () => {
    try {
      await server?.stop().finally(release);
    } finally {
      run.cleanUp?.();
    }
  };
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping the workers and redis-server.`);
      killAllWorkers();
      void stop().finally(() => process.exit(130));
    });
  }
  try {
    server = await startRedis();
    // Stopped in the finally below, on SIGINT/SIGTERM, and by a watchdog should we be killed.
    const pid = server.process.pid;
    if (pid !== undefined) release = guardProcess(pid, server.dir);
    if (server.port === 6379) throw new Error('refusing to benchmark on port 6379');
    const version = /redis_version:(\S+)/.exec(server.cli('INFO', 'server'))?.[1];
    if (version) run.machine.redisServer = version;
    console.log(`Redis: private redis-server ${run.machine.redisServer} on port ${server.port}${run.note ? `; ${run.note}` : ''}`);
    if (run.profileDir) console.log(`CPU profiles: ${run.profileDir}`);
    return await measure(server);
  } finally {
    await stop();
  }
}

/** redis-server's CPU time so far (user + system, every thread), in microseconds. */
export function redisCpuMicros(server: RedisServer): number {
  const info = server.cli('INFO', 'cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}
