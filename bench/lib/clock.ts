// Time in benchmarks: a wall clock the parent and its workers read alike, and the clocks of
// one measured stretch of a worker (wall time, CPU time and, when asked, a CPU profile).
import { startCpuProfile } from './profiler.ts';

/**
 * Wall-clock time in milliseconds with sub-millisecond resolution. Comparable across
 * processes on one machine: each process's timeOrigin is read from the same clock.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** CPU time (user + system) this process used since `start`, in microseconds. */
export function cpuMicrosSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

export interface Clock {
  /** epochMs when the stretch started. */
  startedAt: number;
  /** Stops the wall and CPU clocks, then the profiler (writing the profile is not measured). */
  stop(): Promise<{ endedAt: number; cpuMicros: number }>;
}

/**
 * Starts the profiler (when given a file), the CPU clock and the wall clock, in that order:
 * starting the profiler is not measured either.
 */
export async function startClock(profile: string | undefined): Promise<Clock> {
  const stopProfile = profile ? await startCpuProfile(profile) : undefined;
  const cpu = process.cpuUsage();
  const startedAt = epochMs();
  return {
    startedAt,
    stop: async () => {
      const endedAt = epochMs();
      const cpuMicros = cpuMicrosSince(cpu);
      await stopProfile?.();
      return { endedAt, cpuMicros };
    },
  };
}
