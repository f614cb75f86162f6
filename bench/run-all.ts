// Runs every benchmark in turn with its default settings (`npm run bench`). Each runs in
// a process of its own; the first failure stops the run and sets the exit code.
//
//   node --import tsx bench/run-all.ts
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseCli, runMain } from './lib/cli.ts';

const BENCHMARKS = [
  { name: 'pubsub', script: 'pubsub.ts', what: 'pub/sub throughput and latency, tickbus against raw node-redis' },
  { name: 'broker-replay', script: 'broker-replay.ts', what: 'updates/s the broker publishes from a replay file, against raw node-redis' },
  { name: 'durable', script: 'durable.ts', what: 'durable channels (publish, consume, ack), tickbus against a raw XADD / XREADGROUP / XACK loop' },
  { name: 'gateway', script: 'gateway.ts', what: 'WebSocket fan-out (deliveries/s, latency, server CPU per delivery, memory), the tickbus gateway against a Socket.IO server' },
] as const;

runMain(() => {
  parseCli(
    'node --import tsx bench/run-all.ts',
    ['Runs every benchmark with its defaults:', ...BENCHMARKS.map((b) => `  ${b.name}: ${b.what} (bench/${b.script})`)].join('\n'),
    {},
  );
  for (const bench of BENCHMARKS) {
    console.log(`\n=== ${bench.name}: ${bench.what}\n`);
    const run = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(bench.script, import.meta.url))], { stdio: 'inherit' });
    if (run.status !== 0) {
      console.error(`${bench.name} failed (${run.signal ?? `exit code ${run.status}`}).`);
      return run.status ?? 1;
    }
  }
  return 0;
});
