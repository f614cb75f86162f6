// Durable-channel benchmark: tickbus (bus.publish on a durable channel, bus.consume in a
// consumer group) against a raw node-redis XADD / XREADGROUP / XACK loop. Publisher and
// consumer run in separate processes on one private redis-server. Measures end-to-end
// throughput (N price messages, a bounded window of appends in flight, first publish to the
// last handler call) and publish-to-handler latency at a fixed rate, alternating raw and
// tickbus runs over several rounds and reporting medians. After every run it checks that
// each message was handled once and that the group has nothing pending (every message
// acknowledged). Writes the figures to artifacts/bench-durable.json.
//
//   node --import tsx bench/durable.ts [--messages N] [--rate R] [--seconds S] [--rounds N] [--help]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer } from '../test/harness/redis-server.ts';
import { UsageError, choiceOption, intOption, parseCli, positiveOption, runMain, table, type OptionSpec } from './lib/cli.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { TimeoutError, Worker, guardProcess, killAllWorkers } from './lib/proc.ts';
import { median, medianSummary, ratio, type Summary } from './lib/stats.ts';
import {
  GROUP,
  IMPLS,
  MAX_LEN,
  MODES,
  STREAM_KEY,
  workerArgs,
  type ConsumerCommand,
  type ConsumerEvent,
  type Impl,
  type Mode,
  type PublisherCommand,
  type PublisherEvent,
  type WorkerConfig,
} from './durable-common.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const OPTIONS = {
  messages: { type: 'string', value: 'N', default: '100000', description: 'Measured messages per throughput run.' },
  rate: { type: 'string', value: 'R', default: '5000', description: 'Latency runs: messages per second.' },
  seconds: { type: 'string', value: 'S', default: '10', description: 'Latency runs: measured seconds.' },
  rounds: { type: 'string', value: 'N', default: '3', description: 'Rounds; each runs raw then tickbus. Medians are reported.' },
  window: { type: 'string', value: 'N', default: '512', description: 'Publishes (XADDs) in flight at most (both implementations).' },
  batch: { type: 'string', value: 'N', default: '100', description: 'Entries per read: XREADGROUP COUNT (raw), batchSize (tickbus).' },
  block: { type: 'string', value: 'ms', default: '1000', description: 'How long a read waits for entries: XREADGROUP BLOCK (raw), blockMs (tickbus).' },
  warmup: { type: 'string', value: 'N', default: '5000', description: 'Unmeasured messages before each run (latency runs send them at the rate).' },
  only: { type: 'string', value: 'which', default: 'both', description: 'throughput, latency or both.' },
  impl: { type: 'string', value: 'which', default: 'both', description: 'raw, tickbus or both (one alone: for profiling).' },
  profile: { type: 'boolean', description: 'Write V8 CPU profiles of the workers to artifacts/profiles/ (slows them; not for the figures).' },
  check: { type: 'boolean', description: 'Exit with code 3 when the throughput target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-durable.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

const TARGETS = { throughputRatio: 0.8 } as const;

/** How long a worker may take to start, connect and join the group. */
const START_MS = 30_000;
/** How long the last message may trail the publisher's last acknowledgement. */
const GRACE_MS = 30_000;
/** How long the last acknowledgement may trail the last handler call. */
const ACK_MS = 10_000;

interface Settings {
  messages: number;
  rate: number;
  seconds: number;
  rounds: number;
  window: number;
  batch: number;
  block: number;
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
  /** First publish to the handler's call for the last message. */
  elapsedMs: number;
  /** messages / elapsedMs: the end-to-end rate. */
  deliveredPerSec: number;
  /** messages / (first publish to last publish acknowledged). */
  publishedPerSec: number;
  /** CPU (user + system) per measured message, microseconds. */
  publisherCpuUsPerMsg: number;
  consumerCpuUsPerMsg: number;
  /** redis-server's CPU (user + system, INFO cpu) over the measured phase, per message. */
  redisCpuUsPerMsg: number;
  /** Latency runs: publish call to handler, ms. */
  latency: Summary | undefined;
  /** The checks after the run: what the stream and the group held. */
  verified: { handled: number; pending: number; streamLength: number; entriesAdded: number; lag: number | undefined };
}

function settingsFrom(argv: string[]): Settings {
  const v = parseCli(
    'node --import tsx bench/durable.ts [options]',
    [
      'Durable channels: tickbus (bus.publish on a durable channel, bus.consume in a consumer group) against a raw',
      'node-redis XADD / XREADGROUP / XACK loop. Separate publisher and consumer processes, one private redis-server.',
      'Throughput (first publish to last handler call) and publish-to-handler latency at a fixed rate; checks that',
      'every message was handled once and acknowledged (XPENDING 0). Quick check: --messages 20000 --seconds 2 --rounds 1',
    ].join('\n'),
    OPTIONS,
    argv,
  );
  const only = choiceOption(v.only, 'only', ['throughput', 'latency', 'both']);
  const impl = choiceOption(v.impl, 'impl', ['raw', 'tickbus', 'both']);
  const rate = positiveOption(v.rate, 'rate');
  const seconds = positiveOption(v.seconds, 'seconds');
  if (Math.round(rate * seconds) < 1) throw new UsageError('--rate times --seconds must be at least one message.');
  const messages = intOption(v.messages, 'messages');
  const warmup = intOption(v.warmup, 'warmup', 0);
  // Entries beyond the bound are trimmed, and an entry trimmed before it was read is lost.
  if (Math.max(messages, Math.round(rate * seconds)) > MAX_LEN) throw new UsageError(`--messages (and --rate x --seconds) must be at most the stream's bound, ${MAX_LEN}: a consumer that falls further behind loses the trimmed entries.`);
  return {
    messages,
    rate,
    seconds,
    rounds: intOption(v.rounds, 'rounds'),
    window: intOption(v.window, 'window'),
    batch: intOption(v.batch, 'batch'),
    block: intOption(v.block, 'block'),
    warmup,
    modes: only === 'both' ? MODES : [only],
    impls: impl === 'both' ? IMPLS : [impl],
    profileDir: v.profile ? resolve(ROOT, 'artifacts/profiles', new Date().toISOString().replace(/[:.]/g, '-')) : undefined,
    check: v.check,
    out: resolve(process.cwd(), v.out),
  };
}

// ---- checks through redis-cli ----------------------------------------------------------

/** Fields of a flat redis-cli reply (`name\nvalue\n…`), as text. */
function fields(text: string): Map<string, string> {
  const lines = text.split('\n');
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i] as string, lines[i + 1] as string);
  return out;
}

/** redis-server's CPU time so far (user + system, all threads), in microseconds. */
function redisCpuMicros(server: RedisServer): number {
  const info = server.cli('INFO', 'cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1]);
  return (user + sys) * 1e6;
}

/** Entries the group holds without an acknowledgement (XPENDING's summary count). */
function pendingCount(server: RedisServer): number {
  const out = server.cli('XPENDING', STREAM_KEY, GROUP);
  const n = Number(out.split('\n')[0]);
  if (!Number.isInteger(n)) throw new Error(`XPENDING ${STREAM_KEY} ${GROUP}: unexpected reply ${out.slice(0, 80)}`);
  return n;
}

/** Waits until every handled message is acknowledged, then reads what the stream and the group hold. */
async function verify(server: RedisServer, handled: number): Promise<Trial['verified']> {
  const deadline = Date.now() + ACK_MS;
  let pending = pendingCount(server);
  while (pending > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    pending = pendingCount(server);
  }
  // XINFO STREAM: flat fields; entries-added (Redis 7) comes before the nested first-entry.
  const stream = fields(server.cli('XINFO', 'STREAM', STREAM_KEY));
  // XINFO GROUPS: one group, its fields flat (`lag` from Redis 7).
  const group = fields(server.cli('XINFO', 'GROUPS', STREAM_KEY));
  const lag = group.get('lag');
  return {
    handled,
    pending,
    streamLength: Number(server.cli('XLEN', STREAM_KEY)),
    entriesAdded: Number(stream.get('entries-added')),
    lag: lag === undefined || lag === '' ? undefined : Number(lag),
  };
}

// ---- one run ---------------------------------------------------------------------------

async function runTrial(server: RedisServer, s: Settings, round: number, impl: Impl, mode: Mode): Promise<Trial> {
  const messages = mode === 'throughput' ? s.messages : Math.round(s.rate * s.seconds);
  server.cli('FLUSHALL');
  const base: WorkerConfig = { impl, mode, url: server.url, warmup: s.warmup, messages, rate: s.rate, window: s.window, batch: s.batch, block: s.block, profile: undefined };
  const args = (role: string) => workerArgs({ ...base, profile: s.profileDir && join(s.profileDir, `${impl}-${mode}-${role}-r${round}.cpuprofile`) });
  // Generous: a phase may run at 2,000 msg/s (throughput) or half the rate (latency).
  const budget = (count: number) => (mode === 'throughput' ? count / 2 : (2000 * count) / s.rate) + GRACE_MS;

  const con = new Worker<ConsumerCommand, ConsumerEvent>(`${impl} ${mode} consumer`, new URL('./durable-consumer.ts', import.meta.url), args('consumer'));
  let pub: Worker<PublisherCommand, PublisherEvent> | undefined;
  try {
    await con.next('ready', START_MS);
    pub = new Worker<PublisherCommand, PublisherEvent>(`${impl} ${mode} publisher`, new URL('./durable-publisher.ts', import.meta.url), args('publisher'));
    await pub.next('ready', START_MS);
    if (s.warmup > 0) {
      pub.send({ type: 'run', phase: 'warmup' });
      await pub.next('sent', budget(s.warmup), 'end of the warm-up');
    }
    await con.next('warm', GRACE_MS, 'warm-up messages');
    const redisCpuBefore = redisCpuMicros(server);
    pub.send({ type: 'run', phase: 'measure' });
    const sent = await pub.next('sent', budget(messages), 'end of the measured run');
    let result: Extract<ConsumerEvent, { type: 'result' }>;
    try {
      result = await con.next('result', GRACE_MS, 'result (all messages)');
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      con.send({ type: 'report' });
      result = await con.next('result', 5000);
    }
    const redisCpu = redisCpuMicros(server) - redisCpuBefore;
    if (!result.complete) throw new Error(`${impl} ${mode}: the consumer handled ${result.handled} of ${messages} messages.`);
    if (result.errors > 0) throw new Error(`${impl} ${mode}: ${result.errors} errors; the first: ${result.firstError ?? '?'}`);
    const verified = await verify(server, s.warmup + result.handled);
    const published = s.warmup + messages;
    if (verified.pending !== 0) throw new Error(`${impl} ${mode}: ${verified.pending} messages still pending (not acknowledged) ${ACK_MS / 1000} s after the last was handled.`);
    if (verified.entriesAdded !== published) throw new Error(`${impl} ${mode}: the stream received ${verified.entriesAdded} entries, ${published} were published.`);
    if (verified.lag !== undefined && verified.lag !== 0) throw new Error(`${impl} ${mode}: the group's lag is ${verified.lag}, not 0.`);
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
      consumerCpuUsPerMsg: result.cpuMicros / messages,
      redisCpuUsPerMsg: redisCpu / messages,
      latency: result.latency,
      verified,
    };
  } finally {
    await Promise.all([pub?.stop(), con.stop()]);
  }
}

// ---- report --------------------------------------------------------------------------

interface ImplResult {
  throughput?: { deliveredPerSec: number; publishedPerSec: number; publisherCpuUsPerMsg: number; consumerCpuUsPerMsg: number; redisCpuUsPerMsg: number; perRound: number[] };
  latency?: { publishedPerSec: number; latencyMs: Summary; p50PerRound: number[]; p99PerRound: number[]; publisherCpuUsPerMsg: number; consumerCpuUsPerMsg: number; redisCpuUsPerMsg: number };
}

function summarizeImpl(trials: readonly Trial[]): ImplResult {
  const out: ImplResult = {};
  const tp = trials.filter((t) => t.mode === 'throughput');
  if (tp.length > 0) {
    out.throughput = {
      deliveredPerSec: median(tp.map((t) => t.deliveredPerSec)),
      publishedPerSec: median(tp.map((t) => t.publishedPerSec)),
      publisherCpuUsPerMsg: median(tp.map((t) => t.publisherCpuUsPerMsg)),
      consumerCpuUsPerMsg: median(tp.map((t) => t.consumerCpuUsPerMsg)),
      redisCpuUsPerMsg: median(tp.map((t) => t.redisCpuUsPerMsg)),
      perRound: tp.map((t) => t.deliveredPerSec),
    };
  }
  const lat = trials.filter((t): t is Trial & { latency: Summary } => t.mode === 'latency' && t.latency !== undefined);
  if (lat.length > 0) {
    out.latency = {
      publishedPerSec: median(lat.map((t) => t.publishedPerSec)),
      latencyMs: medianSummary(lat.map((t) => t.latency)),
      p50PerRound: lat.map((t) => t.latency.p50),
      p99PerRound: lat.map((t) => t.latency.p99),
      publisherCpuUsPerMsg: median(lat.map((t) => t.publisherCpuUsPerMsg)),
      consumerCpuUsPerMsg: median(lat.map((t) => t.consumerCpuUsPerMsg)),
      redisCpuUsPerMsg: median(lat.map((t) => t.redisCpuUsPerMsg)),
    };
  }
  return out;
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

function report(s: Settings, results: Partial<Record<Impl, ImplResult>>): { ratios: Record<string, number>; targetsMet: Record<string, boolean> } {
  const ratios: Record<string, number> = {};
  const targetsMet: Record<string, boolean> = {};
  const impls = s.impls;
  if (s.modes.includes('throughput')) {
    console.log(`\nThroughput: ${int(s.messages)} messages, window ${s.window}, reads of ${s.batch}, first publish to last handler call (median of ${s.rounds})`);
    const rows = impls.map((impl) => {
      const t = results[impl]?.throughput;
      return [impl, int(t?.deliveredPerSec ?? NaN), int(t?.publishedPerSec ?? NaN), fixed(t?.publisherCpuUsPerMsg ?? NaN, 1), fixed(t?.consumerCpuUsPerMsg ?? NaN, 1), fixed(t?.redisCpuUsPerMsg ?? NaN, 1), (t?.perRound ?? []).map(int).join(' / ')];
    });
    console.log(table(['impl', 'msg/s', 'published msg/s', 'pub CPU µs/msg', 'consumer CPU µs/msg', 'redis CPU µs/msg', 'per round msg/s'], rows));
    const raw = results.raw?.throughput;
    const tb = results.tickbus?.throughput;
    if (raw && tb) {
      ratios.throughput = ratio(tb.deliveredPerSec, raw.deliveredPerSec);
      ratios.publisherCpu = ratio(tb.publisherCpuUsPerMsg, raw.publisherCpuUsPerMsg);
      ratios.consumerCpu = ratio(tb.consumerCpuUsPerMsg, raw.consumerCpuUsPerMsg);
      ratios.redisCpu = ratio(tb.redisCpuUsPerMsg, raw.redisCpuUsPerMsg);
      targetsMet.throughput = ratios.throughput >= TARGETS.throughputRatio;
      console.log(`tickbus/raw throughput: ${fixed(ratios.throughput)}x  (target >= ${TARGETS.throughputRatio}x: ${verdict(targetsMet.throughput)})`);
      console.log(`tickbus/raw CPU per message: publisher ${fixed(ratios.publisherCpu)}x, consumer ${fixed(ratios.consumerCpu)}x, redis-server ${fixed(ratios.redisCpu)}x`);
    }
  }
  if (s.modes.includes('latency')) {
    console.log(`\nLatency: ${int(s.rate)} msg/s for ${s.seconds} s, publish call to handler, ms (median of ${s.rounds})`);
    const rows = impls.map((impl) => {
      const l = results[impl]?.latency;
      const m = l?.latencyMs;
      return [impl, int(l?.publishedPerSec ?? NaN), fixed(m?.p50 ?? NaN), fixed(m?.p90 ?? NaN), fixed(m?.p99 ?? NaN), fixed(m?.p999 ?? NaN), fixed(m?.max ?? NaN), (l?.p99PerRound ?? []).map((p) => fixed(p)).join(' / ')];
    });
    console.log(table(['impl', 'sent msg/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'p99 per round'], rows));
    const raw = results.raw?.latency;
    const tb = results.tickbus?.latency;
    if (raw && tb) {
      ratios.p50 = ratio(tb.latencyMs.p50, raw.latencyMs.p50);
      ratios.p99 = ratio(tb.latencyMs.p99, raw.latencyMs.p99);
      console.log(`tickbus/raw latency: p50 ${fixed(ratios.p50)}x, p99 ${fixed(ratios.p99)}x`);
    }
  }
  console.log('\nChecked after every run: each message handled once, in stream order; XPENDING 0 (all acknowledged); group lag 0; entries added = messages published.');
  return { ratios, targetsMet };
}

// ---- main ----------------------------------------------------------------------------

async function runRounds(server: RedisServer, s: Settings): Promise<Trial[]> {
  const trials: Trial[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    for (const mode of s.modes) {
      for (const impl of s.impls) {
        const t = await runTrial(server, s, round, impl, mode);
        trials.push(t);
        const detail =
          mode === 'throughput'
            ? `${int(t.deliveredPerSec)} msg/s handled (published ${int(t.publishedPerSec)} msg/s)`
            : `p50 ${fixed(t.latency?.p50 ?? NaN)} ms, p99 ${fixed(t.latency?.p99 ?? NaN)} ms, max ${fixed(t.latency?.max ?? NaN)} ms at ${int(t.publishedPerSec)} msg/s`;
        console.log(`round ${round}/${s.rounds}  ${mode.padEnd(10)}  ${impl.padEnd(7)}  ${detail}  (CPU µs/msg: pub ${fixed(t.publisherCpuUsPerMsg, 1)}, consumer ${fixed(t.consumerCpuUsPerMsg, 1)}, redis ${fixed(t.redisCpuUsPerMsg, 1)}; pending ${t.verified.pending})`);
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
    console.log(`Redis: private redis-server ${machine.redisServer} on port ${server.port}; stream ${STREAM_KEY}, MAXLEN ~ ${MAX_LEN}, group ${GROUP}`);
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
    rate: s.rate,
    seconds: s.seconds,
    rounds: s.rounds,
    window: s.window,
    batch: s.batch,
    blockMs: s.block,
    warmup: s.warmup,
    maxLen: MAX_LEN,
    streamKey: STREAM_KEY,
    group: GROUP,
    modes: s.modes,
    impls: s.impls,
    profiled: s.profileDir !== undefined,
  };
  mkdirSync(dirname(s.out), { recursive: true });
  writeFileSync(s.out, `${JSON.stringify({ benchmark: 'durable', date: new Date().toISOString(), machine, settings, targets: TARGETS, results, ratios, targetsMet, trials }, null, 2)}\n`);
  console.log(`\nResults written to ${s.out}`);
  return s.check && Object.values(targetsMet).includes(false) ? 3 : 0;
}

runMain(main);
