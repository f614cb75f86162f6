// TickStock benchmark (issue 16): seed 003's "under 100 ms from an event to the browser",
// measured end to end, and what per-user filtering costs the gateway.
//
// 1. Latency: a pipeline process (a broker with forwardTicks streaming --symbols tickers from
//    a clock-grid random-walk feed, the reference pattern library with --bar-seconds bars on
//    the broker's bus), a gateway process (startGatewayRuntime, tickstock:patterns:streaming
//    exposed, alerts and inboxes on) and a client process of browser-like `ws` users: some
//    subscribed to the pattern channel filtered by their symbols, some with alert
//    preferences following their inbox. Latency of a message = the client's receive time −
//    the feed timestamp of the tick that closed the pattern's bar (the broker's own tick, as
//    it forwards it). Once with the gateway's default batching, once with batching off.
// 2. Fan-out: 1,000 users with 1 to 10 random symbols each on one gateway, a publisher at a
//    fixed rate; the channel filtered per user, the channel whole, and the plain symbol rooms
//    of the same symbols; the gateway's CPU per delivered and per published message.
//
// Writes artifacts/bench-tickstock.json.
//
//   node --import tsx bench/tickstock.ts [--seconds S] [--symbols N] [--users N] [--configs list] [--rounds N] [--help]
import type { RedisServer } from '../test/harness/redis-server.ts';
import { GATEWAY_DEFAULTS } from '../src/core/defaults.ts';
import { UsageError, choiceOption, intOption, parseCli, positiveOption, runMain, table, type OptionSpec } from './lib/cli.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { Worker } from './lib/proc.ts';
import { fixed, int, outputsFrom, verdict, writeResults } from './lib/report.ts';
import { withPrivateRedis } from './lib/server.ts';
import { median, medianSummary, ratio, summarize, type Summary } from './lib/stats.ts';
import { VARIANTS, closeKey, wantersPerSymbol, type ClientsCommand, type ClientsEvent, type GatewayCommand, type GatewayEvent, type PipelineCommand, type PipelineEvent, type PublisherCommand, type PublisherEvent, type Samples, type Variant } from './tickstock-common.ts';

const OPTIONS = {
  seconds: { type: 'string', value: 'S', default: '50', description: 'Measured seconds of each latency run (100 symbols, 5 s bars: 1,000 bars in 50 s).' },
  warmup: { type: 'string', value: 'S', default: '5', description: 'Seconds the pipeline runs before a latency window (its first bar is partial).' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols streamed by the broker and published by the fan-out publisher.' },
  'tick-ms': { type: 'string', value: 'ms', default: '250', description: 'Every symbol trades every this many ms (250: 4 a second, 400 ticks/s over 100 symbols).' },
  'bar-seconds': { type: 'string', value: 's', default: '5', description: 'The pattern library timeframe.' },
  volatility: { type: 'string', value: 'x', default: '0.0002', description: "Per-trade volatility of the feed's log price (small: many Doji bars)." },
  'latency-users': { type: 'string', value: 'N', default: '100', description: 'Latency runs: users on the filtered pattern channel, and as many alert users following their inbox.' },
  configs: { type: 'string', value: 'list', default: 'batched,batch-off', description: `Latency runs: batched (the gateway's default batching: ${GATEWAY_DEFAULTS.batchTiming}, at most ${GATEWAY_DEFAULTS.batchMs} ms), batch-off (batchMs 0).` },
  users: { type: 'string', value: 'N', default: '1000', description: 'Fan-out runs: users on one gateway, each with 1 to 10 random symbols.' },
  variants: { type: 'string', value: 'list', default: VARIANTS.join(','), description: 'Fan-out runs: filtered (the channel filtered per user), unfiltered (the channel whole), rooms (ticker rooms of the same symbols).' },
  'fanout-rate': { type: 'string', value: 'R', default: '40', description: 'Fan-out runs: messages published per second (unfiltered: x users deliveries/s).' },
  'fanout-seconds': { type: 'string', value: 'S', default: '8', description: 'Measured seconds of each fan-out run.' },
  'fanout-batch-ms': { type: 'string', value: 'ms', default: String(GATEWAY_DEFAULTS.batchMs), description: 'Fan-out runs: the gateway batchMs.' },
  only: { type: 'string', value: 'which', default: 'all', description: 'latency, fanout or all.' },
  rounds: { type: 'string', value: 'N', default: '1', description: 'Rounds; each runs every configuration and variant once (the order alternating). Medians are reported.' },
  'client-procs': { type: 'string', value: 'N', default: '2', description: 'Fan-out runs: processes the users are spread over.' },
  seed: { type: 'string', value: 'N', default: '42', description: "Seed of the feed's walks and of the users' preferences." },
  profile: { type: 'boolean', description: "Write a V8 CPU profile of the gateway's measured window to artifacts/profiles/ (slows it; not for the figures)." },
  check: { type: 'boolean', description: 'Exit with code 3 when a target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-tickstock.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

const EXAMPLES = `Examples:
  node --import tsx bench/tickstock.ts                      # the recorded figures: 2 x 50 s latency, 3 fan-out runs, about 3 minutes
  node --import tsx bench/tickstock.ts --seconds 10 --users 200 --fanout-seconds 3   # a quick check, under a minute
  node --import tsx bench/tickstock.ts --only latency --configs batch-off --profile   # where the gateway spends its time`;

const TARGETS = {
  /** p99 tick to browser with the gateway's default batching, ms. */
  batchedP99Ms: 100,
  /** p99 tick to browser with batching off, ms. */
  batchOffP99Ms: 20,
} as const;

const CONFIG_NAMES = ['batched', 'batch-off'] as const;
type ConfigName = (typeof CONFIG_NAMES)[number];

interface Settings {
  seconds: number;
  warmup: number;
  symbols: number;
  tickMs: number;
  barSeconds: number;
  volatility: number;
  latencyUsers: number;
  configs: Array<{ name: ConfigName; batchMs: number; targetMs: number }>;
  users: number;
  variants: Variant[];
  fanoutRate: number;
  fanoutSeconds: number;
  fanoutBatchMs: number;
  only: 'latency' | 'fanout' | 'all';
  rounds: number;
  clientProcs: number;
  seed: number;
  check: boolean;
  out: string;
  profileDir: string | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const list = <C extends string>(text: string, name: string, choices: readonly C[]): C[] => {
  const picked = text.split(',').map((c) => choiceOption(c.trim(), name, choices));
  if (picked.length === 0) throw new UsageError(`--${name} names none.`);
  return choices.filter((c) => picked.includes(c));
};

function settingsFrom(argv: string[]): Settings {
  const v = parseCli('node --import tsx bench/tickstock.ts [options]', `TickStock tick to browser: broker (forwardTicks) → pattern library → gateway → WebSocket users, p50/p99 with batching at its default and off; and the gateway's CPU for per-user filtering against plain symbol rooms.\n\n${EXAMPLES}`, OPTIONS, argv);
  const targets: Record<ConfigName, { batchMs: number; targetMs: number }> = {
    batched: { batchMs: GATEWAY_DEFAULTS.batchMs, targetMs: TARGETS.batchedP99Ms },
    'batch-off': { batchMs: 0, targetMs: TARGETS.batchOffP99Ms },
  };
  const { check, out, profileDir } = outputsFrom({ profile: v.profile, check: v.check, out: v.out });
  return {
    seconds: positiveOption(v.seconds, 'seconds'),
    warmup: positiveOption(v.warmup, 'warmup'),
    symbols: intOption(v.symbols, 'symbols'),
    tickMs: intOption(v['tick-ms'], 'tick-ms'),
    barSeconds: intOption(v['bar-seconds'], 'bar-seconds'),
    volatility: positiveOption(v.volatility, 'volatility'),
    latencyUsers: intOption(v['latency-users'], 'latency-users'),
    configs: list(v.configs, 'configs', CONFIG_NAMES).map((name) => ({ name, ...targets[name] })),
    users: intOption(v.users, 'users'),
    variants: list(v.variants, 'variants', VARIANTS),
    fanoutRate: positiveOption(v['fanout-rate'], 'fanout-rate'),
    fanoutSeconds: positiveOption(v['fanout-seconds'], 'fanout-seconds'),
    fanoutBatchMs: intOption(v['fanout-batch-ms'], 'fanout-batch-ms', 0),
    only: choiceOption(v.only, 'only', ['latency', 'fanout', 'all'] as const),
    rounds: intOption(v.rounds, 'rounds'),
    clientProcs: intOption(v['client-procs'], 'client-procs'),
    seed: intOption(v.seed, 'seed', 0),
    check,
    out,
    profileDir,
  };
}

const NO_LATENCY: Summary = { count: 0, mean: Number.NaN, p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, p999: Number.NaN, max: Number.NaN };
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Starts the gateway worker and waits for its port. */
async function startGateway(redis: RedisServer, s: Settings, batchMs: number, profileName: string): Promise<{ gateway: Worker<GatewayCommand, GatewayEvent>; port: number }> {
  const gateway = new Worker<GatewayCommand, GatewayEvent>(`gateway (batchMs ${batchMs})`, new URL('./tickstock-gateway.ts', import.meta.url), [
    ...['--url', redis.url, '--batch-ms', String(batchMs)],
    ...(s.profileDir ? ['--profile', `${s.profileDir}/${profileName}.cpuprofile`] : []),
  ]);
  const ready = await gateway.next('ready', 30_000);
  return { gateway, port: ready.port };
}

// ---- 1. latency ------------------------------------------------------------------------

interface LatencyTrial {
  config: ConfigName;
  round: number;
  batchMs: number;
  failed?: string;
  ticksPerSec: number;
  barsClosed: number;
  barsClosedByFlush: number;
  /** Patterns the library published in the window, in all and by name. */
  patterns: number;
  patternsByName: Record<string, number>;
  /** Closing tick to the pattern message back from Redis, in the pipeline process (ms): its share. */
  published: Summary;
  /** Pattern messages the stream users received, and their latency (ms). */
  stream: Summary;
  /** Inbox entries the alert users received, and their latency (ms). */
  inbox: Summary;
  /** Messages whose bar's closing tick was not found (measured from the bar's end instead). */
  withoutClosingTick: number;
  gatewayCores: number;
  pipelineCores: number;
  connected: number;
  disconnects: number;
  errors: number;
  firstError: string | undefined;
}

/** Latencies (ms) of a client's samples: receive time − the feed time of the bar's closing tick. */
function latencies(samples: Samples, closingTicks: Map<string, number>, missing: { n: number }): Float64Array {
  const out = new Float64Array(samples.symbol.length);
  for (let i = 0; i < out.length; i++) {
    const barEnd = samples.barEnd[i] as number;
    let at = closingTicks.get(closeKey(samples.symbol[i] as number, barEnd));
    if (at === undefined) {
      missing.n++;
      at = barEnd;
    }
    out[i] = (samples.received[i] as number) - at;
  }
  return out;
}

async function runLatency(redis: RedisServer, s: Settings, config: Settings['configs'][number], round: number): Promise<LatencyTrial> {
  redis.cli('FLUSHALL');
  const { gateway, port } = await startGateway(redis, s, config.batchMs, `latency-${config.name}-gateway-r${round}`);
  let clients: Worker<ClientsCommand, ClientsEvent> | undefined;
  let pipeline: Worker<PipelineCommand, PipelineEvent> | undefined;
  try {
    clients = new Worker(`${config.name} clients`, new URL('./tickstock-clients.ts', import.meta.url), [
      ...['--port', String(port), '--streams', String(s.latencyUsers), '--inbox', String(s.latencyUsers), '--latency'],
      ...['--symbols', String(s.symbols), '--seed', String(s.seed)],
    ]);
    const ready = await clients.next('ready', 60_000, 'every user connected and answered');
    pipeline = new Worker(`${config.name} pipeline`, new URL('./tickstock-pipeline.ts', import.meta.url), [
      ...['--url', redis.url, '--symbols', String(s.symbols), '--tick-ms', String(s.tickMs)],
      ...['--bar-seconds', String(s.barSeconds), '--volatility', String(s.volatility), '--seed', String(s.seed)],
    ]);
    await pipeline.next('ready', 60_000, 'the broker streaming every ticker');
    await sleep(s.warmup * 1000);

    gateway.send({ type: 'mark' });
    pipeline.send({ type: 'begin' });
    clients.send({ type: 'begin' });
    const [gStart] = await Promise.all([gateway.next('marked', 10_000), pipeline.next('begun', 10_000), clients.next('begun', 10_000)]);
    await sleep(s.seconds * 1000);
    gateway.send({ type: 'mark' });
    pipeline.send({ type: 'end' });
    // The messages of bars closed just before the end are on their way: give them a moment.
    await sleep(Math.min(1000, config.batchMs * 2 + 200));
    clients.send({ type: 'end' });
    const [gEnd, p, c] = await Promise.all([gateway.next('marked', 10_000), pipeline.next('result', 30_000), clients.next('result', 30_000)]);

    const missing = { n: 0 };
    const stream = summarize(latencies(c.stream, p.closingTicks, missing));
    const inbox = summarize(latencies(c.inbox, p.closingTicks, missing));
    return {
      config: config.name,
      round,
      batchMs: config.batchMs,
      ticksPerSec: (p.ticks * 1000) / p.windowMs,
      barsClosed: p.barsClosed,
      barsClosedByFlush: p.barsClosedByFlush,
      patterns: Object.values(p.patterns).reduce((a, b) => a + b, 0),
      patternsByName: p.patterns,
      published: summarize(p.published),
      stream,
      inbox,
      withoutClosingTick: missing.n,
      gatewayCores: (gEnd.cpuMicros - gStart.cpuMicros) / ((gEnd.at - gStart.at) * 1000),
      pipelineCores: p.cpuMicros / (p.windowMs * 1000),
      connected: ready.connected,
      disconnects: c.disconnects,
      errors: c.errors,
      firstError: c.firstError,
    };
  } finally {
    await Promise.all([pipeline?.stop(10_000), clients?.stop(10_000)]);
    await gateway.stop(10_000);
  }
}

// ---- 2. fan-out ------------------------------------------------------------------------

interface FanoutTrial {
  variant: Variant;
  round: number;
  failed?: string;
  users: number;
  connected: number;
  connectSeconds: number;
  publishedPerSec: number;
  expectedPerSec: number;
  deliveriesPerSec: number;
  framesPerSec: number;
  gatewayCpuUsPerDelivery: number;
  gatewayCpuUsPerPublished: number;
  gatewayCores: number;
  disconnects: number;
  errors: number;
  firstError: string | undefined;
}

async function runFanout(redis: RedisServer, s: Settings, variant: Variant, round: number): Promise<FanoutTrial> {
  redis.cli('FLUSHALL');
  const { gateway, port } = await startGateway(redis, s, s.fanoutBatchMs, `fanout-${variant}-gateway-r${round}`);
  const workers: Array<Worker<ClientsCommand, ClientsEvent>> = [];
  let pub: Worker<PublisherCommand, PublisherEvent> | undefined;
  try {
    const procs = Math.min(s.clientProcs, s.users);
    let first = 0;
    for (let i = 0; i < procs; i++) {
      const count = Math.floor(s.users / procs) + (i < s.users % procs ? 1 : 0);
      workers.push(new Worker(`${variant} clients ${i + 1}`, new URL('./tickstock-clients.ts', import.meta.url), ['--port', String(port), '--streams', String(count), '--first', String(first), '--variant', variant, '--symbols', String(s.symbols), '--seed', String(s.seed)]));
      first += count;
    }
    const ready = await Promise.all(workers.map((w) => w.next('ready', 60_000 + s.users * 20, 'every user connected and subscribed')));
    pub = new Worker(`${variant} publisher`, new URL('./tickstock-publisher.ts', import.meta.url), ['--url', redis.url, '--channel', variant === 'rooms' ? 'ticker' : 'patterns', '--rate', String(s.fanoutRate), '--symbols', String(s.symbols)]);
    await pub.next('ready', 30_000);
    pub.send({ type: 'start' });
    await sleep(2000);

    gateway.send({ type: 'mark' });
    pub.send({ type: 'mark' });
    for (const w of workers) w.send({ type: 'begin' });
    const [gStart, pStart] = await Promise.all([gateway.next('marked', 10_000), pub.next('marked', 10_000), ...workers.map((w) => w.next('begun', 10_000))]);
    await sleep(s.fanoutSeconds * 1000);
    gateway.send({ type: 'mark' });
    pub.send({ type: 'mark' });
    for (const w of workers) w.send({ type: 'end' });
    const [gEnd, pEnd, ...results] = await Promise.all([gateway.next('marked', 10_000), pub.next('marked', 10_000), ...workers.map((w) => w.next('result', 30_000))]);
    pub.send({ type: 'stop' });
    const stopped = await pub.next('stopped', 30_000);
    if (stopped.errors > 0) throw new Error(`${stopped.errors} publishes failed; the first: ${stopped.firstError ?? '?'}`);

    const wanters = variant === 'unfiltered' ? new Array<number>(s.symbols).fill(s.users) : wantersPerSymbol(s.users, s.symbols, s.seed);
    const meanWanters = wanters.reduce((a, b) => a + b, 0) / wanters.length;
    const sum = (f: (r: (typeof results)[number]) => number) => results.reduce((n, r) => n + f(r), 0);
    const deliveriesPerSec = sum((r) => (r.deliveries * 1000) / r.windowMs);
    const publishedPerSec = ((pEnd.published - pStart.published) * 1000) / (pEnd.at - pStart.at);
    const cpuPerSec = (gEnd.cpuMicros - gStart.cpuMicros) / ((gEnd.at - gStart.at) / 1000);
    return {
      variant,
      round,
      users: s.users,
      connected: ready.reduce((n, r) => n + r.connected, 0),
      connectSeconds: Math.max(...ready.map((r) => r.connectMs)) / 1000,
      publishedPerSec,
      expectedPerSec: publishedPerSec * meanWanters,
      deliveriesPerSec,
      framesPerSec: sum((r) => (r.frames * 1000) / r.windowMs),
      gatewayCpuUsPerDelivery: cpuPerSec / deliveriesPerSec,
      gatewayCpuUsPerPublished: cpuPerSec / publishedPerSec,
      gatewayCores: cpuPerSec / 1e6,
      disconnects: sum((r) => r.disconnects),
      errors: sum((r) => r.errors),
      firstError: results.find((r) => r.firstError !== undefined)?.firstError,
    };
  } finally {
    await Promise.all([pub?.stop(), ...workers.map((w) => w.stop(10_000))]);
    await gateway.stop(10_000);
  }
}

// ---- report ------------------------------------------------------------------------------

const problems = (t: { disconnects: number; errors: number; firstError: string | undefined }) =>
  [t.disconnects > 0 ? `${int(t.disconnects)} disconnected` : '', t.errors > 0 ? `${int(t.errors)} errors (${t.firstError ?? ''})` : ''].filter(Boolean).join(', ');

function describeLatency(t: LatencyTrial): string {
  if (t.failed) return `FAILED: ${t.failed}`;
  const p = problems(t);
  return `${int(t.patterns)} patterns of ${int(t.barsClosed)} bars, published p99 ${fixed(t.published.p99)} ms; stream ${int(t.stream.count)} p50 ${fixed(t.stream.p50)} p99 ${fixed(t.stream.p99)} ms; inbox ${int(t.inbox.count)} p50 ${fixed(t.inbox.p50)} p99 ${fixed(t.inbox.p99)} ms; gateway ${fixed(t.gatewayCores)} cores${p ? `  [${p}]` : ''}`;
}

function describeFanout(t: FanoutTrial): string {
  if (t.failed) return `FAILED: ${t.failed}`;
  const p = problems(t);
  return `${int(t.deliveriesPerSec)} deliveries/s of ${int(t.expectedPerSec)}, gateway ${fixed(t.gatewayCpuUsPerDelivery)} µs/delivery, ${fixed(t.gatewayCpuUsPerPublished, 0)} µs/published (${fixed(t.gatewayCores)} cores), connect ${fixed(t.connectSeconds, 1)} s${p ? `  [${p}]` : ''}`;
}

interface LatencyResult {
  rounds: number;
  failures: string[];
  patterns: number;
  barsClosed: number;
  barsClosedByFlush: number;
  withoutClosingTick: number;
  ticksPerSec: number;
  published: Summary;
  stream: Summary;
  inbox: Summary;
  gatewayCores: number;
  pipelineCores: number;
  clean: boolean;
}

function latencyResult(trials: readonly LatencyTrial[]): LatencyResult {
  const ok = trials.filter((t) => t.failed === undefined);
  const m = (f: (t: LatencyTrial) => number) => median(ok.map(f));
  return {
    rounds: trials.length,
    failures: trials.flatMap((t) => (t.failed === undefined ? [] : [`round ${t.round}: ${t.failed}`])),
    patterns: m((t) => t.patterns),
    barsClosed: m((t) => t.barsClosed),
    barsClosedByFlush: m((t) => t.barsClosedByFlush),
    withoutClosingTick: m((t) => t.withoutClosingTick),
    ticksPerSec: m((t) => t.ticksPerSec),
    published: ok.length > 0 ? medianSummary(ok.map((t) => t.published)) : NO_LATENCY,
    stream: ok.length > 0 ? medianSummary(ok.map((t) => t.stream)) : NO_LATENCY,
    inbox: ok.length > 0 ? medianSummary(ok.map((t) => t.inbox)) : NO_LATENCY,
    gatewayCores: m((t) => t.gatewayCores),
    pipelineCores: m((t) => t.pipelineCores),
    clean: ok.length === trials.length && ok.every((t) => t.disconnects === 0 && t.errors === 0 && t.stream.count > 0 && t.inbox.count > 0),
  };
}

const FANOUT_FIELDS = ['publishedPerSec', 'expectedPerSec', 'deliveriesPerSec', 'framesPerSec', 'gatewayCpuUsPerDelivery', 'gatewayCpuUsPerPublished', 'gatewayCores', 'connectSeconds'] as const;
type FanoutResult = Record<(typeof FANOUT_FIELDS)[number], number> & { rounds: number; failures: string[]; clean: boolean };

function fanoutResult(trials: readonly FanoutTrial[]): FanoutResult {
  const ok = trials.filter((t) => t.failed === undefined);
  return {
    ...(Object.fromEntries(FANOUT_FIELDS.map((f) => [f, median(ok.map((t) => t[f]))])) as Record<(typeof FANOUT_FIELDS)[number], number>),
    rounds: trials.length,
    failures: trials.flatMap((t) => (t.failed === undefined ? [] : [`round ${t.round}: ${t.failed}`])),
    clean: ok.length === trials.length && ok.every((t) => t.connected === t.users && t.disconnects === 0 && t.errors === 0 && t.deliveriesPerSec >= 0.98 * t.expectedPerSec),
  };
}

function report(s: Settings, latency: Partial<Record<ConfigName, LatencyResult>>, fanout: Partial<Record<Variant, FanoutResult>>): { ratios: Record<string, number>; targetsMet: Record<string, boolean> } {
  const ratios: Record<string, number> = {};
  const targetsMet: Record<string, boolean> = {};
  if (s.only !== 'fanout') {
    console.log(`\nTick to browser: ${s.symbols} symbols, a tick each every ${s.tickMs} ms, ${s.barSeconds} s bars; ${s.latencyUsers} users on ${'tickstock:patterns:streaming'} filtered by 1-10 symbols and ${s.latencyUsers} alert users on their inbox; ${s.seconds} s a run (median of ${s.rounds})`);
    const rows = s.configs.map((c) => {
      const r = latency[c.name];
      if (!r || r.failures.length === r.rounds) return [c.name, `failed: ${r?.failures[0] ?? '?'}`];
      return [
        c.name,
        String(c.batchMs),
        int(r.barsClosed),
        int(r.patterns),
        fixed(r.published.p50),
        fixed(r.published.p99),
        int(r.stream.count),
        fixed(r.stream.p50),
        fixed(r.stream.p99),
        fixed(r.stream.max),
        int(r.inbox.count),
        fixed(r.inbox.p50),
        fixed(r.inbox.p99),
        fixed(r.inbox.max),
        fixed(r.gatewayCores, 3),
        `< ${c.targetMs}`,
        r.clean ? 'yes' : 'NO',
      ];
    });
    console.log(table(['config', 'batchMs', 'bars', 'patterns', 'published p50', 'p99', 'stream msgs', 'p50 ms', 'p99 ms', 'max ms', 'inbox msgs', 'p50 ms', 'p99 ms', 'max ms', 'gateway cores', 'p99 target', 'clean'], rows));
    for (const c of s.configs) {
      const r = latency[c.name];
      if (!r || r.failures.length === r.rounds) continue;
      if (r.failures.length > 0) console.log(`${c.name}: ${r.failures.join('; ')}`);
      const byFlush = r.barsClosedByFlush > 0 ? `, ${int(r.barsClosedByFlush)} bars closed by the flush timer` : '';
      const noTick = r.withoutClosingTick > 0 ? `, ${int(r.withoutClosingTick)} messages without a closing tick (measured from the bar end)` : '';
      console.log(`${c.name}: ${fixed(r.ticksPerSec, 0)} ticks/s${byFlush}${noTick}; pipeline (broker + patterns) ${fixed(r.pipelineCores)} cores`);
      for (const [path, summary] of [['stream', r.stream], ['inbox', r.inbox]] as const) {
        const met = r.clean && summary.p99 < c.targetMs;
        targetsMet[`p99.${c.name}.${path}`] = met;
        const by = summary.p99 < c.targetMs ? '' : ` (over by ${fixed(summary.p99 - c.targetMs, 1)} ms)`;
        console.log(`  ${path} p99 ${fixed(summary.p99)} ms (target < ${c.targetMs} ms: ${verdict(met)}${by})`);
      }
    }
  }
  if (s.only !== 'latency') {
    const wanters = wantersPerSymbol(s.users, s.symbols, s.seed);
    const mean = wanters.reduce((a, b) => a + b, 0) / wanters.length;
    console.log(`\nFan-out: ${int(s.users)} users (1-10 of ${s.symbols} symbols each, ${fixed(mean, 1)} a symbol on average), ${s.fanoutRate} messages/s, gateway batchMs ${s.fanoutBatchMs}, ${s.fanoutSeconds} s a run (median of ${s.rounds})`);
    const rows = s.variants.map((variant) => {
      const r = fanout[variant];
      if (!r || r.failures.length === r.rounds) return [variant, `failed: ${r?.failures[0] ?? '?'}`];
      return [variant, fixed(r.publishedPerSec, 1), int(r.deliveriesPerSec), int(r.expectedPerSec), int(r.framesPerSec), fixed(r.gatewayCpuUsPerDelivery), fixed(r.gatewayCpuUsPerPublished, 0), fixed(r.gatewayCores, 3), r.clean ? 'yes' : 'NO'];
    });
    console.log(table(['variant', 'published/s', 'deliveries/s', 'expected/s', 'frames/s', 'gateway CPU µs/delivery', 'µs/published', 'gateway cores', 'clean'], rows));
    for (const variant of s.variants) {
      const r = fanout[variant];
      if (r && r.failures.length > 0) console.log(`${variant}: ${r.failures.join('; ')}`);
    }
    const f = fanout.filtered;
    for (const base of ['rooms', 'unfiltered'] as const) {
      const b = fanout[base];
      if (!f || !b) continue;
      ratios[`filtered/${base}.perDelivery`] = ratio(f.gatewayCpuUsPerDelivery, b.gatewayCpuUsPerDelivery);
      ratios[`filtered/${base}.perPublished`] = ratio(f.gatewayCpuUsPerPublished, b.gatewayCpuUsPerPublished);
      console.log(`filtered/${base}: gateway CPU per delivery ${fixed(ratios[`filtered/${base}.perDelivery`] ?? NaN)}x, per published message ${fixed(ratios[`filtered/${base}.perPublished`] ?? NaN)}x`);
    }
  }
  return { ratios, targetsMet };
}

// ---- main --------------------------------------------------------------------------------

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'ws']);
  console.log(`Machine: ${machineLine(machine)}`);
  console.log('Pipeline (broker + pattern library), gateway, clients, publisher and redis-server share the CPUs.');
  const { latencyTrials, fanoutTrials } = await withPrivateRedis({ machine, profileDir: s.profileDir, note: 'flushed before each run' }, async (redis) => {
    const latencyTrials: LatencyTrial[] = [];
    const fanoutTrials: FanoutTrial[] = [];
    for (let round = 1; round <= s.rounds; round++) {
      if (s.only !== 'fanout') {
        for (const config of round % 2 === 1 ? s.configs : [...s.configs].reverse()) {
          let t: LatencyTrial;
          try {
            t = await runLatency(redis, s, config, round);
          } catch (error) {
            t = { config: config.name, round, batchMs: config.batchMs, failed: errorText(error), ticksPerSec: NaN, barsClosed: NaN, barsClosedByFlush: NaN, patterns: NaN, patternsByName: {}, published: NO_LATENCY, stream: NO_LATENCY, inbox: NO_LATENCY, withoutClosingTick: NaN, gatewayCores: NaN, pipelineCores: NaN, connected: NaN, disconnects: NaN, errors: NaN, firstError: undefined };
          }
          latencyTrials.push(t);
          console.log(`round ${round}/${s.rounds}  latency ${config.name.padEnd(9)}  ${describeLatency(t)}`);
        }
      }
      if (s.only !== 'latency') {
        for (const variant of round % 2 === 1 ? s.variants : [...s.variants].reverse()) {
          let t: FanoutTrial;
          try {
            t = await runFanout(redis, s, variant, round);
          } catch (error) {
            const nan = Number.NaN;
            t = { variant, round, failed: errorText(error), users: s.users, connected: nan, connectSeconds: nan, publishedPerSec: nan, expectedPerSec: nan, deliveriesPerSec: nan, framesPerSec: nan, gatewayCpuUsPerDelivery: nan, gatewayCpuUsPerPublished: nan, gatewayCores: nan, disconnects: nan, errors: nan, firstError: undefined };
          }
          fanoutTrials.push(t);
          console.log(`round ${round}/${s.rounds}  fan-out ${variant.padEnd(10)}  ${describeFanout(t)}`);
        }
      }
    }
    return { latencyTrials, fanoutTrials };
  });

  const latency: Partial<Record<ConfigName, LatencyResult>> = {};
  if (s.only !== 'fanout') for (const c of s.configs) latency[c.name] = latencyResult(latencyTrials.filter((t) => t.config === c.name));
  const fanout: Partial<Record<Variant, FanoutResult>> = {};
  if (s.only !== 'latency') for (const v of s.variants) fanout[v] = fanoutResult(fanoutTrials.filter((t) => t.variant === v));
  const { ratios, targetsMet } = report(s, latency, fanout);
  const { check, out, profileDir, ...settings } = s;
  return writeResults({ check, out, profileDir }, { benchmark: 'tickstock', machine, settings: { ...settings, profiled: profileDir !== undefined }, targets: TARGETS, results: { latency, fanout }, ratios, targetsMet, trials: [...latencyTrials, ...fanoutTrials] });
}

runMain(main);
