// What the delivery benchmarks (bench/pubsub.ts, bench/durable.ts) share between the
// parent and its workers. In each run a publisher worker sends price messages over ten
// tickers and a receiving worker (a subscriber, a consumer) counts and times them: as fast
// as a window of publishes in flight allows, or at a fixed rate. Here: the modes and
// phases, the tickers, the options every worker takes and the IPC protocol.
import { choiceOption, intOption, parseCli, positiveOption, type OptionSpec, type OptionValues } from './cli.ts';
import type { Summary } from './stats.ts';

/** throughput: as fast as the window allows; latency: paced at a fixed rate. */
export const MODES = ['throughput', 'latency'] as const;
export type Mode = (typeof MODES)[number];

/** Unmeasured messages first (JIT, connections, buffers), then the measured ones. */
export type Phase = 'warmup' | 'measure';

export const TICKERS = ['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'BRK.B', 'JPM', 'V'] as const;

// ---- worker options ------------------------------------------------------------------

/** What every delivery worker is told; a benchmark may add its own settings. */
export interface DeliveryWorkerConfig<I extends string = string> {
  impl: I;
  mode: Mode;
  url: string;
  warmup: number;
  messages: number;
  rate: number;
  window: number;
  /** Where to write a CPU profile of the measured phase, if anywhere. */
  profile: string | undefined;
}

/**
 * The options every delivery worker declares. Each benchmark declares them itself (in the
 * order its --help lists them, worded for its implementations) and may add more.
 */
type DeliveryWorkerOptions = Record<'impl' | 'mode' | 'url' | 'warmup' | 'messages' | 'profile', OptionSpec> & Record<'rate' | 'window', OptionSpec & { default: string }>;

/** The command line of a worker; `extra` goes before --profile (e.g. { batch: 100 }). */
export function deliveryWorkerArgs(c: DeliveryWorkerConfig, extra: Record<string, number> = {}): string[] {
  return [
    '--impl', c.impl,
    '--mode', c.mode,
    '--url', c.url,
    '--warmup', String(c.warmup),
    '--messages', String(c.messages),
    '--rate', String(c.rate),
    '--window', String(c.window),
    ...Object.entries(extra).flatMap(([name, value]) => [`--${name}`, String(value)]),
    ...(c.profile ? ['--profile', c.profile] : []),
  ];
}

/**
 * Parses the command line of bench/<benchmark>-<role>.ts: the config every delivery
 * worker takes, and the values of all its options (for the ones the benchmark adds).
 */
export function parseDeliveryWorker<S extends DeliveryWorkerOptions, I extends string>(
  benchmark: string,
  role: string,
  options: S,
  impls: readonly I[],
): { config: DeliveryWorkerConfig<I>; values: OptionValues<S> } {
  const values = parseCli(`node --import tsx bench/${benchmark}-${role}.ts [options]`, `The ${role} worker of bench/${benchmark}.ts (started by it).`, options);
  // What DeliveryWorkerOptions makes of these (OptionValues cannot tell for a generic S).
  const v = values as unknown as Record<'impl' | 'mode' | 'url' | 'warmup' | 'messages' | 'profile', string | undefined> & Record<'rate' | 'window', string>;
  if (v.url === undefined || v.impl === undefined || v.mode === undefined || v.warmup === undefined || v.messages === undefined) {
    throw new Error('--impl, --mode, --url, --warmup and --messages are required.');
  }
  const config = {
    impl: choiceOption(v.impl, 'impl', impls),
    mode: choiceOption(v.mode, 'mode', MODES),
    url: v.url,
    warmup: intOption(v.warmup, 'warmup', 0),
    messages: intOption(v.messages, 'messages'),
    rate: positiveOption(v.rate, 'rate'),
    window: intOption(v.window, 'window'),
    profile: v.profile,
  };
  return { config, values };
}

// ---- IPC protocol --------------------------------------------------------------------

export type PublisherCommand = { type: 'run'; phase: Phase };

export type PublisherEvent =
  | { type: 'ready' }
  | {
      type: 'sent';
      phase: Phase;
      count: number;
      /** epochMs just before the first publish and after the last one resolved. */
      startedAt: number;
      endedAt: number;
      /** CPU time (user + system) the phase took, in microseconds. */
      cpuMicros: number;
    };

/** `report`: send the result now, complete or not (the parent gave up waiting). */
export type ReceiverCommand = { type: 'report' };

export type ReceiverEvent =
  /** Subscribed (a consumer: the group exists and it is reading). */
  | { type: 'ready' }
  /** Every warm-up message reached the handler; the measured ones come next. */
  | { type: 'warm' }
  | {
      type: 'result';
      complete: boolean;
      /** Measured messages that reached the handler. */
      count: number;
      /** epochMs when the last measured message reached the handler. */
      lastAt: number;
      /** CPU time from the last warm-up message to the last measured one, in microseconds. */
      cpuMicros: number;
      /** Latency runs: publish-to-handler latency in ms. */
      latency: Summary | undefined;
      /** Bus errors, unexpected messages (and for a consumer, dead letters). */
      errors: number;
      firstError: string | undefined;
    };

export type ReceiverResult = Extract<ReceiverEvent, { type: 'result' }>;
export type PublisherSent = Extract<PublisherEvent, { type: 'sent' }>;
