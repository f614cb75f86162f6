// In-process V8 CPU profiling of one stretch of a benchmark (the measured phase, not the
// start-up): the profile opens in Chrome DevTools or summarises with bench/cpuprofile-top.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname } from 'node:path';

/** Starts the profiler; the returned function stops it and writes the profile to `file`. */
export async function startCpuProfile(file: string, samplingIntervalUs = 500): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
  };
}
