// Gateway benchmark: WebSocket fan-out of price updates, the tickbus gateway against a
// Socket.IO 4 server that subscribes to Redis and emits to rooms (the seeds' pattern).
// One private redis-server; per run a fresh server-under-test process (its CPU and memory
// measured alone), client processes holding many WebSocket connections on loopback, each
// client watching 5 of 100 symbols, and a publisher process sending prices for the 100
// symbols at a fixed rate through TickerUpdates (both servers read the same Redis
// messages). Reports per configuration and implementation: updates delivered per second,
// publisher-to-client latency, the server's CPU time per delivery, and its memory.
// Writes artifacts/bench-gateway.json and an SVG chart.
//
//   node --import tsx bench/gateway.ts [--clients N] [--rate R] [--seconds S] [--rounds N] [--help]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { RedisServer } from '../test/harness/redis-server.ts';
import type { BatchTiming } from '../src/gateway/flush.ts';
import { GATEWAY_DEFAULTS } from '../src/core/defaults.ts';
import { barChartSvg } from './lib/bar-chart.ts';
import { UsageError, choiceOption, intOption, parseCli, positiveOption, runMain, table, type OptionSpec } from './lib/cli.ts';
import { describeMachine, machineLine, type Machine } from './lib/machine.ts';
import { Worker } from './lib/proc.ts';
import { fixed, int, outputsFrom, verdict, writeResults } from './lib/report.ts';
import { redisCpuMicros, withPrivateRedis } from './lib/server.ts';
import { median, medianSummary, ratio, summarize, type Summary } from './lib/stats.ts';
import { IMPLS, IMPL_NAMES, PEERS, watchersPerSymbol, type ClientsCommand, type ClientsEvent, type ClientsResult, type Impl, type PublisherCommand, type PublisherEvent, type ServerCommand, type ServerEvent, type ServerMark } from './gateway-common.ts';

const OPTIONS = {
  clients: { type: 'string', value: 'N', default: '1000', description: 'Clients in the batch-off and batched configurations.' },
  rate: { type: 'string', value: 'R', default: '1000', description: 'Price updates published per second (all symbols) in those two: 1,000/s to 50 watchers a symbol is 50,000 deliveries/s.' },
  'batch-ms': { type: 'string', value: 'ms', default: String(GATEWAY_DEFAULTS.batchMs), description: 'The gateway batchMs of the batched and light configurations (the gateway\'s default).' },
  'batch-timing': { type: 'string', value: 'how', default: 'adaptive', description: "The gateway's batch timing in the batched and light configurations: adaptive (its default) or interval." },
  'light-rate': { type: 'string', value: 'R', default: '20', description: 'Price updates per second in the light configuration (same clients as batched: 20/s is 1,000 deliveries/s to 1,000 clients).' },
  'large-clients': { type: 'string', value: 'N', default: '10000', description: 'Clients in the large configuration.' },
  'large-rate': { type: 'string', value: 'R', default: '20', description: 'Price updates per second in the large configuration (20/s to 500 watchers a symbol: 10,000 deliveries/s).' },
  'large-batch-ms': { type: 'string', value: 'ms', default: '0', description: 'The gateway batchMs of the large configuration.' },
  configs: { type: 'string', value: 'list', default: 'batch-off,batched,light,large', description: 'Which configurations to run: batch-off, batched, light, large (comma-separated).' },
  impl: { type: 'string', value: 'which', default: 'all', description: 'tickbus, socketio, ws (a bare ws server doing only the fan-out: the floor), a comma-separated list, or all (tickbus and socketio).' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols published (in turn).' },
  'per-client': { type: 'string', value: 'N', default: '5', description: 'Symbols each client watches.' },
  seconds: { type: 'string', value: 'S', default: '10', description: 'Measured seconds per run.' },
  warmup: { type: 'string', value: 'S', default: '3', description: 'Seconds of publishing before the measured ones (the clients connected and subscribed).' },
  rounds: { type: 'string', value: 'N', default: '3', description: 'Rounds; each runs every configuration and implementation once, alternating which implementation goes first. Medians are reported.' },
  'client-procs': { type: 'string', value: 'N', default: '2', description: 'Processes the clients are spread over.' },
  'max-samples': { type: 'string', value: 'N', default: '200000', description: 'Latency samples kept per run at most (every n-th update).' },
  profile: { type: 'boolean', description: "Write a V8 CPU profile of each server's measured window to artifacts/profiles/ (slows it; not for the figures)." },
  check: { type: 'boolean', description: 'Exit with code 3 when a target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-gateway.json', description: 'Where to write the JSON results.' },
  chart: { type: 'string', value: 'file', default: 'artifacts/bench-gateway.svg', description: 'Where to write the SVG chart (the recorded one: docs/gateway-bench.svg).' },
  replot: { type: 'string', value: 'json', description: 'Only redraw the chart from a results file written earlier, then exit.' },
} as const satisfies Record<string, OptionSpec>;

const TARGETS = {
  /** Concurrent clients one gateway process holds (every one connected, subscribed and served). */
  clients: 10_000,
  /** p99 at 1,000 clients and 50,000 deliveries/s with batching off, ms (below). */
  p99Ms: 50,
  p99Clients: 1_000,
  p99DeliveriesPerSec: 50_000,
  /** Gateway CPU per delivery over Socket.IO's, at most. */
  cpuRatio: 0.25,
  /** p99 with the default (adaptive) batching at the batched configuration's load, and at light load, ms. */
  batchedP99Ms: 100,
  lightP99Ms: 10,
} as const;

const CONFIG_NAMES = ['batch-off', 'batched', 'light', 'large'] as const;
type ConfigName = (typeof CONFIG_NAMES)[number];

interface Config {
  name: ConfigName;
  clients: number;
  rate: number;
  /** The gateway's batchMs (Socket.IO has no batching: it sends each update at once). */
  batchMs: number;
  /** The gateway's batch timing (with batchMs above 0). */
  timing: BatchTiming;
}

interface Settings {
  configs: Config[];
  impls: Impl[];
  symbols: number;
  perClient: number;
  seconds: number;
  warmup: number;
  rounds: number;
  clientProcs: number;
  maxSamples: number;
  check: boolean;
  out: string;
  profileDir: string | undefined;
  chart: string;
}

/** One run: a configuration, an implementation, a round. */
interface Trial {
  config: ConfigName;
  impl: Impl;
  round: number;
  clients: number;
  /** Set when the run failed (the clients could not connect, a worker died): what happened. */
  failed?: string;
  connected: number;
  /** Opening every connection and confirming every subscription, s. */
  connectSeconds: number;
  /** Connections the server counted at the end of the window. */
  serverConnections: number;
  publishedPerSec: number;
  /** Published x watchers per symbol: what should arrive. */
  expectedPerSec: number;
  deliveriesPerSec: number;
  /** WebSocket frames per second carrying them (batches, Socket.IO packets). */
  framesPerSec: number;
  latencyMs: Summary;
  serverCpuUsPerDelivery: number;
  /** Server CPU over the window: 1.0 is one core busy. */
  serverCpuCores: number;
  /** RSS after the window, every client still connected, right after a full GC. */
  serverRssMB: number;
  /** The JS heap in use then. */
  serverHeapMB: number;
  /** Peak RSS of the server process up to the end of the window. */
  serverMaxRssMB: number;
  /** RSS before any client connected (after a full GC). */
  serverBaseRssMB: number;
  /** (RSS after the window - RSS before clients) / clients: what a connection costs. */
  serverKBPerClient: number;
  /** The same for the JS heap. */
  serverHeapKBPerClient: number;
  clientCpuUsPerDelivery: number;
  redisCpuUsPerDelivery: number;
  lost: number;
  outOfOrder: number;
  disconnects: number;
  errors: number;
  firstError: string | undefined;
}

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function settingsFrom(argv: string[]): Settings & { replot: string | undefined } {
  const v = parseCli(
    'node --import tsx bench/gateway.ts [options]',
    'WebSocket fan-out: the tickbus gateway against a Socket.IO server that subscribes to Redis and emits to rooms. Many clients on loopback, each watching 5 of 100 symbols, a publisher sending prices at a fixed rate; per configuration: deliveries/s, latency, server CPU per delivery and memory.',
    OPTIONS,
    argv,
  );
  const names = v.configs.split(',').map((c) => choiceOption(c.trim(), 'configs', CONFIG_NAMES));
  if (names.length === 0) throw new UsageError('--configs names none.');
  const clients = intOption(v.clients, 'clients');
  const rate = positiveOption(v.rate, 'rate');
  const timing = choiceOption(v['batch-timing'], 'batch-timing', ['adaptive', 'interval'] as const);
  const all: Record<ConfigName, Config> = {
    'batch-off': { name: 'batch-off', clients, rate, batchMs: 0, timing },
    batched: { name: 'batched', clients, rate, batchMs: intOption(v['batch-ms'], 'batch-ms'), timing },
    light: { name: 'light', clients, rate: positiveOption(v['light-rate'], 'light-rate'), batchMs: intOption(v['batch-ms'], 'batch-ms'), timing },
    large: { name: 'large', clients: intOption(v['large-clients'], 'large-clients'), rate: positiveOption(v['large-rate'], 'large-rate'), batchMs: intOption(v['large-batch-ms'], 'large-batch-ms', 0), timing },
  };
  const implList = (v.impl ?? 'all') === 'all' ? [...PEERS] : (v.impl ?? '').split(',').map((i) => choiceOption(i.trim(), 'impl', IMPLS));
  const { check, out, profileDir } = outputsFrom({ profile: v.profile, check: v.check, out: v.out });
  return {
    configs: CONFIG_NAMES.filter((n) => names.includes(n)).map((n) => all[n]),
    impls: implList,
    symbols: intOption(v.symbols, 'symbols'),
    perClient: intOption(v['per-client'], 'per-client'),
    seconds: positiveOption(v.seconds, 'seconds'),
    warmup: positiveOption(v.warmup, 'warmup'),
    rounds: intOption(v.rounds, 'rounds'),
    clientProcs: intOption(v['client-procs'], 'client-procs'),
    maxSamples: intOption(v['max-samples'], 'max-samples'),
    check,
    out,
    profileDir,
    chart: resolve(process.cwd(), v.chart),
    replot: v.replot,
  };
}

/** The open-file limit the workers inherit: each client is a socket in the server and one in a client process. */
function checkFileLimit(s: Settings): void {
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  const most = Math.max(...s.configs.map((c) => c.clients));
  if (Number.isFinite(limit) && most + 512 > limit) {
    throw new UsageError(`${int(most)} clients need about ${int(most + 512)} open files in the server process; the limit is ${int(limit)}. Raise it first (ulimit -n ${most + 1024}, as root or within the hard limit) or run fewer clients.`);
  }
}

// ---- one run -------------------------------------------------------------------------

const batchLabel = (c: Config) => (c.batchMs === 0 ? 'batching off' : c.timing === 'adaptive' ? `adaptive batching, at most ${c.batchMs} ms` : `batch every ${c.batchMs} ms`);
const configLabel = (c: Config) => `${int(c.clients)} clients, ${int(c.rate)}/s, ${batchLabel(c)}`;

async function runTrial(redis: RedisServer, s: Settings, config: Config, impl: Impl, round: number): Promise<Trial> {
  const label = `${config.name} ${impl}`;
  redis.cli('FLUSHALL');
  const watchers = watchersPerSymbol(config.clients, s.perClient, s.symbols);
  const meanWatchers = watchers.reduce((a, b) => a + b, 0) / watchers.length;
  const server = new Worker<ServerCommand, ServerEvent>(`${label} server`, new URL('./gateway-server.ts', import.meta.url), [
    ...['--impl', impl, '--url', redis.url, '--batch-ms', String(config.batchMs), '--batch-timing', config.timing],
    ...(s.profileDir ? ['--profile', join(s.profileDir, `${config.name}-${impl}-server-r${round}.cpuprofile`)] : []),
  ]);
  const clientWorkers: Array<Worker<ClientsCommand, ClientsEvent>> = [];
  let pub: Worker<PublisherCommand, PublisherEvent> | undefined;
  try {
    const ready = await server.next('ready', 30_000);
    if (ready.type !== 'ready') throw new Error('unreachable');
    const procs = Math.min(s.clientProcs, config.clients);
    let first = 0;
    for (let p = 0; p < procs; p++) {
      const count = Math.floor(config.clients / procs) + (p < config.clients % procs ? 1 : 0);
      clientWorkers.push(
        new Worker(`${label} clients ${p + 1}`, new URL('./gateway-clients.ts', import.meta.url), ['--impl', impl, '--port', String(ready.port), '--count', String(count), '--first', String(first), '--symbols', String(s.symbols), '--per-client', String(s.perClient)]),
      );
      first += count;
    }
    const connectBudget = 60_000 + config.clients * 20;
    const clientsReady = await Promise.all(clientWorkers.map((w) => w.next('ready', connectBudget, 'every client connected and subscribed')));
    const connected = clientsReady.reduce((n, r) => n + (r.type === 'ready' ? r.connected : 0), 0);
    const connectSeconds = Math.max(...clientsReady.map((r) => (r.type === 'ready' ? r.connectMs : NaN))) / 1000;

    pub = new Worker<PublisherCommand, PublisherEvent>(`${label} publisher`, new URL('./gateway-publisher.ts', import.meta.url), ['--url', redis.url, '--rate', String(config.rate), '--symbols', String(s.symbols)]);
    await pub.next('ready', 30_000);
    pub.send({ type: 'start' });
    await sleep(s.warmup * 1000);

    // The window: the server's CPU and memory, the publisher's count and the clients' counters, all at once.
    const expected = config.rate * s.seconds * meanWatchers;
    const sampleEvery = Math.max(1, Math.ceil(expected / s.maxSamples));
    server.send({ type: 'mark' });
    pub.send({ type: 'mark' });
    for (const w of clientWorkers) w.send({ type: 'begin', sampleEvery });
    const redisCpuAtStart = redisCpuMicros(redis);
    const [serverStart, pubStart] = await Promise.all([server.next('marked', 10_000), pub.next('marked', 10_000), ...clientWorkers.map((w) => w.next('begun', 10_000))]);
    await sleep(s.seconds * 1000);
    server.send({ type: 'mark' });
    pub.send({ type: 'mark' });
    for (const w of clientWorkers) w.send({ type: 'end' });
    const redisCpu = redisCpuMicros(redis) - redisCpuAtStart;
    const [serverEnd, pubEnd, ...results] = await Promise.all([server.next('marked', 10_000), pub.next('marked', 10_000), ...clientWorkers.map((w) => w.next('result', 30_000))]);
    // Memory once the window is over (a full GC first, which must not fall in the window).
    server.send({ type: 'memory' });
    const memory = await server.next('memory', 30_000);
    pub.send({ type: 'stop' });
    const stopped = await pub.next('stopped', 30_000);
    if (stopped.type === 'stopped' && stopped.errors > 0) throw new Error(`${label}: ${stopped.errors} publishes failed; the first: ${stopped.firstError ?? '?'}`);

    const sEnd: ServerMark = serverEnd;
    const sStart: ServerMark = serverStart;
    const [pStart, pEnd] = [pubStart, pubEnd];
    const clients: ClientsResult[] = results;
    const sum = (f: (r: ClientsResult) => number) => clients.reduce((n, r) => n + f(r), 0);
    const deliveriesPerSec = sum((r) => (r.deliveries * 1000) / r.windowMs);
    const framesPerSec = sum((r) => (r.frames * 1000) / r.windowMs);
    const publishedPerSec = ((pEnd.published - pStart.published) * 1000) / (pEnd.at - pStart.at);
    const serverSeconds = (sEnd.at - sStart.at) / 1000;
    const serverCpuPerSec = (sEnd.cpuMicros - sStart.cpuMicros) / serverSeconds;
    const samples = new Float64Array(sum((r) => r.samples.length));
    let at = 0;
    for (const r of clients) {
      samples.set(r.samples, at);
      at += r.samples.length;
    }
    const deliveries = sum((r) => r.deliveries);
    const errors = sum((r) => r.errors);
    return {
      config: config.name,
      impl,
      round,
      clients: config.clients,
      connected,
      connectSeconds,
      serverConnections: sEnd.connections,
      publishedPerSec,
      expectedPerSec: publishedPerSec * meanWatchers,
      deliveriesPerSec,
      framesPerSec,
      latencyMs: summarize(samples),
      serverCpuUsPerDelivery: serverCpuPerSec / deliveriesPerSec,
      serverCpuCores: serverCpuPerSec / 1e6,
      serverRssMB: memory.rss / MB,
      serverHeapMB: memory.heapUsed / MB,
      serverMaxRssMB: sEnd.maxRss / MB,
      serverBaseRssMB: ready.rss / MB,
      serverKBPerClient: (memory.rss - ready.rss) / 1024 / config.clients,
      serverHeapKBPerClient: (memory.heapUsed - ready.heapUsed) / 1024 / config.clients,
      clientCpuUsPerDelivery: sum((r) => r.cpuMicros) / deliveries,
      redisCpuUsPerDelivery: redisCpu / deliveries,
      lost: sum((r) => r.lost),
      outOfOrder: sum((r) => r.outOfOrder),
      disconnects: sum((r) => r.disconnects),
      errors,
      firstError: clients.find((r) => r.firstError !== undefined)?.firstError,
    };
  } finally {
    await Promise.all([pub?.stop(), ...clientWorkers.map((w) => w.stop(10_000))]);
    await server.stop(10_000);
  }
}

const NO_LATENCY: Summary = { count: 0, mean: Number.NaN, p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, p999: Number.NaN, max: Number.NaN };

function failedTrial(config: Config, impl: Impl, round: number, error: unknown): Trial {
  const nan = Number.NaN;
  return {
    config: config.name,
    impl,
    round,
    clients: config.clients,
    failed: error instanceof Error ? error.message : String(error),
    connected: nan,
    connectSeconds: nan,
    serverConnections: nan,
    publishedPerSec: nan,
    expectedPerSec: nan,
    deliveriesPerSec: nan,
    framesPerSec: nan,
    latencyMs: NO_LATENCY,
    serverCpuUsPerDelivery: nan,
    serverCpuCores: nan,
    serverRssMB: nan,
    serverHeapMB: nan,
    serverMaxRssMB: nan,
    serverBaseRssMB: nan,
    serverKBPerClient: nan,
    serverHeapKBPerClient: nan,
    clientCpuUsPerDelivery: nan,
    redisCpuUsPerDelivery: nan,
    lost: nan,
    outOfOrder: nan,
    disconnects: nan,
    errors: nan,
    firstError: undefined,
  };
}

function describeTrial(t: Trial): string {
  if (t.failed) return `FAILED: ${t.failed}`;
  const problems = [t.lost > 0 ? `${int(t.lost)} lost` : '', t.outOfOrder > 0 ? `${int(t.outOfOrder)} out of order` : '', t.disconnects > 0 ? `${int(t.disconnects)} disconnected` : '', t.errors > 0 ? `${int(t.errors)} errors (${t.firstError ?? ''})` : ''].filter(Boolean).join(', ');
  return (
    `${int(t.deliveriesPerSec)} deliveries/s of ${int(t.expectedPerSec)}, p50 ${fixed(t.latencyMs.p50)} ms, p99 ${fixed(t.latencyMs.p99)} ms, ` +
    `server ${fixed(t.serverCpuUsPerDelivery)} µs/delivery (${fixed(t.serverCpuCores)} cores), RSS ${fixed(t.serverRssMB, 0)} MB, connect ${fixed(t.connectSeconds, 1)} s` +
    (problems ? `  [${problems}]` : '')
  );
}

// ---- medians and report ----------------------------------------------------------------

const FIELDS = ['deliveriesPerSec', 'expectedPerSec', 'publishedPerSec', 'framesPerSec', 'serverCpuUsPerDelivery', 'serverCpuCores', 'serverRssMB', 'serverHeapMB', 'serverMaxRssMB', 'serverBaseRssMB', 'serverKBPerClient', 'serverHeapKBPerClient', 'clientCpuUsPerDelivery', 'redisCpuUsPerDelivery', 'connectSeconds'] as const;

type ImplResult = Record<(typeof FIELDS)[number], number> & {
  latencyMs: Summary;
  rounds: number;
  failedRounds: number;
  failures: string[];
  p99PerRound: number[];
  cpuPerRound: number[];
  /** Every round: all connected, nothing lost, out of order or disconnected, no error. */
  clean: boolean;
};

function summarizeImpl(trials: readonly Trial[]): ImplResult | undefined {
  const ok = trials.filter((t) => t.failed === undefined);
  const failures = trials.flatMap((t) => (t.failed === undefined ? [] : [`round ${t.round}: ${t.failed}`]));
  const base = { rounds: trials.length, failedRounds: trials.length - ok.length, failures };
  if (ok.length === 0) return trials.length === 0 ? undefined : { ...(Object.fromEntries(FIELDS.map((f) => [f, Number.NaN])) as Record<(typeof FIELDS)[number], number>), latencyMs: NO_LATENCY, p99PerRound: [], cpuPerRound: [], clean: false, ...base };
  const out = Object.fromEntries(FIELDS.map((f) => [f, median(ok.map((t) => t[f]))])) as Record<(typeof FIELDS)[number], number>;
  return {
    ...out,
    latencyMs: medianSummary(ok.map((t) => t.latencyMs)),
    p99PerRound: ok.map((t) => t.latencyMs.p99),
    cpuPerRound: ok.map((t) => t.serverCpuUsPerDelivery),
    clean: ok.length === trials.length && ok.every((t) => t.connected === t.clients && t.serverConnections === t.clients && t.lost === 0 && t.outOfOrder === 0 && t.disconnects === 0 && t.errors === 0),
    ...base,
  };
}

type Results = Partial<Record<ConfigName, Partial<Record<Impl, ImplResult>>>>;

function report(s: Settings, results: Results): { ratios: Record<string, number>; targetsMet: Record<string, boolean> } {
  const ratios: Record<string, number> = {};
  const targetsMet: Record<string, boolean> = {};
  for (const config of s.configs) {
    const byImpl = results[config.name] ?? {};
    console.log(`\n${config.name}: ${configLabel(config)}; ${s.symbols} symbols, ${s.perClient} a client (median of ${s.rounds} rounds, ${s.seconds} s each)`);
    const rows = s.impls.map((impl) => {
      const r = byImpl[impl];
      if (!r || r.failedRounds === r.rounds) return [IMPL_NAMES[impl], `failed: ${r?.failures[0] ?? '?'}`];
      return [
        IMPL_NAMES[impl],
        int(r.deliveriesPerSec),
        int(r.expectedPerSec),
        fixed(r.latencyMs.p50),
        fixed(r.latencyMs.p99),
        fixed(r.latencyMs.max),
        fixed(r.serverCpuUsPerDelivery),
        fixed(r.serverCpuCores),
        fixed(r.serverRssMB, 0),
        fixed(r.serverMaxRssMB, 0),
        fixed(r.serverKBPerClient, 1),
        fixed(r.serverHeapKBPerClient, 1),
        fixed(r.clientCpuUsPerDelivery, 1),
        fixed(r.connectSeconds, 1),
        r.p99PerRound.map((p) => fixed(p)).join(' / '),
        r.clean ? 'yes' : 'NO',
      ];
    });
    console.log(table(['server', 'deliveries/s', 'expected/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU µs/delivery', 'server cores', 'RSS MB', 'peak RSS MB', 'RSS KB/client', 'heap KB/client', 'clients CPU µs/delivery', 'connect s', 'p99 per round', 'clean'], rows));
    for (const impl of s.impls) {
      const r = byImpl[impl];
      if (r && r.failures.length > 0) console.log(`${IMPL_NAMES[impl]}: ${r.failures.join('; ')}`);
    }
    const tb = byImpl.tickbus;
    const io = byImpl.socketio;
    if (tb && io && tb.failedRounds < tb.rounds && io.failedRounds < io.rounds) {
      const cpu = ratio(tb.serverCpuUsPerDelivery, io.serverCpuUsPerDelivery);
      ratios[`${config.name}.cpuPerDelivery`] = cpu;
      ratios[`${config.name}.p50`] = ratio(tb.latencyMs.p50, io.latencyMs.p50);
      ratios[`${config.name}.p99`] = ratio(tb.latencyMs.p99, io.latencyMs.p99);
      ratios[`${config.name}.rss`] = ratio(tb.serverRssMB, io.serverRssMB);
      ratios[`${config.name}.deliveriesPerSec`] = ratio(tb.deliveriesPerSec, io.deliveriesPerSec);
      targetsMet[`cpuPerDelivery.${config.name}`] = cpu <= TARGETS.cpuRatio;
      const x = (name: string) => fixed(ratios[`${config.name}.${name}`] ?? Number.NaN);
      console.log(`tickbus/Socket.IO: server CPU per delivery ${fixed(cpu)}x (target <= ${TARGETS.cpuRatio}x: ${verdict(cpu <= TARGETS.cpuRatio)}), p50 ${x('p50')}x, p99 ${x('p99')}x, RSS ${x('rss')}x, deliveries/s ${x('deliveriesPerSec')}x`);
    }
    const floor = byImpl.ws;
    if (tb && floor && tb.failedRounds < tb.rounds && floor.failedRounds < floor.rounds) {
      ratios[`${config.name}.kbPerClientVsWs`] = ratio(tb.serverKBPerClient, floor.serverKBPerClient);
      ratios[`${config.name}.cpuPerDeliveryVsWs`] = ratio(tb.serverCpuUsPerDelivery, floor.serverCpuUsPerDelivery);
      console.log(
        `tickbus/bare ws (the floor): RSS per client ${fixed(tb.serverKBPerClient, 1)} / ${fixed(floor.serverKBPerClient, 1)} KB (${fixed(ratios[`${config.name}.kbPerClientVsWs`] ?? NaN)}x), server CPU per delivery ${fixed(ratios[`${config.name}.cpuPerDeliveryVsWs`] ?? NaN)}x, connect ${fixed(tb.connectSeconds, 1)} / ${fixed(floor.connectSeconds, 1)} s`,
      );
    }
    if (tb && config.name === 'batch-off' && config.clients >= TARGETS.p99Clients && config.rate * config.clients * s.perClient / s.symbols >= TARGETS.p99DeliveriesPerSec) {
      const met = tb.failedRounds === 0 && tb.clean && tb.latencyMs.p99 < TARGETS.p99Ms && tb.deliveriesPerSec >= 0.95 * TARGETS.p99DeliveriesPerSec;
      targetsMet.p99 = met;
      console.log(`tickbus p99 at ${int(config.clients)} clients, ${int(tb.deliveriesPerSec)} deliveries/s, batching off: ${fixed(tb.latencyMs.p99)} ms (target < ${TARGETS.p99Ms} ms at >= ${int(TARGETS.p99DeliveriesPerSec)}/s, nothing lost: ${verdict(met)})`);
    }
    if (tb && config.batchMs > 0 && config.timing === 'adaptive' && (config.name === 'batched' || config.name === 'light')) {
      const target = config.name === 'batched' ? TARGETS.batchedP99Ms : TARGETS.lightP99Ms;
      const met = tb.failedRounds === 0 && tb.clean && tb.latencyMs.p99 < target;
      targetsMet[`p99.${config.name}`] = met;
      console.log(`tickbus p99 with adaptive batching at ${int(tb.deliveriesPerSec)} deliveries/s: ${fixed(tb.latencyMs.p99)} ms (target < ${target} ms: ${verdict(met)})`);
    }
    if (tb && config.clients >= TARGETS.clients) {
      const met = tb.failedRounds === 0 && tb.clean && tb.deliveriesPerSec >= 0.99 * tb.expectedPerSec;
      targetsMet.clients = met;
      console.log(`tickbus with ${int(config.clients)} clients: ${met ? 'every client connected, subscribed and served, nothing lost' : 'NOT every client served'} (target ${int(TARGETS.clients)} concurrent clients: ${verdict(met)})`);
    }
  }
  return { ratios, targetsMet };
}

// ---- chart ---------------------------------------------------------------------------

interface Record_ {
  machine: Machine;
  settings: { configs: Config[]; impls: Impl[]; symbols: number; perClient: number; seconds: number; rounds: number };
  results: Results;
}

function writeChart(file: string, r: Record_): void {
  const configs = r.settings.configs;
  // The chart compares tickbus with its peer; the bare ws floor is in the tables.
  const impls = PEERS;
  const groups = (pick: (x: ImplResult) => number) =>
    configs.map((c) => ({
      label: `${int(c.clients)} clients\n${c.batchMs === 0 ? 'batching off' : c.timing === 'adaptive' ? `adaptive ${c.batchMs} ms` : `batch ${c.batchMs} ms`}\n${int(c.rate)} prices/s`,
      values: impls.map((impl) => {
        const x = r.results[c.name]?.[impl];
        return x && x.failedRounds < x.rounds ? pick(x) : undefined;
      }),
    }));
  const m = r.machine;
  const svg = barChartSvg({
    title: 'WebSocket fan-out: tickbus gateway against Socket.IO',
    notes: [
      `${r.settings.symbols} symbols, ${r.settings.perClient} per client; median of ${r.settings.rounds} rounds of ${r.settings.seconds} s; server, clients, publisher and Redis on one machine`,
      `${m.cpus} CPUs (${m.cpuModel}), node ${m.node}, redis-server ${m.redisServer}, socket.io ${m.packages['socket.io'] ?? '?'}, ws ${m.packages.ws ?? '?'}`,
    ],
    series: [
      { name: IMPL_NAMES.tickbus, color: '#2b6cb0' },
      { name: IMPL_NAMES.socketio, color: '#dd6b20' },
    ],
    panels: [
      { title: 'Server CPU per delivery (lower is better)', unit: 'µs of CPU per update delivered', digits: 2, groups: groups((x) => x.serverCpuUsPerDelivery) },
      { title: 'Latency p99, publisher to client', unit: 'ms', digits: 1, groups: groups((x) => x.latencyMs.p99) },
      { title: 'Server memory (RSS)', unit: 'MB', digits: 0, groups: groups((x) => x.serverRssMB) },
    ],
  });
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, svg);
  console.log(`Chart written to ${file}`);
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  if (s.replot !== undefined) {
    writeChart(s.chart, JSON.parse(readFileSync(s.replot, 'utf8')) as Record_);
    return 0;
  }
  checkFileLimit(s);
  const machine = describeMachine(['tickbus', 'redis', 'ws', 'socket.io', 'socket.io-client']);
  console.log(`Machine: ${machineLine(machine)}`);
  console.log(`Clients in ${s.clientProcs} process(es); server, clients, publisher and redis-server share ${machine.cpus} CPUs.`);
  const trials = await withPrivateRedis({ machine, profileDir: s.profileDir, note: 'TickerUpdates history streams (1,000 a symbol), flushed before each run' }, async (redis) => {
    const out: Trial[] = [];
    for (let round = 1; round <= s.rounds; round++) {
      // Alternate which implementation goes first, so that drift favours neither.
      const order = round % 2 === 1 ? s.impls : [...s.impls].reverse();
      for (const config of s.configs) {
        for (const impl of order) {
          let t: Trial;
          try {
            t = await runTrial(redis, s, config, impl, round);
          } catch (error) {
            t = failedTrial(config, impl, round, error);
          }
          out.push(t);
          console.log(`round ${round}/${s.rounds}  ${config.name.padEnd(9)}  ${impl.padEnd(8)}  ${describeTrial(t)}`);
        }
      }
    }
    return out;
  });

  const results: Results = {};
  for (const config of s.configs) {
    const byImpl: Partial<Record<Impl, ImplResult>> = {};
    for (const impl of s.impls) {
      const r = summarizeImpl(trials.filter((t) => t.config === config.name && t.impl === impl));
      if (r) byImpl[impl] = r;
    }
    results[config.name] = byImpl;
  }
  const { ratios, targetsMet } = report(s, results);
  const settings = { configs: s.configs, impls: s.impls, symbols: s.symbols, perClient: s.perClient, seconds: s.seconds, warmup: s.warmup, rounds: s.rounds, clientProcs: s.clientProcs, maxSamples: s.maxSamples, profiled: s.profileDir !== undefined };
  writeChart(s.chart, { machine, settings, results });
  return writeResults(s, { benchmark: 'gateway', machine, settings, targets: TARGETS, results, ratios, targetsMet, trials });
}

runMain(main);
