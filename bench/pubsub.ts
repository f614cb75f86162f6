// Pub/sub benchmark: tickbus against raw node-redis, and tickbus on a channel with history
// against the same channel without, publisher and subscriber in separate processes, one
// private redis-server. Measures end-to-end throughput (N price messages over ten tickers,
// a bounded window of publishes in flight) and publish-to-handler latency at a fixed rate,
// interleaving the implementations' runs over several rounds and reporting medians.
// Writes the figures to artifacts/bench-pubsub.json.
//
//   node --import tsx bench/pubsub.ts [--messages N] [--rate R] [--seconds S] [--impl which] [--help]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer } from '../test/harness/redis-server.ts';
import { UsageError, choiceOption, intOption, parseCli, positiveOption, runMain, table, type OptionSpec } from './lib/cli.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { TimeoutError, Worker, guardProcess, killAllWorkers } from './lib/proc.ts';
import { median, medianSummary, ratio, type Summary } from './lib/stats.ts';
import {
  HISTORY_MAX_LEN,
  IMPLS,
  MODES,
  TICKERS,
  workerArgs,
  type Impl,
  type Mode,
  type PublisherCommand,
  type PublisherEvent,
  type SubscriberCommand,
  type SubscriberEvent,
  type WorkerConfig,
} from './pubsub-common.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const OPTIONS = {
  messages: { type: 'string', value: 'N', default: '200000', description: 'Measured messages per throughput run.' },
  rate: { type: 'string', value: 'R', default: '10000', description: 'Latency runs: messages per second.' },
  seconds: { type: 'string', value: 'S', default: '10', description: 'Latency runs: measured seconds.' },
  rounds: { type: 'string', value: 'N', default: '3', description: 'Rounds; each runs every implementation once, in a rotating order. Medians are reported.' },
  window: { type: 'string', value: 'N', default: '512', description: 'Publishes in flight at most (every implementation).' },
  warmup: { type: 'string', value: 'N', default: '10000', description: 'Unmeasured messages before each run (latency runs send them at the rate).' },
  only: { type: 'string', value: 'which', default: 'both', description: 'throughput, latency or both.' },
  impl: { type: 'string', value: 'which', default: 'all', description: `raw, tickbus (no history), tickbus-history (the same channels keeping the newest ${HISTORY_MAX_LEN.toLocaleString('en-US')} messages per ticker) or all (one alone: for profiling).` },
  profile: { type: 'boolean', description: 'Write V8 CPU profiles of the workers to artifacts/profiles/ (slows them; not for the figures).' },
  check: { type: 'boolean', description: 'Exit with code 3 when a target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-pubsub.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

const TARGETS = { throughputRatio: 0.9, tickbusP99Ms: 2 } as const;

/** How long a worker may take to start, connect and subscribe. */
const START_MS = 30_000;
/** How long the last message may trail the publisher's last acknowledgement. */
const GRACE_MS = 30_000;

/** The pairs whose ratios the report shows: tickbus against raw, history against none. */
const VS_RAW = ['tickbus', 'raw'] as const;
const VS_NO_HISTORY = ['tickbus-history', 'tickbus'] as const;

interface Settings {
  messages: number;
  rate: number;
  seconds: number;
  rounds: number;
  window: number;
  warmup: number;
  modes: readonly Mode[];
  impls: readonly Impl[];
  profileDir: string | undefined;
  check: boolean;
  out: string;
}

interface Trial {
  round: number;
  impl: Impl;
  mode: Mode;
  messages: number;
  /** First publish to the last message reaching the subscriber's handler. */
  elapsedMs: number;
  /** messages / elapsedMs: the end-to-end rate. */
  deliveredPerSec: number;
  /** messages / (first publish to last publish acknowledged). */
  publishedPerSec: number;
  /** CPU (user + system) per measured message, microseconds. */
  publisherCpuUsPerMsg: number;
  subscriberCpuUsPerMsg: number;
  /**
   * redis-server's CPU per measured message (INFO cpu, from just before the measured phase
   * to the last delivery): most of what history costs is here, not in the clients.
   */
  redisCpuUsPerMsg: number;
  /** Keys in Redis after the run: the history streams (one per ticker) or none. */
  keys: number;
  /** Latency runs: publish call to handler, ms. */
  latency: Summary | undefined;
}

function settingsFrom(argv: string[]): Settings {
  const v = parseCli(
    'node --import tsx bench/pubsub.ts [options]',
    'Pub/sub throughput and latency of tickbus against raw node-redis, and of a tickbus channel with history against the same channel without (separate publisher and subscriber processes, one private redis-server).',
    OPTIONS,
    argv,
  );
  const only = choiceOption(v.only, 'only', ['throughput', 'latency', 'both']);
  const impl = choiceOption(v.impl, 'impl', [...IMPLS, 'all']);
  const rate = positiveOption(v.rate, 'rate');
  const seconds = positiveOption(v.seconds, 'seconds');
  if (Math.round(rate * seconds) < 1) throw new UsageError('--rate times --seconds must be at least one message.');
  return {
    messages: intOption(v.messages, 'messages'),
    rate,
    seconds,
    rounds: intOption(v.rounds, 'rounds'),
    window: intOption(v.window, 'window'),
    warmup: intOption(v.warmup, 'warmup', 0),
    modes: only === 'both' ? MODES : [only],
    impls: impl === 'all' ? IMPLS : [impl],
    profileDir: v.profile ? resolve(ROOT, 'artifacts/profiles', new Date().toISOString().replace(/[:.]/g, '-')) : undefined,
    check: v.check,
    out: resolve(process.cwd(), v.out),
  };
}

/** redis-server's CPU time (user + system, every thread) so far, in microseconds. */
function redisCpuMicros(server: RedisServer): number {
  const info = server.cli('INFO', 'cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

async function runTrial(server: RedisServer, s: Settings, round: number, impl: Impl, mode: Mode): Promise<Trial> {
  const messages = mode === 'throughput' ? s.messages : Math.round(s.rate * s.seconds);
  const base: WorkerConfig = { impl, mode, url: server.url, warmup: s.warmup, messages, rate: s.rate, window: s.window, profile: undefined };
  const args = (role: string) => workerArgs({ ...base, profile: s.profileDir && join(s.profileDir, `${impl}-${mode}-${role}-r${round}.cpuprofile`) });
  // Generous: a phase may run at 2,000 msg/s (throughput) or half the rate (latency).
  const budget = (count: number) => (mode === 'throughput' ? count / 2 : (2000 * count) / s.rate) + GRACE_MS;

  // Every run starts from an empty Redis: a history run finds no stream left by an earlier
  // one (the warm-up, 1,000 messages a ticker by default, fills them to their bound).
  server.cli('FLUSHALL');
  const sub = new Worker<SubscriberCommand, SubscriberEvent>(`${impl} ${mode} subscriber`, new URL('./pubsub-subscriber.ts', import.meta.url), args('subscriber'));
  let pub: Worker<PublisherCommand, PublisherEvent> | undefined;
  try {
    await sub.next('ready', START_MS);
    pub = new Worker<PublisherCommand, PublisherEvent>(`${impl} ${mode} publisher`, new URL('./pubsub-publisher.ts', import.meta.url), args('publisher'));
    await pub.next('ready', START_MS);
    if (s.warmup > 0) {
      pub.send({ type: 'run', phase: 'warmup' });
      await pub.next('sent', budget(s.warmup), 'end of the warm-up');
    }
    await sub.next('warm', GRACE_MS, 'warm-up messages');
    const redisCpuAtStart = redisCpuMicros(server);
    pub.send({ type: 'run', phase: 'measure' });
    const sent = await pub.next('sent', budget(messages), 'end of the measured run');
    let result: Extract<SubscriberEvent, { type: 'result' }>;
    try {
      result = await sub.next('result', GRACE_MS, 'result (all messages)');
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      sub.send({ type: 'report' });
      result = await sub.next('result', 5000);
    }
    if (!result.complete) throw new Error(`${impl} ${mode}: the subscriber received ${result.received} of ${messages} messages.`);
    const redisCpu = redisCpuMicros(server) - redisCpuAtStart;
    if (result.errors > 0) throw new Error(`${impl} ${mode}: ${result.errors} errors; the first: ${result.firstError ?? '?'}`);
    // The implementation did what it is named for: a stream per ticker with history, none
    // without (a channel that kept history unasked would pay for it silently).
    const keys = Number(server.cli('DBSIZE'));
    const expectedKeys = impl === 'tickbus-history' ? Math.min(TICKERS.length, s.warmup + messages) : 0;
    if (keys !== expectedKeys) throw new Error(`${impl} ${mode}: ${keys} keys in Redis after the run, expected ${expectedKeys}.`);
    const elapsedMs = result.lastAt - sent.startedAt;
    return {
      round,
      impl,
      mode,
      messages,
      elapsedMs,
      deliveredPerSec: (messages * 1000) / elapsedMs,
      publishedPerSec: (messages * 1000) / (sent.endedAt - sent.startedAt),
      publisherCpuUsPerMsg: sent.cpuMicros / messages,
      subscriberCpuUsPerMsg: result.cpuMicros / messages,
      redisCpuUsPerMsg: redisCpu / messages,
      keys,
      latency: result.latency,
    };
  } finally {
    await Promise.all([pub?.stop(), sub.stop()]);
  }
}

// ---- report --------------------------------------------------------------------------

/** Medians over the rounds; CPU per message for the publisher, the subscriber and redis-server. */
interface Cpu {
  publisherCpuUsPerMsg: number;
  subscriberCpuUsPerMsg: number;
  redisCpuUsPerMsg: number;
}

interface ImplResult {
  throughput?: Cpu & { deliveredPerSec: number; publishedPerSec: number; perRound: number[] };
  latency?: Cpu & { publishedPerSec: number; latencyMs: Summary; p99PerRound: number[] };
}

function medianCpu(trials: readonly Trial[]): Cpu {
  return {
    publisherCpuUsPerMsg: median(trials.map((t) => t.publisherCpuUsPerMsg)),
    subscriberCpuUsPerMsg: median(trials.map((t) => t.subscriberCpuUsPerMsg)),
    redisCpuUsPerMsg: median(trials.map((t) => t.redisCpuUsPerMsg)),
  };
}

function summarizeImpl(trials: readonly Trial[]): ImplResult {
  const out: ImplResult = {};
  const tp = trials.filter((t) => t.mode === 'throughput');
  if (tp.length > 0) {
    out.throughput = {
      deliveredPerSec: median(tp.map((t) => t.deliveredPerSec)),
      publishedPerSec: median(tp.map((t) => t.publishedPerSec)),
      ...medianCpu(tp),
      perRound: tp.map((t) => t.deliveredPerSec),
    };
  }
  const lat = trials.filter((t): t is Trial & { latency: Summary } => t.mode === 'latency' && t.latency !== undefined);
  if (lat.length > 0) {
    out.latency = {
      publishedPerSec: median(lat.map((t) => t.publishedPerSec)),
      latencyMs: medianSummary(lat.map((t) => t.latency)),
      p99PerRound: lat.map((t) => t.latency.p99),
      ...medianCpu(lat),
    };
  }
  return out;
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
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
  }
  if (s.modes.includes('latency')) {
    console.log(`\nLatency: ${int(s.rate)} msg/s for ${s.seconds} s, publish call to handler, ms (median of ${s.rounds})`);
    const rows = impls.map((impl) => {
      const l = results[impl]?.latency;
      const m = l?.latencyMs;
      return [impl, int(l?.publishedPerSec ?? NaN), fixed(m?.p50 ?? NaN), fixed(m?.p90 ?? NaN), fixed(m?.p99 ?? NaN), fixed(m?.p999 ?? NaN), fixed(m?.max ?? NaN), ...cpuCells(l), (l?.p99PerRound ?? []).map((p) => fixed(p)).join(' / ')];
    });
    console.log(table(['impl', 'sent msg/s', 'p50', 'p90', 'p99', 'p99.9', 'max', ...CPU_HEADERS, 'p99 per round'], rows));
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
  }
  return { ratios, targetsMet };
}

// ---- main ----------------------------------------------------------------------------

async function runRounds(server: RedisServer, s: Settings): Promise<Trial[]> {
  const trials: Trial[] = [];
  const width = Math.max(...s.impls.map((impl) => impl.length));
  for (let round = 1; round <= s.rounds; round++) {
    // Each round starts one implementation later (raw, tickbus, tickbus-history; then
    // tickbus, tickbus-history, raw; ...): over three rounds each runs first, second and
    // third once, so neither noise that drifts with time nor what the run before left
    // behind (a hot redis-server, a busy CPU) favours one of them.
    const order = s.impls.map((_, i) => s.impls[(i + round - 1) % s.impls.length] as Impl);
    for (const mode of s.modes) {
      for (const impl of order) {
        const t = await runTrial(server, s, round, impl, mode);
        trials.push(t);
        const detail =
          mode === 'throughput'
            ? `${int(t.deliveredPerSec)} msg/s delivered`
            : `p50 ${fixed(t.latency?.p50 ?? NaN)} ms, p99 ${fixed(t.latency?.p99 ?? NaN)} ms, max ${fixed(t.latency?.max ?? NaN)} ms at ${int(t.publishedPerSec)} msg/s`;
        console.log(
          `round ${round}/${s.rounds}  ${mode.padEnd(10)}  ${impl.padEnd(width)}  ${detail}  (CPU µs/msg: pub ${fixed(t.publisherCpuUsPerMsg, 1)}, sub ${fixed(t.subscriberCpuUsPerMsg, 1)}, redis ${fixed(t.redisCpuUsPerMsg, 1)})`,
        );
      }
    }
  }
  return trials;
}

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'zod']);
  console.log(`Machine: ${machineLine(machine)}`);
  const server = await startRedis();
  // Stopped in the finally below, on SIGINT/SIGTERM, and by a watchdog should we be killed.
  const pid = server.process.pid;
  const release = pid === undefined ? () => undefined : guardProcess(pid, server.dir);
  const stopServer = () => server.stop().finally(release);
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping the workers and redis-server.`);
      killAllWorkers();
      void stopServer().finally(() => process.exit(130));
    });
  }
  let trials: Trial[];
  try {
    if (server.port === 6379) throw new Error('refusing to benchmark on port 6379');
    const version = /redis_version:(\S+)/.exec(server.cli('INFO', 'server'))?.[1];
    if (version) machine.redisServer = version;
    console.log(`Redis: private redis-server ${machine.redisServer} on port ${server.port}`);
    if (s.profileDir) console.log(`CPU profiles: ${s.profileDir}`);
    trials = await runRounds(server, s);
  } finally {
    await stopServer();
  }

  const results: Partial<Record<Impl, ImplResult>> = {};
  for (const impl of s.impls) results[impl] = summarizeImpl(trials.filter((t) => t.impl === impl));
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
  mkdirSync(dirname(s.out), { recursive: true });
  writeFileSync(s.out, `${JSON.stringify({ benchmark: 'pubsub', date: new Date().toISOString(), machine, settings, targets: TARGETS, results, ratios, targetsMet, trials }, null, 2)}\n`);
  console.log(`\nResults written to ${s.out}`);
  return s.check && Object.values(targetsMet).includes(false) ? 3 : 0;
}

runMain(main);
