// The chaos run (issue 14): the whole system as users run it, its processes killed with
// SIGKILL at random and started again, invariants checked from the evidence. See
// bench/lib/chaos-run.ts for what runs and what is checked, bench/README.md for how to read it.
//
//   node --import tsx bench/chaos.ts                 # 3 minutes of kills
//   node --import tsx bench/chaos.ts --minutes 0.5 --seed 7
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { chaosTable, runChaos } from './lib/chaos-run.ts';
import { intOption, parseCli, positiveOption, runMain, UsageError } from './lib/cli.ts';
import { describeMachine, machineLine } from './lib/machine.ts';

const USAGE = 'node --import tsx bench/chaos.ts [options]';
const SUMMARY = `Runs two brokers, two gateways, bots placing orders, WebSocket clients that resume
with since, a durable consumer group of two and a fallback-buffered publisher on one
redis-server with AOF, and kills one of Redis, a broker, a gateway or a consumer with SIGKILL
every few seconds (then starts it again). Prints what was lost, redone, missed, duplicated
and crashed. Exits 1 when an invariant failed (durable loss, a crash, an unreported gap, a
duplicated order, a victim that did not come back), 0 otherwise.`;

const options = {
  minutes: { type: 'string', description: 'how long processes are killed', default: '3', value: 'M' },
  seed: { type: 'string', description: 'seed of the victims and pauses (the same seed replays the same kills)', default: String(Date.now() % 100_000), value: 'N' },
  'redis-share': { type: 'string', description: 'how likely a kill is of Redis (the rest: brokers, gateways, consumers alike)', default: '0.25', value: 'p' },
  clients: { type: 'string', description: 'browser-like WebSocket clients', default: '4', value: 'N' },
  rate: { type: 'string', description: 'durable messages published per second', default: '100', value: 'N' },
  logs: { type: 'string', description: 'directory for each process log (default: kept only when an invariant failed)', value: 'dir' },
  out: { type: 'string', description: 'the JSON report', default: 'artifacts/bench-chaos.json', value: 'file' },
} as const;

function redisShare(text: string): number {
  const p = Number(text);
  if (!(p >= 0 && p <= 1)) throw new UsageError(`--redis-share must be a number from 0 to 1, got "${text}".`);
  return p;
}

runMain(async () => {
  const v = parseCli(USAGE, SUMMARY, options);
  const seconds = Math.round(positiveOption(v.minutes, 'minutes') * 60);
  const seed = intOption(v.seed, 'seed', 0);
  const machine = describeMachine(['redis', 'ws']);
  console.log(machineLine(machine));
  const report = await runChaos({
    seconds,
    seed,
    redisShare: redisShare(v['redis-share']),
    clients: intOption(v.clients, 'clients'),
    publishPerSecond: intOption(v.rate, 'rate'),
    ...(v.logs ? { logDir: resolve(v.logs) } : {}),
    log: (line) => console.log(line),
  });
  console.log(`\n${chaosTable(report)}`);
  for (const c of report.crashes) console.log(`\ncrash: ${c.role} at ${c.atS} s, code ${c.code}, signal ${c.signal}\n  ${c.stderr.slice(-4).join('\n  ')}`);
  for (const g of report.history.unreportedSample) console.log(`unreported gap: ${g.client} ${g.symbol} after ${g.after}, next ${g.next ?? '(none by the end)'}: ${g.missed} missed; markers ${g.markers.join(' ') || '-'}`);
  if (report.durable.lostSample.length) console.log(`durable lost, first: ${report.durable.lostSample.join(', ')}`);
  for (const d of report.orders.duplicatedSample) console.log(`duplicated order: ${d}`);
  for (const o of report.orders.unansweredSample) console.log(`unanswered order: ${o.id} (${o.symbol}) placed at ${o.atS} s, ticker streamed by ${o.streamedBy} before, ${o.thenBy} after; updates: ${o.events.join(' ') || 'none'}`);
  for (const u of report.uncleanStops) console.log(`unclean stop: ${u.role} code ${u.code} signal ${u.signal}\n  ${u.stderr.slice(-3).join('\n  ')}`);
  console.log(`\nLogs: ${report.logDir}`);
  const out = resolve(v.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ benchmark: 'chaos', date: new Date().toISOString(), machine, report }, null, 2)}\n`);
  console.log(`Results written to ${out}`);
  const failed = report.durable.lost > 0 || report.crashes.length > 0 || report.history.gapsUnreported > 0 || report.orders.duplicated > 0 || report.restartFailures.length > 0;
  return failed ? 1 : 0;
});
