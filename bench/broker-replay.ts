// Broker replay benchmark: how fast the broker publishes a recorded trade file, against
// raw node-redis loops publishing the same messages: raw (a PUBLISH per update) and
// raw-history (the broker's Redis work: a history entry and a PUBLISH with its position
// per update, one script per batch). One private redis-server; each run is a fresh worker
// process (bench/broker-replay-worker.ts) that replays an unmeasured warm-up file, then
// the measured one. Every round runs each implementation once, in a rotating order; the
// report shows medians. Writes the figures to artifacts/bench-broker-replay.json.
//
//   node --import tsx bench/broker-replay.ts [--trades N] [--tickers K] [--rounds R] [--impl which] [--help]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisServer } from '../test/harness/redis-server.ts';
import { benchTickers, HISTORY_BATCH, HISTORY_MAX_LEN, historyKey, IMPLS, workerArgs, writeReplayFile, type Impl, type WorkerCommand, type WorkerEvent } from './broker-replay-common.ts';
import { choiceOption, intOption, parseCli, runMain, table, type OptionSpec } from './lib/cli.ts';
import { describeMachine, machineLine } from './lib/machine.ts';
import { Worker } from './lib/proc.ts';
import { fixed, int, outputsFrom, verdict, writeResults, type Outputs } from './lib/report.ts';
import { redisCpuMicros, withPrivateRedis } from './lib/server.ts';
import { median, ratio } from './lib/stats.ts';

const OPTIONS = {
  trades: { type: 'string', value: 'N', default: '200000', description: 'Trades in the measured replay file (every one is published).' },
  tickers: { type: 'string', value: 'K', default: '20', description: 'Tickers, in turn; the broker has all of them registered.' },
  rounds: { type: 'string', value: 'R', default: '3', description: 'Rounds; each runs every implementation once, in a rotating order. Medians are reported.' },
  warmup: { type: 'string', value: 'N', default: '10000', description: 'Trades in the unmeasured warm-up file each worker replays first.' },
  window: { type: 'string', value: 'N', default: '512', description: `raw and raw-history: updates in flight at most (raw-history sends ${HISTORY_BATCH} a script, so 512 is 2 scripts; the broker batches 256 a round trip, 2 in flight).` },
  impl: {
    type: 'string',
    value: 'which',
    default: 'all',
    description: `raw (PUBLISH only), raw-history (XADD MAXLEN ~ ${HISTORY_MAX_LEN.toLocaleString('en-US')} and PUBLISH with the position, as the broker), broker or all (one alone: for profiling).`,
  },
  profile: { type: 'boolean', description: 'Write V8 CPU profiles of the measured replays to artifacts/profiles/ (slows them; not for the figures).' },
  check: { type: 'boolean', description: 'Exit with code 3 when the target is missed.' },
  out: { type: 'string', value: 'file', default: 'artifacts/bench-broker-replay.json', description: 'Where to write the JSON results.' },
} as const satisfies Record<string, OptionSpec>;

/** broker/raw-history, the like-for-like comparison: the same Redis work on both sides. */
const TARGETS = { throughputRatio: 0.8 } as const;

/** How long a worker may take to start, connect, register and replay the warm-up file. */
const START_MS = 60_000;

interface Settings extends Outputs {
  trades: number;
  tickers: string[];
  rounds: number;
  warmup: number;
  window: number;
  impls: readonly Impl[];
}

interface Trial {
  round: number;
  impl: Impl;
  trades: number;
  warmupPublished: number;
  /** Start of the replay to the last publish acknowledged by Redis. */
  elapsedMs: number;
  updatesPerSec: number;
  /** CPU (user + system) of the publishing process per update, microseconds. */
  cpuUsPerUpdate: number;
  /** CPU of redis-server per update over the measured replay (and the worker's stop), microseconds. */
  redisCpuUsPerUpdate: number;
  /** broker: publish round trips, and updates per round trip. */
  batches: number | undefined;
  updatesPerBatch: number | undefined;
}

function settingsFrom(argv: string[]): Settings {
  const v = parseCli(
    'node --import tsx bench/broker-replay.ts [options]',
    'Updates per second the broker publishes from a replay file (ReplayFeed at speed max), against raw node-redis publishing the same messages, without and with the history the broker writes (one private redis-server).',
    OPTIONS,
    argv,
  );
  const impl = choiceOption(v.impl, 'impl', [...IMPLS, 'all']);
  return {
    trades: intOption(v.trades, 'trades'),
    tickers: benchTickers(intOption(v.tickers, 'tickers')),
    rounds: intOption(v.rounds, 'rounds'),
    warmup: intOption(v.warmup, 'warmup', 0),
    window: intOption(v.window, 'window'),
    impls: impl === 'all' ? IMPLS : [impl],
    ...outputsFrom(v),
  };
}

async function runTrial(server: RedisServer, s: Settings, files: { file: string; warmupFile: string }, round: number, impl: Impl): Promise<Trial> {
  // Same starting state for every run: no leases, no last values.
  server.cli('FLUSHALL');
  const args = workerArgs({
    impl,
    url: server.url,
    file: files.file,
    warmupFile: files.warmupFile,
    trades: s.trades,
    tickers: s.tickers,
    window: s.window,
    profile: s.profileDir && join(s.profileDir, `${impl}-r${round}.cpuprofile`),
  });
  const worker = new Worker<WorkerCommand, WorkerEvent>(`${impl} worker`, new URL('./broker-replay-worker.ts', import.meta.url), args);
  try {
    const ready = await worker.next('ready', START_MS, 'start-up and warm-up');
    const redisCpuAtStart = redisCpuMicros(server);
    worker.send({ type: 'run' });
    // Generous: at least 2,000 updates a second.
    const result = await worker.next('result', s.trades / 2 + 30_000, 'the end of the measured replay');
    const redisCpu = redisCpuMicros(server) - redisCpuAtStart;
    if (result.published !== s.trades) throw new Error(`${impl}: published ${result.published} of ${s.trades} trades.`);
    checkHistory(server, s, impl);
    const elapsedMs = result.endedAt - result.startedAt;
    return {
      round,
      impl,
      trades: s.trades,
      warmupPublished: ready.warmupPublished,
      elapsedMs,
      updatesPerSec: (s.trades * 1000) / elapsedMs,
      cpuUsPerUpdate: result.cpuMicros / s.trades,
      redisCpuUsPerUpdate: redisCpu / s.trades,
      batches: result.batches,
      updatesPerBatch: result.batches === undefined ? undefined : s.trades / result.batches,
    };
  } finally {
    await worker.stop();
  }
}

/** raw-history and broker left a bounded history per ticker; raw left none. */
function checkHistory(server: RedisServer, s: Settings, impl: Impl): void {
  for (const ticker of s.tickers) {
    const length = Number(server.cli('XLEN', historyKey(`TICKER_UPDATES_${ticker}`)));
    const written = Math.ceil((s.warmup + s.trades) / s.tickers.length);
    // MAXLEN ~ trims whole nodes only (100 entries each by default): at least the bound is kept.
    const ok = impl === 'raw' ? length === 0 : length >= Math.min(written, HISTORY_MAX_LEN) && length <= written;
    if (!ok) throw new Error(`${impl}: ${length} history entries for ${ticker} after the run.`);
  }
}

// ---- report --------------------------------------------------------------------------

interface ImplResult {
  updatesPerSec: number;
  cpuUsPerUpdate: number;
  redisCpuUsPerUpdate: number;
  updatesPerBatch: number | undefined;
  perRound: number[];
}

function summarizeImpl(trials: readonly Trial[]): ImplResult {
  const batches = trials.flatMap((t) => (t.updatesPerBatch === undefined ? [] : [t.updatesPerBatch]));
  return {
    updatesPerSec: median(trials.map((t) => t.updatesPerSec)),
    cpuUsPerUpdate: median(trials.map((t) => t.cpuUsPerUpdate)),
    redisCpuUsPerUpdate: median(trials.map((t) => t.redisCpuUsPerUpdate)),
    updatesPerBatch: batches.length > 0 ? median(batches) : undefined,
    perRound: trials.map((t) => t.updatesPerSec),
  };
}

function report(s: Settings, results: Partial<Record<Impl, ImplResult>>): { ratios: Record<string, number>; targetsMet: Record<string, boolean> } {
  const ratios: Record<string, number> = {};
  const targetsMet: Record<string, boolean> = {};
  console.log(`\nReplay: ${int(s.trades)} Alpaca trades over ${s.tickers.length} tickers, start of the replay to the last publish acknowledged (median of ${s.rounds})`);
  const rows = s.impls.map((impl) => {
    const r = results[impl];
    return [impl, int(r?.updatesPerSec ?? NaN), fixed(r?.cpuUsPerUpdate ?? NaN, 1), fixed(r?.redisCpuUsPerUpdate ?? NaN, 1), r?.updatesPerBatch === undefined ? '-' : fixed(r.updatesPerBatch, 0), (r?.perRound ?? []).map(int).join(' / ')];
  });
  console.log(table(['impl', 'updates/s', 'CPU µs/update', 'redis-server CPU µs/update', 'updates/round trip', 'per round updates/s'], rows));
  const broker = results.broker;
  const raw = results.raw;
  const rawHistory = results['raw-history'];
  if (broker && raw) {
    ratios.throughputVsRaw = ratio(broker.updatesPerSec, raw.updatesPerSec);
    ratios.cpuPerUpdateVsRaw = ratio(broker.cpuUsPerUpdate, raw.cpuUsPerUpdate);
    console.log(`broker/raw         updates/s: ${fixed(ratios.throughputVsRaw)}x  (not like-for-like: raw writes no history);  CPU per update: ${fixed(ratios.cpuPerUpdateVsRaw)}x`);
  }
  if (broker && rawHistory) {
    ratios.throughputVsRawHistory = ratio(broker.updatesPerSec, rawHistory.updatesPerSec);
    ratios.cpuPerUpdateVsRawHistory = ratio(broker.cpuUsPerUpdate, rawHistory.cpuUsPerUpdate);
    targetsMet.throughputVsRawHistory = ratios.throughputVsRawHistory >= TARGETS.throughputRatio;
    console.log(
      `broker/raw-history updates/s: ${fixed(ratios.throughputVsRawHistory)}x  (like-for-like; target >= ${TARGETS.throughputRatio}x: ${verdict(targetsMet.throughputVsRawHistory)});  CPU per update: ${fixed(ratios.cpuPerUpdateVsRawHistory)}x`,
    );
  }
  return { ratios, targetsMet };
}

// ---- main ----------------------------------------------------------------------------

/**
 * Each round starts one implementation later (raw, raw-history, broker; then raw-history,
 * broker, raw; ...), so that over three rounds each runs first, second and third once.
 */
function roundOrder(impls: readonly Impl[], round: number): Impl[] {
  return impls.map((_, i) => impls[(i + round - 1) % impls.length] as Impl);
}

async function runRounds(server: RedisServer, s: Settings, files: { file: string; warmupFile: string }): Promise<Trial[]> {
  const trials: Trial[] = [];
  const width = Math.max(...s.impls.map((impl) => impl.length));
  for (let round = 1; round <= s.rounds; round++) {
    for (const impl of roundOrder(s.impls, round)) {
      const t = await runTrial(server, s, files, round, impl);
      trials.push(t);
      const batch = t.updatesPerBatch === undefined ? '' : `, ${fixed(t.updatesPerBatch, 0)} updates/round trip`;
      console.log(`round ${round}/${s.rounds}  ${impl.padEnd(width)}  ${int(t.updatesPerSec)} updates/s  (${int(t.elapsedMs)} ms, CPU ${fixed(t.cpuUsPerUpdate, 1)} µs/update, redis-server ${fixed(t.redisCpuUsPerUpdate, 1)}${batch})`);
    }
  }
  return trials;
}

async function main(): Promise<number> {
  const s = settingsFrom(process.argv.slice(2));
  const machine = describeMachine(['tickbus', 'redis', 'zod', 'prom-client', 'pino']);
  console.log(`Machine: ${machineLine(machine)}`);

  const dir = mkdtempSync(join(tmpdir(), 'tickbus-bench-replay-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  const files = { file: join(dir, 'trades.ndjson'), warmupFile: join(dir, 'warmup.ndjson') };
  let bytes: number;
  try {
    bytes = writeReplayFile(files.file, s.trades, s.tickers, 1);
    writeReplayFile(files.warmupFile, s.warmup, s.tickers, 2, '2025-04-23T13:30:00.000Z');
  } catch (error) {
    removeDir();
    throw error;
  }
  console.log(`Replay file: ${int(s.trades)} trades, ${(bytes / 1e6).toFixed(1)} MB (warm-up file: ${int(s.warmup)} trades), in ${dir}`);
  const trials = await withPrivateRedis({ machine, profileDir: s.profileDir, cleanUp: removeDir }, (server) => runRounds(server, s, files));

  const results: Partial<Record<Impl, ImplResult>> = {};
  for (const impl of s.impls) results[impl] = summarizeImpl(trials.filter((t) => t.impl === impl));
  const { ratios, targetsMet } = report(s, results);

  const settings = { trades: s.trades, tickers: s.tickers, rounds: s.rounds, warmup: s.warmup, window: s.window, impls: s.impls, profiled: s.profileDir !== undefined };
  return writeResults(s, { benchmark: 'broker-replay', machine, settings, targets: TARGETS, results, ratios, targetsMet, trials });
}

runMain(main);
