// Redis Cluster benchmark: ticker updates per second through a one-shard cluster and through
// a three-shard one, side by side in one run. Per run a fresh private cluster (no replicas),
// every ticker's history filled to its bound first, then fresh worker processes:
// publishers (bench/cluster-publisher.ts) sending price updates on TickerUpdates (history
// on, sharded: one Lua script per slot and event-loop turn, XADD + SPUBLISH, on the shard
// owning the slot) and subscribers (bench/cluster-subscriber.ts) holding one exact sharded
// subscription per ticker. Measured in a window of each run: updates published and
// delivered per second as fast as the publishers go, each shard's redis-server CPU (from
// /proc), the clients' CPU and the machine's, and, at a fixed moderate rate, the
// publish-to-handler latency. Same tickers, process counts and durations for every
// configuration; rounds alternate the order; medians. Writes artifacts/bench-cluster.json.
//
//   node --import tsx bench/cluster.ts [--quick] [--tickers N] [--seconds S] [--rounds R] [--help]
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { createCluster } from 'redis';
import { keySlot } from '../test/harness/redis-cluster.ts';
import { UsageError, intOption, parseCli, positiveOption, runMain, table, type OptionSpec } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { describeMachine, machineLine, type Machine } from './lib/machine.ts';
import { Worker } from './lib/proc.ts';
import { LATENCY_HEADERS, fixed, int, latencyCells, writeResults } from './lib/report.ts';
import { median, medianSummary, medians, ratio, summarize, type Summary } from './lib/stats.ts';
import { commandCalls, machineCpuMicros, procCpuMicros, startBenchCluster, type BenchCluster, type Shard } from './cluster-redis.ts';
import {
  HISTORY_MAX_LEN,
  historyKey,
  priceUpdate,
  shareOf,
  spreadTickers,
  tickerChannel,
  workerArgs,
  type Marked,
  type PublisherCommand,
  type PublisherEvent,
  type PublisherStopped,
  type SubscriberChecked,
  type SubscriberCommand,
  type SubscriberEvent,
} from './cluster-common.ts';

const OPTIONS = {
  shards: { type: 'string', value: 'list', default: '1,3', description: 'The cluster sizes to compare, in shards (masters): 1, or 3 and more, comma-separated.' },
  tickers: { type: 'string', value: 'N', default: '300', description: 'Tickers, their slots spread evenly over the slot space (so each of 3 shards holds a third).' },
  publishers: { type: 'string', value: 'N', default: '2', description: 'Publisher processes; each publishes every N-th ticker.' },
  subscribers: { type: 'string', value: 'N', default: '2', description: 'Subscriber processes; each subscribes every N-th ticker (every ticker has one subscriber).' },
  seconds: { type: 'string', value: 'S', default: '8', description: 'Measured seconds of the throughput window (publishers as fast as they go).' },
  warmup: { type: 'string', value: 'S', default: '2', description: 'Seconds of publishing before each measured window.' },
  window: { type: 'string', value: 'N', default: '512', description: 'Publishes in flight per publisher at most, in the throughput window.' },
  rate: { type: 'string', value: 'R', default: '3000', description: 'Updates per second (all publishers) in the latency window, 10 a ticker with the default tickers: well below what 1 shard carries here; 0 for no latency window.' },
  'latency-seconds': { type: 'string', value: 'S', default: '5', description: 'Measured seconds of the latency window.' },
  rounds: { type: 'string', value: 'N', default: '3', description: 'Rounds; each runs every cluster size once, alternating the order. Medians are reported.' },
  quick: { type: 'boolean', description: 'A short check: 1 round, 3 s windows (1 s warm-up, 2 s latency window). Explicit options win.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-cluster.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

const QUICK = { rounds: '1', seconds: '3', warmup: '1', 'latency-seconds': '2' } as const;

interface Settings {
  shards: number[];
  tickers: string[];
  publishers: number;
  subscribers: number;
  seconds: number;
  warmup: number;
  window: number;
  rate: number;
  latencySeconds: number;
  rounds: number;
  quick: boolean;
  out: string;
}

/** What happened in one measured window. */
interface Figures {
  windowMs: number;
  publishedPerSec: number;
  deliveredPerSec: number;
  /** Each shard's redis-server CPU over the window: 1.0 is one core busy. */
  shardCores: number[];
  /** Each shard's CPU per update published (all shards' updates), µs: its part of the cost of an update. */
  shardUsPerUpdate: number[];
  /** All shards together, µs of redis-server CPU per update. */
  redisUsPerUpdate: number;
  /** Each shard's share of the XADDs (history entries) in the window. */
  shardUpdateShare: number[];
  /** History entries per EVAL, all shards: how many updates a script carried. */
  updatesPerScript: number;
  publisherCores: number[];
  subscriberCores: number[];
  /** Publishers' and subscribers' CPU per update delivered, µs. */
  publisherUsPerUpdate: number;
  subscriberUsPerUpdate: number;
  /** The whole machine's busy CPU (every process, ours and others), in cores. */
  machineCores: number;
  /** This parent process (it mostly sleeps; redis-cli for the command counts). */
  parentCores: number;
  /** The machine's busy CPU less the benchmark's processes: other load, in cores. */
  otherCores: number;
}

interface Trial {
  shards: number;
  round: number;
  tickersPerShard: number[];
  subscribeMs: number;
  throughput: Figures;
  latency: (Figures & { latencyMs: Summary }) | undefined;
  /** Over the whole run (both windows, warm-ups included): */
  published: number;
  lost: number;
  extra: number;
  outOfOrder: number;
  replayed: number;
  unheard: number;
  errors: number;
  disconnects: number;
  firstError: string | undefined;
  /** Entries in the tickers' history streams after the run, least and most. */
  historyMin: number;
  historyMax: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: readonly number[]) => xs.reduce((s, n) => s + n, 0);
const START_MS = 60_000;
/** Other processes' CPU in a window above which the report says the run was disturbed, cores. */
const DISTURBED_CORES = 0.2;

function settingsFrom(argv: string[]): Settings {
  const v = parseCli(
    'node --import tsx bench/cluster.ts [options]',
    'Ticker updates per second through a Redis Cluster of 1 shard and of 3, side by side in one run: tickbus publishers on TickerUpdates (history on, sharded), tickbus subscribers with one exact sharded subscription per ticker; delivered and published updates/s, redis-server CPU per shard, client and machine CPU, and latency at a fixed rate.',
    OPTIONS,
    argv,
  );
  const given = new Set(argv.map((a) => a.replace(/^--/, '').split('=')[0]));
  const pick = <K extends keyof typeof QUICK>(name: K): string => (v.quick && !given.has(name) ? QUICK[name] : (v[name] as string));
  const shards = v.shards.split(',').map((s) => intOption(s.trim(), 'shards'));
  if (shards.length === 0) throw new UsageError('--shards names none.');
  if (shards.includes(2)) throw new UsageError('--shards: 2 is not possible (redis-cli --cluster create needs 3 masters; 1 is started by hand).');
  const rate = Number(v.rate.replace(/_/g, ''));
  if (!Number.isFinite(rate) || rate < 0) throw new UsageError(`--rate must be a number >= 0, got "${v.rate}".`);
  return {
    shards,
    tickers: spreadTickers(intOption(v.tickers, 'tickers')),
    publishers: intOption(v.publishers, 'publishers'),
    subscribers: intOption(v.subscribers, 'subscribers'),
    seconds: positiveOption(pick('seconds'), 'seconds'),
    warmup: positiveOption(pick('warmup'), 'warmup'),
    window: intOption(v.window, 'window'),
    rate,
    latencySeconds: positiveOption(pick('latency-seconds'), 'latency-seconds'),
    rounds: intOption(pick('rounds'), 'rounds'),
    quick: v.quick,
    out: resolve(process.cwd(), v.out),
  };
}

// ---- the cluster's side --------------------------------------------------------------

/** The slot ranges a shard serves, from CLUSTER NODES ("0-5460 10923"). */
function servesSlot(shard: Shard, slot: number): boolean {
  return shard.slots.split(' ').some((range) => {
    const [from, to = from] = range.split('-').map(Number);
    return from !== undefined && to !== undefined && slot >= from && slot <= to;
  });
}

function tickersPerShard(cluster: BenchCluster, tickers: readonly string[]): number[] {
  return cluster.shards.map((shard) => tickers.filter((t) => servesSlot(shard, keySlot(tickerChannel(t)))).length);
}

/**
 * Fills every ticker's history to its bound (entries shaped like the broker's), so that
 * the measured XADDs trim as in steady state; returns a client for the checks.
 */
async function prefillHistory(cluster: BenchCluster, tickers: readonly string[]) {
  const client = createCluster({ rootNodes: cluster.shards.map((s) => ({ url: `redis://127.0.0.1:${s.port}` })), defaults: { commandOptions: { timeout: 0 } } as never, commandOptions: { timeout: 0 } });
  client.on('error', () => undefined);
  await client.connect();
  const script = "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'payload', ARGV[2]) end return redis.call('XLEN', KEYS[1])";
  const now = Date.now();
  await Promise.all(
    tickers.map((t) => {
      const payload = JSON.stringify({ data: priceUpdate(t, 0, now), timestamp: new Date(now).toISOString(), sender: 'broker_service' });
      return client.sendCommand(historyKey(t), false, ['EVAL', script, '1', historyKey(t), String(HISTORY_MAX_LEN), payload]);
    }),
  );
  return client;
}

// ---- one run -------------------------------------------------------------------------

interface Snapshot {
  at: number;
  /** This (the parent's) process.cpuUsage(), user + system, µs. */
  parentCpu: number;
  redisCpu: number[];
  machine: { busy: number; total: number };
  pubs: Marked[];
  subs: Marked[];
  calls: Array<Record<string, number>>;
}

type Pub = Worker<PublisherCommand, PublisherEvent>;
type Sub = Worker<SubscriberCommand, SubscriberEvent>;

async function snapshot(cluster: BenchCluster, pubs: readonly Pub[], subs: readonly Sub[]): Promise<Snapshot> {
  // Redis and the machine first, read at once from /proc; then the workers, which answer
  // with their own clocks; then the command counts (a few ms later: a small error on them).
  const at = epochMs();
  const own = process.cpuUsage();
  const redisCpu = cluster.shards.map((s) => procCpuMicros(s.pid));
  const machine = machineCpuMicros();
  for (const w of [...pubs, ...subs]) w.send({ type: 'mark' });
  const pubMarks = await Promise.all(pubs.map((w) => w.next('marked', 30_000)));
  const subMarks = await Promise.all(subs.map((w) => w.next('marked', 30_000)));
  const calls = cluster.shards.map(commandCalls);
  return { at, parentCpu: own.user + own.system, redisCpu, machine, pubs: pubMarks, subs: subMarks, calls };
}

function figures(a: Snapshot, b: Snapshot): Figures {
  const windowMs = b.at - a.at;
  const rate = (x: Marked[], y: Marked[]) => x.reduce((sum, m, i) => sum + ((y[i] as Marked).count - m.count) / (((y[i] as Marked).at - m.at) / 1000), 0);
  const cores = (x: Marked[], y: Marked[]) => x.map((m, i) => ((y[i] as Marked).cpuMicros - m.cpuMicros) / (((y[i] as Marked).at - m.at) * 1000));
  const publishedPerSec = rate(a.pubs, b.pubs);
  const deliveredPerSec = rate(a.subs, b.subs);
  const updates = (publishedPerSec * windowMs) / 1000;
  const delivered = (deliveredPerSec * windowMs) / 1000;
  const redisDelta = b.redisCpu.map((cpu, i) => cpu - (a.redisCpu[i] as number));
  const callDelta = (name: string) => b.calls.map((c, i) => (c[name] ?? 0) - ((a.calls[i] as Record<string, number>)[name] ?? 0));
  const xadds = callDelta('xadd');
  const evals = callDelta('eval');
  const totalXadds = xadds.reduce((s, n) => s + n, 0);
  const publisherCores = cores(a.pubs, b.pubs);
  const subscriberCores = cores(a.subs, b.subs);
  const shardCores = redisDelta.map((d) => d / (windowMs * 1000));
  const machineCores = (b.machine.busy - a.machine.busy) / (windowMs * 1000);
  const parentCores = (b.parentCpu - a.parentCpu) / (windowMs * 1000);
  return {
    windowMs,
    publishedPerSec,
    deliveredPerSec,
    shardCores,
    shardUsPerUpdate: redisDelta.map((d) => d / updates),
    redisUsPerUpdate: sum(redisDelta) / updates,
    shardUpdateShare: xadds.map((n) => n / totalXadds),
    updatesPerScript: totalXadds / sum(evals),
    publisherCores,
    subscriberCores,
    publisherUsPerUpdate: (sum(publisherCores) * windowMs * 1000) / updates,
    subscriberUsPerUpdate: (sum(subscriberCores) * windowMs * 1000) / delivered,
    machineCores,
    parentCores,
    otherCores: machineCores - sum(shardCores) - sum(publisherCores) - sum(subscriberCores) - parentCores,
  };
}

/** Stops the publishers (every publish answered) and totals what they sent, per ticker. */
async function stopPublishers(pubs: readonly Pub[], shares: readonly string[][]): Promise<{ expected: Record<string, number>; stopped: PublisherStopped[] }> {
  for (const w of pubs) w.send({ type: 'stop' });
  const stopped = await Promise.all(pubs.map((w) => w.next('stopped', 60_000)));
  const expected: Record<string, number> = {};
  stopped.forEach((s, p) => (shares[p] as string[]).forEach((t, i) => (expected[t] = s.sent[i] as number)));
  return { expected, stopped };
}

async function checkSubscribers(subs: readonly Sub[], expected: Record<string, number>): Promise<SubscriberChecked[]> {
  for (const w of subs) w.send({ type: 'check', expected, waitMs: 15_000 });
  return Promise.all(subs.map((w) => w.next('checked', 30_000)));
}

async function runTrial(s: Settings, shards: number, round: number): Promise<Trial> {
  const label = `${shards} shard${shards === 1 ? '' : 's'}`;
  const cluster = await startBenchCluster(shards);
  const pubs: Pub[] = [];
  const subs: Sub[] = [];
  let checker: Awaited<ReturnType<typeof prefillHistory>> | undefined;
  try {
    const perShard = tickersPerShard(cluster, s.tickers);
    checker = await prefillHistory(cluster, s.tickers);
    const pubShares = Array.from({ length: s.publishers }, (_, p) => shareOf(s.tickers, p, s.publishers));
    const subShares = Array.from({ length: s.subscribers }, (_, i) => shareOf(s.tickers, i, s.subscribers));
    for (let i = 0; i < s.subscribers; i++) {
      subs.push(new Worker(`${label} subscriber ${i + 1}`, new URL('./cluster-subscriber.ts', import.meta.url), workerArgs({ url: cluster.url, tickers: subShares[i] as string[], window: s.window })));
    }
    const ready = await Promise.all(subs.map((w) => w.next('ready', START_MS, 'start-up and subscriptions')));
    for (let p = 0; p < s.publishers; p++) {
      pubs.push(new Worker(`${label} publisher ${p + 1}`, new URL('./cluster-publisher.ts', import.meta.url), workerArgs({ url: cluster.url, tickers: pubShares[p] as string[], window: s.window })));
    }
    await Promise.all(pubs.map((w) => w.next('ready', START_MS, 'start-up')));

    // Throughput: as fast as the publishers go.
    for (const w of pubs) w.send({ type: 'start', mode: 'flood', rate: 0 });
    await sleep(s.warmup * 1000);
    const t0 = await snapshot(cluster, pubs, subs);
    await sleep(s.seconds * 1000);
    const t1 = await snapshot(cluster, pubs, subs);
    const throughput = figures(t0, t1);
    let { expected, stopped } = await stopPublishers(pubs, pubShares);
    let checked = await checkSubscribers(subs, expected);

    // Latency: at a fixed rate, every update's latency kept.
    let latency: Trial['latency'];
    if (s.rate > 0) {
      for (const w of pubs) w.send({ type: 'start', mode: 'paced', rate: s.rate / s.publishers });
      await sleep(Math.min(s.warmup, 1) * 1000);
      for (const w of subs) w.send({ type: 'sample', on: true });
      const l0 = await snapshot(cluster, pubs, subs);
      await sleep(s.latencySeconds * 1000);
      const l1 = await snapshot(cluster, pubs, subs);
      for (const w of subs) w.send({ type: 'sample', on: false });
      const sampled = await Promise.all(subs.map((w) => w.next('samples', 30_000)));
      const all = new Float64Array(sampled.reduce((n, x) => n + x.samples.length, 0));
      let at = 0;
      for (const x of sampled) {
        all.set(x.samples, at);
        at += x.samples.length;
      }
      latency = { ...figures(l0, l1), latencyMs: summarize(all) };
      ({ expected, stopped } = await stopPublishers(pubs, pubShares));
      checked = await checkSubscribers(subs, expected);
    }

    const client = checker;
    const lengths = await Promise.all(s.tickers.map((t) => client.sendCommand<number>(historyKey(t), true, ['XLEN', historyKey(t)])));
    const total = (f: (c: SubscriberChecked) => number) => checked.reduce((n, c) => n + f(c), 0);
    return {
      shards,
      round,
      tickersPerShard: perShard,
      subscribeMs: Math.max(...ready.map((r) => r.subscribeMs)),
      throughput,
      latency,
      published: Object.values(expected).reduce((n, x) => n + x, 0),
      lost: total((c) => c.missing),
      extra: total((c) => c.extra),
      outOfOrder: total((c) => c.outOfOrder),
      replayed: total((c) => c.replayed),
      unheard: stopped.reduce((n, x) => n + x.unheard, 0),
      errors: total((c) => c.errors) + stopped.reduce((n, x) => n + x.errors, 0),
      disconnects: total((c) => c.disconnects),
      firstError: stopped.find((x) => x.firstError)?.firstError ?? checked.find((c) => c.firstError)?.firstError,
      historyMin: Math.min(...lengths),
      historyMax: Math.max(...lengths),
    };
  } finally {
    await Promise.all([...pubs, ...subs].map((w) => w.stop()));
    await checker?.close().catch(() => undefined);
    await cluster.stop();
  }
}

// ---- report --------------------------------------------------------------------------

const NUMERIC = ['publishedPerSec', 'deliveredPerSec', 'redisUsPerUpdate', 'updatesPerScript', 'publisherUsPerUpdate', 'subscriberUsPerUpdate', 'machineCores', 'parentCores', 'otherCores'] as const;

interface ConfigResult {
  shards: number;
  tickersPerShard: number[];
  throughput: Record<(typeof NUMERIC)[number], number> & {
    shardCores: number[];
    shardUsPerUpdate: number[];
    shardUpdateShare: number[];
    publisherCores: number[];
    subscriberCores: number[];
    perRound: number[];
  };
  latency: (Record<(typeof NUMERIC)[number], number> & { shardCores: number[]; shardUsPerUpdate: number[]; latencyMs: Summary; p99PerRound: number[] }) | undefined;
  clean: boolean;
}

/** The element-wise median of lists of the same length. */
const medianEach = (lists: number[][]) => (lists[0] ?? []).map((_, i) => median(lists.map((l) => l[i] as number)));

function summarizeConfig(trials: Trial[]): ConfigResult {
  const tp = trials.map((t) => t.throughput);
  const lat = trials.flatMap((t) => (t.latency ? [t.latency] : []));
  return {
    shards: (trials[0] as Trial).shards,
    tickersPerShard: (trials[0] as Trial).tickersPerShard,
    throughput: {
      ...medians(tp, NUMERIC),
      shardCores: medianEach(tp.map((f) => f.shardCores)),
      shardUsPerUpdate: medianEach(tp.map((f) => f.shardUsPerUpdate)),
      shardUpdateShare: medianEach(tp.map((f) => f.shardUpdateShare)),
      publisherCores: medianEach(tp.map((f) => f.publisherCores)),
      subscriberCores: medianEach(tp.map((f) => f.subscriberCores)),
      perRound: tp.map((f) => f.deliveredPerSec),
    },
    latency:
      lat.length === 0
        ? undefined
        : {
            ...medians(lat, NUMERIC),
            shardCores: medianEach(lat.map((f) => f.shardCores)),
            shardUsPerUpdate: medianEach(lat.map((f) => f.shardUsPerUpdate)),
            latencyMs: medianSummary(lat.map((f) => f.latencyMs)),
            p99PerRound: lat.map((f) => f.latencyMs.p99),
          },
    clean: trials.every((t) => t.lost === 0 && t.extra === 0 && t.outOfOrder === 0 && t.errors === 0 && t.replayed === 0 && t.disconnects === 0 && t.unheard === 0),
  };
}

const shardLabel = (n: number) => `${n} shard${n === 1 ? '' : 's'}`;
const list = (xs: number[], digits = 2) => xs.map((x) => fixed(x, digits)).join(' / ');

/** What ran out: a process at a full core, or the machine's CPUs all busy. */
function saturation(r: ConfigResult, cpus: number): string {
  const t = r.throughput;
  const procs = [
    ...t.shardCores.map((c, i) => ({ what: r.shards === 1 ? 'redis-server' : `redis-server shard ${i + 1}`, cores: c })),
    ...t.publisherCores.map((c, i) => ({ what: `publisher ${i + 1}`, cores: c })),
    ...t.subscriberCores.map((c, i) => ({ what: `subscriber ${i + 1}`, cores: c })),
  ];
  const busiest = procs.reduce((a, b) => (b.cores > a.cores ? b : a));
  const parts = [
    `machine ${fixed(t.machineCores)} of ${cpus} cores busy: redis ${fixed(sum(t.shardCores))}, publishers ${fixed(sum(t.publisherCores))}, subscribers ${fixed(sum(t.subscriberCores))}, parent ${fixed(t.parentCores)}, other processes ${fixed(t.otherCores)}`,
  ];
  const flat = procs.filter((p) => p.cores >= 0.9);
  if (flat.length > 0) parts.push(`at a full core: ${flat.map((p) => `${p.what} (${fixed(p.cores)})`).join(', ')}`);
  if (t.machineCores >= 0.9 * cpus) parts.push(`the CPUs were the limit; the biggest user was ${busiest.what} (${fixed(busiest.cores)})`);
  else if (flat.length === 0) parts.push(`no CPU was saturated (busiest: ${busiest.what}, ${fixed(busiest.cores)}): round trips or the window bound it`);
  return parts.join('; ');
}

function report(s: Settings, machine: Machine, results: ConfigResult[]): Record<string, number> {
  const ratios: Record<string, number> = {};
  console.log(`\nThroughput: ${s.tickers.length} tickers, ${s.publishers} publisher and ${s.subscribers} subscriber processes, window ${int(s.window)} a publisher, ${s.seconds} s measured (median of ${s.rounds})`);
  console.log(
    table(
      ['cluster', 'delivered/s', 'published/s', 'per round delivered/s', 'redis CPU µs/update per shard', 'redis cores per shard', 'updates per shard', 'redis µs/update all', 'updates/script', 'pub µs/upd', 'sub µs/upd', 'clean'],
      results.map((r) => [
        shardLabel(r.shards),
        int(r.throughput.deliveredPerSec),
        int(r.throughput.publishedPerSec),
        r.throughput.perRound.map(int).join(' / '),
        list(r.throughput.shardUsPerUpdate),
        list(r.throughput.shardCores),
        r.throughput.shardUpdateShare.map((x) => `${fixed(x * 100, 0)}%`).join(' / '),
        fixed(r.throughput.redisUsPerUpdate),
        fixed(r.throughput.updatesPerScript, 1),
        fixed(r.throughput.publisherUsPerUpdate, 1),
        fixed(r.throughput.subscriberUsPerUpdate, 1),
        r.clean ? 'yes' : 'NO',
      ]),
    ),
  );
  for (const r of results) console.log(`${shardLabel(r.shards)}: ${saturation(r, machine.cpus)}`);

  const one = results.find((r) => r.shards === 1);
  for (const many of results.filter((r) => r.shards > 1)) {
    if (!one) break;
    const r = {
      deliveredPerSec: ratio(many.throughput.deliveredPerSec, one.throughput.deliveredPerSec),
      publishedPerSec: ratio(many.throughput.publishedPerSec, one.throughput.publishedPerSec),
      busiestShardUsPerUpdate: ratio(Math.max(...many.throughput.shardUsPerUpdate), one.throughput.redisUsPerUpdate),
      busiestShardCores: ratio(Math.max(...many.throughput.shardCores), one.throughput.shardCores[0] ?? NaN),
      redisUsPerUpdate: ratio(many.throughput.redisUsPerUpdate, one.throughput.redisUsPerUpdate),
    };
    for (const [name, value] of Object.entries(r)) ratios[`${many.shards}v1.${name}`] = value;
    const shares = many.throughput.shardUsPerUpdate.map((u) => ratio(u, one.throughput.redisUsPerUpdate));
    console.log(
      `${many.shards} shards ÷ 1 shard: delivered/s ${fixed(r.deliveredPerSec)}x, published/s ${fixed(r.publishedPerSec)}x; ` +
        `redis CPU per update on the busiest shard ${fixed(r.busiestShardUsPerUpdate)}x the one shard's (each shard: ${list(shares)}); ` +
        `all shards together ${fixed(r.redisUsPerUpdate)}x; busiest shard's cores ${fixed(r.busiestShardCores)}x`,
    );
  }

  if (results.some((r) => r.latency)) {
    console.log(`\nLatency at ${int(s.rate)} updates/s (all publishers), publish call to handler, ms, ${s.latencySeconds} s measured (median of ${s.rounds})`);
    console.log(
      table(
        ['cluster', 'delivered/s', ...LATENCY_HEADERS, 'p99 per round', 'redis CPU µs/update per shard', 'redis cores per shard', 'updates/script', 'machine cores'],
        results.map((r) => {
          const l = r.latency;
          return [
            shardLabel(r.shards),
            int(l?.deliveredPerSec ?? NaN),
            ...latencyCells(l?.latencyMs),
            (l?.p99PerRound ?? []).map((x) => fixed(x)).join(' / '),
            list(l?.shardUsPerUpdate ?? []),
            list(l?.shardCores ?? []),
            fixed(l?.updatesPerScript ?? NaN, 1),
            fixed(l?.machineCores ?? NaN),
          ];
        }),
      ),
    );
    for (const many of results.filter((r) => r.shards > 1)) {
      if (!one?.latency || !many.latency) break;
      const r = {
        latencyP50: ratio(many.latency.latencyMs.p50, one.latency.latencyMs.p50),
        latencyP99: ratio(many.latency.latencyMs.p99, one.latency.latencyMs.p99),
        latencyRedisUsPerUpdate: ratio(many.latency.redisUsPerUpdate, one.latency.redisUsPerUpdate),
      };
      for (const [name, value] of Object.entries(r)) ratios[`${many.shards}v1.${name}`] = value;
      console.log(
        `${many.shards} shards ÷ 1 shard at ${int(s.rate)}/s: p50 ${fixed(r.latencyP50)}x, p99 ${fixed(r.latencyP99)}x; redis CPU per update, all shards together, ${fixed(r.latencyRedisUsPerUpdate)}x`,
      );
    }
  }
  return ratios;
}

// ---- main ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'zod']);
  console.log(`Machine: ${machineLine(machine)}`);
  console.log(
    `Clusters: private, fresh for every run, no replicas (the masters' work is measured): 1 shard = one redis-server with cluster mode on holding all 16384 slots; ` +
      `3 shards = 3 masters made by redis-cli --cluster create. Every ticker's history is filled to ${int(HISTORY_MAX_LEN)} entries before the run.`,
  );
  const most = Math.max(...s.shards);
  if (machine.cpus < most + s.publishers + s.subscribers) {
    console.log(
      `Note: ${machine.cpus} CPUs for ${most} redis-servers and ${s.publishers + s.subscribers} client processes: ${most} shards cannot run ${most}x as fast here. ` +
        `What scales is each shard's share of the work (its CPU per update); the rate shows what this machine gets.`,
    );
  }
  if (s.quick) console.log('Quick run: figures for a check only, not for the record.');

  const trials: Trial[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    const order = round % 2 === 1 ? s.shards : [...s.shards].reverse();
    for (const shards of order) {
      const t = await runTrial(s, shards, round);
      trials.push(t);
      const th = t.throughput;
      const lat = t.latency ? `; at ${int(s.rate)}/s p50 ${fixed(t.latency.latencyMs.p50)} p99 ${fixed(t.latency.latencyMs.p99)} ms` : '';
      const problems = [t.lost && `${int(t.lost)} lost`, t.extra && `${int(t.extra)} extra`, t.outOfOrder && `${int(t.outOfOrder)} out of order`, t.replayed && `${int(t.replayed)} replayed`, t.unheard && `${int(t.unheard)} unheard`, t.errors && `${int(t.errors)} errors (${t.firstError})`, t.disconnects && `${t.disconnects} disconnects`].filter(Boolean);
      console.log(
        `round ${round}/${s.rounds}  ${shardLabel(shards).padEnd(9)} ${int(th.deliveredPerSec)} delivered/s, ${int(th.publishedPerSec)} published/s, redis cores ${list(th.shardCores)}, clients ${fixed(sum(th.publisherCores) + sum(th.subscriberCores))}, machine ${fixed(th.machineCores)} (others ${fixed(th.otherCores)})${lat}  ` +
          `(tickers per shard ${t.tickersPerShard.join(' / ')}; history ${t.historyMin}-${t.historyMax}; ${int(t.published)} published, ${problems.length === 0 ? 'none lost' : problems.join(', ')})`,
      );
    }
  }

  const results = s.shards.map((n) => summarizeConfig(trials.filter((t) => t.shards === n)));
  const ratios = report(s, machine, results);
  const disturbed = trials.filter((t) => Math.max(t.throughput.otherCores, t.latency?.otherCores ?? 0) > DISTURBED_CORES);
  if (disturbed.length > 0) {
    console.log(
      `\nOther processes used more than ${DISTURBED_CORES} cores during ${disturbed.map((t) => `round ${t.round} ${shardLabel(t.shards)} (${fixed(Math.max(t.throughput.otherCores, t.latency?.otherCores ?? 0))})`).join(', ')}: those figures are lower than this machine gives; rerun on a quiet machine for the record.`,
    );
  }
  const unclean = results.filter((r) => !r.clean);
  if (unclean.length > 0) console.log(`\nNOT CLEAN (exit code 1): ${unclean.map((r) => shardLabel(r.shards)).join(', ')} lost, repeated or reordered updates, or had errors (see the rounds above).`);

  const [l1, l5, l15] = loadavg().map((x) => Math.round(x * 100) / 100);
  console.log(`\nLoad average at the end: ${l1} ${l5} ${l15} (at the start: ${machine.loadAverage.join(' ')}).`);
  const settings = { ...s, tickers: s.tickers.length, tickerNames: s.tickers, loadAverageAtEnd: [l1, l5, l15] };
  const code = writeResults({ profileDir: undefined, check: false, out: s.out }, { benchmark: 'cluster', machine, settings, targets: {}, results, ratios, targetsMet: {}, trials });
  // A lost, repeated or reordered update, or an error, fails the run.
  return unclean.length > 0 ? 1 : code;
}

runMain(main);
