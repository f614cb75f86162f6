// The parent side of a delivery benchmark (bench/pubsub.ts, bench/durable.ts): the
// settings every one takes, one run of its publisher and receiving worker on the private
// redis-server with the figures every run reports, and the rounds.
import { join } from 'node:path';
import type { RedisServer } from '../../test/harness/redis-server.ts';
import { UsageError, choiceOption, intOption, positiveOption } from './cli.ts';
import {
  MODES,
  deliveryWorkerArgs,
  type DeliveryWorkerConfig,
  type Mode,
  type PublisherCommand,
  type PublisherEvent,
  type ReceiverCommand,
  type ReceiverEvent,
  type ReceiverResult,
} from './delivery.ts';
import { TimeoutError, Worker } from './proc.ts';
import { fixed, int, outputsFrom, type Outputs } from './report.ts';
import { redisCpuMicros } from './server.ts';
import { median, medianSummary, medians, type Summary } from './stats.ts';

// ---- settings ------------------------------------------------------------------------

/** What every delivery benchmark's command line sets; a benchmark may add its own. */
export interface DeliverySettings<I extends string> extends Outputs {
  messages: number;
  rate: number;
  seconds: number;
  rounds: number;
  window: number;
  warmup: number;
  modes: readonly Mode[];
  impls: readonly I[];
}

/** The option values every delivery benchmark declares (each in its own words and defaults). */
type DeliveryOptionValues = Record<'messages' | 'rate' | 'seconds' | 'rounds' | 'window' | 'warmup' | 'only' | 'impl' | 'out', string> & Record<'profile' | 'check', boolean>;

/** The settings from the option values; `all` is the --impl value that runs every implementation. */
export function deliverySettings<I extends string>(v: DeliveryOptionValues, impls: readonly I[], all: string): DeliverySettings<I> {
  const only = choiceOption(v.only, 'only', ['throughput', 'latency', 'both']);
  const impl = choiceOption(v.impl, 'impl', [...impls, all]);
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
    impls: impl === all ? impls : [impl as I],
    ...outputsFrom(v),
  };
}

// ---- one run -------------------------------------------------------------------------

/** How long a worker may take to start, connect and subscribe (or join its group). */
const START_MS = 30_000;
/** How long the last message may trail the publisher's last acknowledgement. */
const GRACE_MS = 30_000;

/** A benchmark's worker scripts. The receiver's role names it in errors and in the figures. */
export interface DeliveryWorkers<R extends string> {
  publisher: URL;
  receiver: { role: R; script: URL; /** What the receiver does to a message: received, handled. */ verb: string };
}

/**
 * The figures every run reports, per measured message where not said. The receiving
 * worker's CPU is named after its role (`subscriberCpuUsPerMsg`), as the reports name it.
 */
export type DeliveryFigures<R extends string> = {
  /** First publish to the last message reaching the receiver's handler. */
  elapsedMs: number;
  /** messages / elapsedMs: the end-to-end rate. */
  deliveredPerSec: number;
  /** messages / (first publish to last publish acknowledged). */
  publishedPerSec: number;
  /** CPU (user + system), microseconds. */
  publisherCpuUsPerMsg: number;
} & { [K in `${R}CpuUsPerMsg`]: number } & {
  /** redis-server's CPU (INFO cpu) from just before the measured phase to the last delivery. */
  redisCpuUsPerMsg: number;
};

/** A run as a benchmark records it; a benchmark adds what it checked. */
export type DeliveryTrial<I extends string, R extends string> = { round: number; impl: I; mode: Mode; messages: number } & DeliveryFigures<R> & {
  /** Latency runs: publish call to handler, ms. */
  latency: Summary | undefined;
};

/** What a run measured, every message delivered without an error. */
export interface Delivery<R extends string> {
  messages: number;
  figures: DeliveryFigures<R>;
  /** Latency runs: publish call to handler, ms. */
  latency: Summary | undefined;
}

/** Measured messages in a run: --messages, or in latency runs --rate x --seconds. */
function measuredMessages(s: DeliverySettings<string>, mode: Mode): number {
  return mode === 'throughput' ? s.messages : Math.round(s.rate * s.seconds);
}

/**
 * One run on an emptied Redis: starts the receiver, then the publisher, has it send the
 * warm-up and the measured messages, and awaits the receiver's result. `check` gets the
 * figures while both workers still run (a consumer must be there to acknowledge).
 */
export async function runDelivery<I extends string, R extends string, T>(
  server: RedisServer,
  s: DeliverySettings<I>,
  run: { round: number; impl: I; mode: Mode; /** Options of the benchmark's own for both workers, e.g. { batch: 100 }. */ workerOptions?: Record<string, number> },
  workers: DeliveryWorkers<R>,
  check: (delivery: Delivery<R>) => T | Promise<T>,
): Promise<T> {
  const { round, impl, mode } = run;
  const { role, verb } = workers.receiver;
  const label = `${impl} ${mode}`;
  const messages = measuredMessages(s, mode);
  const base: DeliveryWorkerConfig = { impl, mode, url: server.url, warmup: s.warmup, messages, rate: s.rate, window: s.window, profile: undefined };
  const args = (worker: string) => deliveryWorkerArgs({ ...base, profile: s.profileDir && join(s.profileDir, `${impl}-${mode}-${worker}-r${round}.cpuprofile`) }, run.workerOptions);
  // Generous: a phase may run at 2,000 msg/s (throughput) or half the rate (latency).
  const budget = (count: number) => (mode === 'throughput' ? count / 2 : (2000 * count) / s.rate) + GRACE_MS;

  // Every run starts from an empty Redis: it finds no stream, group or history an earlier
  // run left behind.
  server.cli('FLUSHALL');
  const receiver = new Worker<ReceiverCommand, ReceiverEvent>(`${label} ${role}`, workers.receiver.script, args(role));
  let pub: Worker<PublisherCommand, PublisherEvent> | undefined;
  try {
    await receiver.next('ready', START_MS);
    pub = new Worker<PublisherCommand, PublisherEvent>(`${label} publisher`, workers.publisher, args('publisher'));
    await pub.next('ready', START_MS);
    if (s.warmup > 0) {
      pub.send({ type: 'run', phase: 'warmup' });
      await pub.next('sent', budget(s.warmup), 'end of the warm-up');
    }
    await receiver.next('warm', GRACE_MS, 'warm-up messages');
    const redisCpuAtStart = redisCpuMicros(server);
    pub.send({ type: 'run', phase: 'measure' });
    const sent = await pub.next('sent', budget(messages), 'end of the measured run');
    let result: ReceiverResult;
    try {
      result = await receiver.next('result', GRACE_MS, 'result (all messages)');
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      receiver.send({ type: 'report' });
      result = await receiver.next('result', 5000);
    }
    const redisCpu = redisCpuMicros(server) - redisCpuAtStart;
    if (!result.complete) throw new Error(`${label}: the ${role} ${verb} ${result.count} of ${messages} messages.`);
    if (result.errors > 0) throw new Error(`${label}: ${result.errors} errors; the first: ${result.firstError ?? '?'}`);
    const elapsedMs = result.lastAt - sent.startedAt;
    const figures = {
      elapsedMs,
      deliveredPerSec: (messages * 1000) / elapsedMs,
      publishedPerSec: (messages * 1000) / (sent.endedAt - sent.startedAt),
      publisherCpuUsPerMsg: sent.cpuMicros / messages,
      [`${role}CpuUsPerMsg`]: result.cpuMicros / messages,
      redisCpuUsPerMsg: redisCpu / messages,
    } as DeliveryFigures<R>;
    return await check({ messages, figures, latency: result.latency });
  } finally {
    await Promise.all([pub?.stop(), receiver.stop()]);
  }
}

// ---- medians -------------------------------------------------------------------------

/** What the medians read of a run (a benchmark's trial has more). */
interface MeasuredRun {
  mode: Mode;
  deliveredPerSec: number;
  publishedPerSec: number;
  latency: Summary | undefined;
}

/** The percentiles a benchmark also lists round by round (`p99PerRound`). */
type Percentile = 'p50' | 'p99';

/** One implementation's medians over the rounds, by mode; `C` are the run's CPU figures. */
export interface DeliveryResult<C extends string, P extends Percentile> {
  throughput?: Record<'deliveredPerSec' | 'publishedPerSec' | C, number> & { perRound: number[] };
  latency?: { publishedPerSec: number; latencyMs: Summary } & Record<`${P}PerRound`, number[]> & Record<C, number>;
}

/** The medians of one implementation's runs: rates, latency and `cpu` (the CPU figures, in the order to record). */
export function summarizeDelivery<C extends string, T extends MeasuredRun & Record<C, number>, P extends Percentile>(
  trials: readonly T[],
  cpu: readonly C[],
  perRound: readonly P[],
): DeliveryResult<C, P> {
  const out: DeliveryResult<C, P> = {};
  const tp = trials.filter((t) => t.mode === 'throughput');
  if (tp.length > 0) {
    out.throughput = { ...medians(tp, ['deliveredPerSec', 'publishedPerSec', ...cpu]), perRound: tp.map((t) => t.deliveredPerSec) };
  }
  const lat = trials.filter((t): t is T & { latency: Summary } => t.mode === 'latency' && t.latency !== undefined);
  if (lat.length > 0) {
    const rounds = Object.fromEntries(perRound.map((p) => [`${p}PerRound`, lat.map((t) => t.latency[p])])) as Record<`${P}PerRound`, number[]>;
    out.latency = { publishedPerSec: median(lat.map((t) => t.publishedPerSec)), latencyMs: medianSummary(lat.map((t) => t.latency)), ...rounds, ...medians(lat, cpu) };
  }
  return out;
}

// ---- rounds --------------------------------------------------------------------------

/**
 * Runs the rounds: each runs every mode and, in each mode, every implementation in the
 * round's `order`. Prints a line a run: round, mode, implementation (padded to `width`)
 * and what `describe` says it measured.
 */
export async function runRounds<I extends string, T>(
  s: DeliverySettings<I>,
  plan: { order: (round: number) => readonly I[]; width: number },
  trial: (round: number, mode: Mode, impl: I) => Promise<T>,
  describe: (t: T) => string,
): Promise<T[]> {
  const trials: T[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    const order = plan.order(round);
    for (const mode of s.modes) {
      for (const impl of order) {
        const t = await trial(round, mode, impl);
        trials.push(t);
        console.log(`round ${round}/${s.rounds}  ${mode.padEnd(10)}  ${impl.padEnd(plan.width)}  ${describe(t)}`);
      }
    }
  }
  return trials;
}

/** A latency run in a round's line: `p50 0.25 ms, p99 1.10 ms, max 3.20 ms at 9,990 msg/s`. */
export function latencyDetail(latency: Summary | undefined, publishedPerSec: number): string {
  return `p50 ${fixed(latency?.p50 ?? NaN)} ms, p99 ${fixed(latency?.p99 ?? NaN)} ms, max ${fixed(latency?.max ?? NaN)} ms at ${int(publishedPerSec)} msg/s`;
}
