// Pub/sub benchmark: tickbus against raw node-redis, and tickbus on a channel with history
// against the same channel without, publisher and subscriber in separate processes, one
// private redis-server. Measures end-to-end throughput (N price messages over ten tickers,
// a bounded window of publishes in flight) and publish-to-handler latency at a fixed rate,
// interleaving the implementations' runs over several rounds and reporting medians.
// Writes the figures to artifacts/bench-pubsub.json.
//
//   node --import tsx bench/pubsub.ts [--messages N] [--rate R] [--seconds S] [--impl which] [--help]
import type { RedisServer } from '../test/harness/redis-server.ts';
import { parseCli, runMain, table, type OptionSpec } from './lib/cli.ts';
import { deliverySettings, latencyDetail, runDelivery, runRounds, summarizeDelivery, type DeliveryResult, type DeliverySettings, type DeliveryTrial, type DeliveryWorkers } from './lib/delivery-run.ts';
import { TICKERS, type Mode } from './lib/delivery.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { fixed, int, latencyCells, LATENCY_HEADERS, verdict, writeResults } from './lib/report.ts';
import { withPrivateRedis } from './lib/server.ts';
import { ratio } from './lib/stats.ts';
import { HISTORY_MAX_LEN, IMPLS, type Impl } from './pubsub-common.ts';

const OPTIONS = {
  messages: { type: 'string', value: 'N', default: '200000', description: 'Measured messages per throughput run.' },
  rate: { type: 'string', value: 'R', default: '10000', description: 'Latency runs: messages per second.' },
  seconds: { type: 'string', value: 'S', default: '10', description: 'Latency runs: measured seconds.' },
  rounds: { type: 'string', value: 'N', default: '3', description: 'Rounds; each runs every implementation once, in a rotating order. Medians are reported.' },
  window: { type: 'string', value: 'N', default: '512', description: 'Publishes in flight at most (every implementation).' },
  warmup: { type: 'string', value: 'N', default: '10000', description: 'Unmeasured messages before each run (latency runs send them at the rate).' },
  only: { type: 'string', value: 'which', default: 'both', description: 'throughput, latency or both.' },
  impl: { type: 'string', value: 'which', default: 'all', description: `raw, tickbus (no history), tickbus-history (the same channels keeping the newest ${HISTORY_MAX_LEN.toLocaleString('en-US')} messages per ticker), tickbus-traced (tickbus with an OpenTelemetry SDK registered) or all (one alone: for profiling).` },
  profile: { type: 'boolean', description: 'Write V8 CPU profiles of the workers to artifacts/profiles/ (slows them; not for the figures).' },
  check: { type: 'boolean', description: 'Exit with code 3 when a target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-pubsub.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

const TARGETS = { throughputRatio: 0.9, tickbusP99Ms: 2 } as const;

/** The pairs whose ratios the report shows: tickbus against raw, history against none. */
const VS_RAW = ['tickbus', 'raw'] as const;
const VS_NO_HISTORY = ['tickbus-history', 'tickbus'] as const;
/** The cost of tracing on (an SDK registered) against the same channels with none. */
const VS_UNTRACED = ['tickbus-traced', 'tickbus'] as const;

const WORKERS: DeliveryWorkers<'subscriber'> = {
  publisher: new URL('./pubsub-publisher.ts', import.meta.url),
  receiver: { role: 'subscriber', verb: 'received', script: new URL('./pubsub-subscriber.ts', import.meta.url) },
};

type Settings = DeliverySettings<Impl>;

/** One run. Its figures include redis-server's CPU: most of what history costs is there, not in the clients. */
interface Trial extends DeliveryTrial<Impl, 'subscriber'> {
  /** Keys in Redis after the run: the history streams (one per ticker) or none. */
  keys: number;
}

function settingsFrom(argv: string[]): Settings {
  const v = parseCli(
    'node --import tsx bench/pubsub.ts [options]',
    'Pub/sub throughput and latency of tickbus against raw node-redis, and of a tickbus channel with history against the same channel without (separate publisher and subscriber processes, one private redis-server).',
    OPTIONS,
    argv,
  );
  return deliverySettings(v, IMPLS, 'all');
}

function runTrial(server: RedisServer, s: Settings, round: number, impl: Impl, mode: Mode): Promise<Trial> {
  // The run starts from an empty Redis: a history run finds no stream left by an earlier
  // one (the warm-up, 1,000 messages a ticker by default, fills them to their bound).
  return runDelivery(server, s, { round, impl, mode }, WORKERS, ({ messages, figures, latency }) => {
    // The implementation did what it is named for: a stream per ticker with history, none
    // without (a channel that kept history unasked would pay for it silently).
    const keys = Number(server.cli('DBSIZE'));
    const expectedKeys = impl === 'tickbus-history' ? Math.min(TICKERS.length, s.warmup + messages) : 0;
    if (keys !== expectedKeys) throw new Error(`${impl} ${mode}: ${keys} keys in Redis after the run, expected ${expectedKeys}.`);
    return { round, impl, mode, messages, ...figures, keys, latency };
  });
}

// ---- report --------------------------------------------------------------------------

const CPU = ['publisherCpuUsPerMsg', 'subscriberCpuUsPerMsg', 'redisCpuUsPerMsg'] as const;

/** Medians over the rounds; CPU per message for the publisher, the subscriber and redis-server. */
type Cpu = Record<(typeof CPU)[number], number>;
type ImplResult = DeliveryResult<(typeof CPU)[number], 'p99'>;

const cpuCells = (c: Cpu | undefined) => [fixed(c?.publisherCpuUsPerMsg ?? NaN, 1), fixed(c?.subscriberCpuUsPerMsg ?? NaN, 1), fixed(c?.redisCpuUsPerMsg ?? NaN, 1)];
const CPU_HEADERS = ['pub CPU µs/msg', 'sub CPU µs/msg', 'redis CPU µs/msg'];

/** a's figure over b's, for a pair that both ran; undefined otherwise. */
function pairRatio<M extends keyof ImplResult>(results: Partial<Record<Impl, ImplResult>>, [a, b]: readonly [Impl, Impl], mode: M, pick: (r: NonNullable<ImplResult[M]>) => number): number | undefined {
  const ra = results[a]?.[mode];
  const rb = results[b]?.[mode];
  return ra && rb ? ratio(pick(ra), pick(rb)) : undefined;
}

/** Records the CPU ratios of a pair under `prefix` and returns them as one line of text. */
function cpuRatios(ratios: Record<string, number>, prefix: string, results: Partial<Record<Impl, ImplResult>>, pair: readonly [Impl, Impl], mode: keyof ImplResult): string {
  const parts: string[] = [];
  const sides = [
    ['PublisherCpu', 'publisherCpuUsPerMsg', 'publisher'],
    ['SubscriberCpu', 'subscriberCpuUsPerMsg', 'subscriber'],
    ['RedisCpu', 'redisCpuUsPerMsg', 'redis-server'],
  ] as const;
  for (const [suffix, field, label] of sides) {
    const r = pairRatio(results, pair, mode, (c) => c[field]);
    if (r === undefined) continue;
    ratios[prefix + suffix] = r;
    parts.push(`${label} ${fixed(r)}x`);
  }
  return parts.join(', ');
}

function report(s: Settings, results: Partial<Record<Impl, ImplResult>>): { ratios: Record<string, number>; targetsMet: Record<string, boolean> } {
  const ratios: Record<string, number> = {};
  const targetsMet: Record<string, boolean> = {};
  const impls = s.impls;
  const history = `${VS_NO_HISTORY[0]}/${VS_NO_HISTORY[1]} (the cost of a history of ${HISTORY_MAX_LEN.toLocaleString('en-US')} per ticker)`;
  if (s.modes.includes('throughput')) {
    console.log(`\nThroughput: ${int(s.messages)} messages over ${TICKERS.length} tickers, window ${s.window}, first publish to last delivery (median of ${s.rounds})`);
    const rows = impls.map((impl) => {
      const t = results[impl]?.throughput;
      return [impl, int(t?.deliveredPerSec ?? NaN), int(t?.publishedPerSec ?? NaN), ...cpuCells(t), (t?.perRound ?? []).map(int).join(' / ')];
    });
    console.log(table(['impl', 'msg/s', 'published msg/s', ...CPU_HEADERS, 'per round msg/s'], rows));
    const vsRaw = pairRatio(results, VS_RAW, 'throughput', (t) => t.deliveredPerSec);
    if (vsRaw !== undefined) {
      ratios.throughput = vsRaw;
      targetsMet.throughput = vsRaw >= TARGETS.throughputRatio;
      console.log(`tickbus/raw throughput: ${fixed(vsRaw)}x  (target >= ${TARGETS.throughputRatio}x: ${verdict(targetsMet.throughput)})`);
    }
    const historyVsRaw = pairRatio(results, ['tickbus-history', 'raw'], 'throughput', (t) => t.deliveredPerSec);
    if (historyVsRaw !== undefined) {
      ratios.historyThroughputVsRaw = historyVsRaw;
      console.log(`tickbus-history/raw throughput: ${fixed(historyVsRaw)}x`);
    }
    const vsNone = pairRatio(results, VS_NO_HISTORY, 'throughput', (t) => t.deliveredPerSec);
    if (vsNone !== undefined) {
      ratios.historyThroughput = vsNone;
      console.log(`${history}: throughput ${fixed(vsNone)}x; CPU per message: ${cpuRatios(ratios, 'history', results, VS_NO_HISTORY, 'throughput')}`);
    }
    const traced = pairRatio(results, VS_UNTRACED, 'throughput', (t) => t.deliveredPerSec);
    if (traced !== undefined) {
      ratios.tracedThroughput = traced;
      console.log(`tickbus-traced/tickbus (tracing on): throughput ${fixed(traced)}x; CPU per message: ${cpuRatios(ratios, 'traced', results, VS_UNTRACED, 'throughput')}`);
    }
  }
  if (s.modes.includes('latency')) {
    console.log(`\nLatency: ${int(s.rate)} msg/s for ${s.seconds} s, publish call to handler, ms (median of ${s.rounds})`);
    const rows = impls.map((impl) => {
      const l = results[impl]?.latency;
      return [impl, int(l?.publishedPerSec ?? NaN), ...latencyCells(l?.latencyMs), ...cpuCells(l), (l?.p99PerRound ?? []).map((p) => fixed(p)).join(' / ')];
    });
    console.log(table(['impl', 'sent msg/s', ...LATENCY_HEADERS, ...CPU_HEADERS, 'p99 per round'], rows));
    const vsRaw = pairRatio(results, VS_RAW, 'latency', (l) => l.latencyMs.p99);
    if (vsRaw !== undefined) {
      ratios.p99 = vsRaw;
      console.log(`tickbus/raw p99: ${fixed(vsRaw)}x`);
    }
    const tb = results.tickbus?.latency;
    if (tb) {
      targetsMet.p99 = tb.latencyMs.p99 <= TARGETS.tickbusP99Ms;
      console.log(`tickbus p99: ${fixed(tb.latencyMs.p99)} ms  (target <= ${TARGETS.tickbusP99Ms} ms at ${int(s.rate)} msg/s: ${verdict(targetsMet.p99)})`);
    }
    const p50 = pairRatio(results, VS_NO_HISTORY, 'latency', (l) => l.latencyMs.p50);
    const p99 = pairRatio(results, VS_NO_HISTORY, 'latency', (l) => l.latencyMs.p99);
    if (p50 !== undefined && p99 !== undefined) {
      ratios.historyP50 = p50;
      ratios.historyP99 = p99;
      console.log(`${history}: p50 ${fixed(p50)}x, p99 ${fixed(p99)}x; CPU per message at ${int(s.rate)} msg/s: ${cpuRatios(ratios, 'historyLatency', results, VS_NO_HISTORY, 'latency')}`);
    }
    const tracedP99 = pairRatio(results, VS_UNTRACED, 'latency', (l) => l.latencyMs.p99);
    if (tracedP99 !== undefined) {
      ratios.tracedP99 = tracedP99;
      console.log(`tickbus-traced/tickbus (tracing on): p99 ${fixed(tracedP99)}x; CPU per message at ${int(s.rate)} msg/s: ${cpuRatios(ratios, 'tracedLatency', results, VS_UNTRACED, 'latency')}`);
    }
  }
  return { ratios, targetsMet };
}

// ---- main ----------------------------------------------------------------------------

/**
 * Each round starts one implementation later (raw, tickbus, tickbus-history; then tickbus,
 * tickbus-history, raw; ...): over three rounds each runs first, second and third once, so
 * neither noise that drifts with time nor what the run before left behind (a hot
 * redis-server, a busy CPU) favours one of them.
 */
function roundOrder(impls: readonly Impl[], round: number): Impl[] {
  return impls.map((_, i) => impls[(i + round - 1) % impls.length] as Impl);
}

/** What a run measured, for its round's line. */
function describeTrial(t: Trial): string {
  const detail = t.mode === 'throughput' ? `${int(t.deliveredPerSec)} msg/s delivered` : latencyDetail(t.latency, t.publishedPerSec);
  return `${detail}  (CPU µs/msg: pub ${fixed(t.publisherCpuUsPerMsg, 1)}, sub ${fixed(t.subscriberCpuUsPerMsg, 1)}, redis ${fixed(t.redisCpuUsPerMsg, 1)})`;
}

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'zod']);
  console.log(`Machine: ${machineLine(machine)}`);
  const plan = { order: (round: number) => roundOrder(s.impls, round), width: Math.max(...s.impls.map((impl) => impl.length)) };
  const trials = await withPrivateRedis({ machine, profileDir: s.profileDir }, (server) => runRounds(s, plan, (round, mode, impl) => runTrial(server, s, round, impl, mode), describeTrial));

  const results: Partial<Record<Impl, ImplResult>> = {};
  for (const impl of s.impls) results[impl] = summarizeDelivery(trials.filter((t) => t.impl === impl), CPU, ['p99']);
  const { ratios, targetsMet } = report(s, results);

  const settings = {
    messages: s.messages,
    tickers: TICKERS.length,
    rate: s.rate,
    seconds: s.seconds,
    rounds: s.rounds,
    window: s.window,
    warmup: s.warmup,
    modes: s.modes,
    impls: s.impls,
    historyMaxLen: HISTORY_MAX_LEN,
    profiled: s.profileDir !== undefined,
  };
  return writeResults(s, { benchmark: 'pubsub', machine, settings, targets: TARGETS, results, ratios, targetsMet, trials });
}

runMain(main);
