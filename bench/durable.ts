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
import type { RedisServer } from '../test/harness/redis-server.ts';
import { UsageError, intOption, parseCli, runMain, table, type OptionSpec } from './lib/cli.ts';
import { deliverySettings, latencyDetail, runDelivery, runRounds, summarizeDelivery, type DeliveryResult, type DeliverySettings, type DeliveryTrial, type DeliveryWorkers } from './lib/delivery-run.ts';
import type { Mode } from './lib/delivery.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { fixed, int, latencyCells, LATENCY_HEADERS, verdict, writeResults } from './lib/report.ts';
import { withPrivateRedis } from './lib/server.ts';
import { ratio } from './lib/stats.ts';
import { GROUP, IMPLS, MAX_LEN, STREAM_KEY, type Impl } from './durable-common.ts';

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

/** How long the last acknowledgement may trail the last handler call. */
const ACK_MS = 10_000;

const WORKERS: DeliveryWorkers<'consumer'> = {
  publisher: new URL('./durable-publisher.ts', import.meta.url),
  receiver: { role: 'consumer', verb: 'handled', script: new URL('./durable-consumer.ts', import.meta.url) },
};

interface Settings extends DeliverySettings<Impl> {
  batch: number;
  block: number;
}

interface Trial extends DeliveryTrial<Impl, 'consumer'> {
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
  const s = deliverySettings(v, IMPLS, 'both');
  // Entries beyond the bound are trimmed, and an entry trimmed before it was read is lost.
  if (Math.max(s.messages, Math.round(s.rate * s.seconds)) > MAX_LEN) throw new UsageError(`--messages (and --rate x --seconds) must be at most the stream's bound, ${MAX_LEN}: a consumer that falls further behind loses the trimmed entries.`);
  return { ...s, batch: intOption(v.batch, 'batch'), block: intOption(v.block, 'block') };
}

// ---- checks through redis-cli ----------------------------------------------------------

/** Fields of a flat redis-cli reply (`name\nvalue\n…`), as text. */
function fields(text: string): Map<string, string> {
  const lines = text.split('\n');
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i] as string, lines[i + 1] as string);
  return out;
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

function runTrial(server: RedisServer, s: Settings, round: number, impl: Impl, mode: Mode): Promise<Trial> {
  return runDelivery(server, s, { round, impl, mode, workerOptions: { batch: s.batch, block: s.block } }, WORKERS, async ({ messages, figures, latency }) => {
    const verified = await verify(server, s.warmup + messages);
    const published = s.warmup + messages;
    if (verified.pending !== 0) throw new Error(`${impl} ${mode}: ${verified.pending} messages still pending (not acknowledged) ${ACK_MS / 1000} s after the last was handled.`);
    if (verified.entriesAdded !== published) throw new Error(`${impl} ${mode}: the stream received ${verified.entriesAdded} entries, ${published} were published.`);
    if (verified.lag !== undefined && verified.lag !== 0) throw new Error(`${impl} ${mode}: the group's lag is ${verified.lag}, not 0.`);
    return { round, impl, mode, messages, ...figures, latency, verified };
  });
}

// ---- report --------------------------------------------------------------------------

const CPU = ['publisherCpuUsPerMsg', 'consumerCpuUsPerMsg', 'redisCpuUsPerMsg'] as const;

/** Medians over the rounds, with p50 and p99 round by round. */
type ImplResult = DeliveryResult<(typeof CPU)[number], 'p50' | 'p99'>;

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
      return [impl, int(l?.publishedPerSec ?? NaN), ...latencyCells(l?.latencyMs), (l?.p99PerRound ?? []).map((p) => fixed(p)).join(' / ')];
    });
    console.log(table(['impl', 'sent msg/s', ...LATENCY_HEADERS, 'p99 per round'], rows));
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

/** What a run measured and what the checks found, for its round's line. */
function describeTrial(t: Trial): string {
  const detail = t.mode === 'throughput' ? `${int(t.deliveredPerSec)} msg/s handled (published ${int(t.publishedPerSec)} msg/s)` : latencyDetail(t.latency, t.publishedPerSec);
  return `${detail}  (CPU µs/msg: pub ${fixed(t.publisherCpuUsPerMsg, 1)}, consumer ${fixed(t.consumerCpuUsPerMsg, 1)}, redis ${fixed(t.redisCpuUsPerMsg, 1)}; pending ${t.verified.pending})`;
}

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'zod']);
  console.log(`Machine: ${machineLine(machine)}`);
  // Each round runs raw, then tickbus.
  const plan = { order: () => s.impls, width: Math.max(...IMPLS.map((impl) => impl.length)) };
  const note = `stream ${STREAM_KEY}, MAXLEN ~ ${MAX_LEN}, group ${GROUP}`;
  const trials = await withPrivateRedis({ machine, note, profileDir: s.profileDir }, (server) => runRounds(s, plan, (round, mode, impl) => runTrial(server, s, round, impl, mode), describeTrial));

  const results: Partial<Record<Impl, ImplResult>> = {};
  for (const impl of s.impls) results[impl] = summarizeDelivery(trials.filter((t) => t.impl === impl), CPU, ['p50', 'p99']);
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
  return writeResults(s, { benchmark: 'durable', machine, settings, targets: TARGETS, results, ratios, targetsMet, trials });
}

runMain(main);
