// The gateway worker of bench/tickstock.ts, alone in its process so that its CPU time is its
// own: startGatewayRuntime (as `tickbus gateway` and `tickbus up` start it) on the
// benchmark's redis-server, exposing tickstock:patterns:streaming, with the alert
// preferences, routing and inboxes on. Says ready with its port; on `mark` reports its CPU
// time (process.cpuUsage) and connections. Exits when the parent lets go of it.
import { pino } from 'pino';
import { resolveRedisConfig, startGatewayRuntime } from './lib/tickbus.ts';
import { intOption, parseCli } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { startCpuProfile } from './lib/profiler.ts';
import { PATTERN_CHANNEL, type GatewayCommand, type GatewayEvent } from './tickstock-common.ts';

const v = parseCli('node --import tsx bench/tickstock-gateway.ts [options]', 'The gateway worker of bench/tickstock.ts (started by it).', {
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  'batch-ms': { type: 'string', value: 'ms', default: '250', description: 'The gateway batchMs.' },
  profile: { type: 'string', value: 'file', description: 'Write a CPU profile from the first mark to the second to this file.' },
});
if (v.url === undefined) throw new Error('--url is required.');

const runtime = await startGatewayRuntime({
  redis: resolveRedisConfig({ url: v.url }),
  logger: pino({ level: 'silent' }),
  port: 0,
  batchMs: intOption(v['batch-ms'], 'batch-ms', 0),
  channels: [PATTERN_CHANNEL],
});
const port = Number(new URL(runtime.url).port);

let profiling: (() => Promise<void>) | undefined;
let marks = 0;
const send = serveParent<GatewayCommand, GatewayEvent>(
  async () => {
    const cpu = process.cpuUsage();
    send({ type: 'marked', at: epochMs(), cpuMicros: cpu.user + cpu.system, connections: runtime.gateway.stats().connections, rss: process.memoryUsage().rss });
    if (v.profile !== undefined && ++marks === 1) profiling = await startCpuProfile(v.profile);
    else await profiling?.();
  },
  () => runtime.stop(),
);
send({ type: 'ready', port });
