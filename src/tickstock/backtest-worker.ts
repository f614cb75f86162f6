// The reference backtest worker (seed 003's TickStockPL side): a JobWorker handler that
// loads the job's historical bars (a replay file, or the simulated market's seeded history:
// history.ts) and runs the pattern library's backtest (patterns/backtest.ts) over them. The
// result (trades, P&L and hit rate overall, per pattern and per symbol) is the job's
// `results` on tickstock.events.backtesting.results.
//
// runBacktest is synchronous and a large job takes seconds to minutes: on the worker's own
// thread it would stop the keep-alives (another worker would take the job over and run it
// twice), the cancel command and the progress reports. So it runs in a worker thread
// (backtest-thread.ts); progress comes back as messages and goes out through the job
// machinery, and a cancellation (or a worker shutting down) ends the thread at once.
import { Worker } from 'node:worker_threads';
import type { JobContext, JobHandler, BacktestJob } from '../jobs/job-worker.ts';
import type { Logger } from '../core/logger.ts';
import type { BacktestResult } from '../patterns/backtest.ts';

export interface BacktestHandlerOptions {
  /** Bars from this replay file's trades instead of the simulated market. */
  replay?: string;
  /** The simulated market's seed. @default 42 (the sim feed's) */
  seed?: number;
  /** @default HISTORY_DEFAULTS.maxBarsPerSymbol (25,000) */
  maxBarsPerSymbol?: number;
  logger?: Logger;
}

/** How the job's progress is split: loading the bars, then the backtest. */
export const BACKTEST_WORKER_DEFAULTS = Object.freeze({
  /** Progress once the bars are loaded. */
  loaded: 0.05,
  /** The backtest's own progress fills the span from `loaded` up to this. */
  backtested: 0.99,
});

/** What the thread is given (workerData). */
export interface ThreadRequest {
  job: BacktestJob;
  replay: string | undefined;
  seed: number | undefined;
  maxBarsPerSymbol: number | undefined;
}

/** What the thread posts back. */
export type ThreadReply =
  | { type: 'loaded'; bars: number; source: Record<string, unknown> }
  | { type: 'progress'; fraction: number }
  | { type: 'done'; result: BacktestResult & { history: Record<string, unknown> } }
  | { type: 'error'; message: string };

// From source (tsx) the thread is a .ts file, which a worker thread cannot load by itself:
// it registers tsx first (a dev dependency, present whenever the sources run). Built, it is
// the compiled .js beside this file.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const THREAD = new URL(FROM_SOURCE ? './backtest-thread.ts' : './backtest-thread.js', import.meta.url);

function startThread(request: ThreadRequest): Worker {
  if (!FROM_SOURCE) return new Worker(THREAD, { workerData: request });
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(THREAD.href)}); })`, { eval: true, workerData: request });
}

/**
 * Sends progress one report at a time, in order, never going back; a report that comes while
 * one is on its way replaces any other waiting (the newest is what matters).
 */
function progressReporter(send: JobContext['progress'], logger: Logger | undefined) {
  let last = -1;
  let waiting: { fraction: number; message: string | undefined } | undefined;
  let pump: Promise<void> | undefined;
  const run = async (): Promise<void> => {
    while (waiting !== undefined) {
      const next = waiting;
      waiting = undefined;
      await send(next.fraction, next.message).catch((error: unknown) => logger?.warn({ err: error }, 'backtest worker: progress not reported'));
    }
    pump = undefined;
  };
  return {
    report(fraction: number, message?: string): void {
      if (fraction <= last) return;
      last = fraction;
      waiting = { fraction, message };
      pump ??= run();
    },
    /** Resolves once every report is out: before the result, so no progress comes after it. */
    drain: (): Promise<void> => pump ?? Promise.resolve(),
  };
}

/** A JobWorker handler that backtests the job's patterns over its symbols and dates. */
export function createBacktestHandler(options: BacktestHandlerOptions = {}): JobHandler {
  return async ({ job, signal, progress }) => {
    signal.throwIfAborted();
    const reporter = progressReporter(progress, options.logger);
    const { loaded, backtested } = BACKTEST_WORKER_DEFAULTS;
    const thread = startThread({ job, replay: options.replay, seed: options.seed, maxBarsPerSymbol: options.maxBarsPerSymbol });
    try {
      const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const onAbort = (): void => {
          reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
          thread.terminate().catch(() => undefined);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const settle = (): void => signal.removeEventListener('abort', onAbort);
        thread.on('message', (reply: ThreadReply) => {
          if (reply.type === 'loaded') reporter.report(loaded, `${reply.bars} bars loaded (${String(reply.source.source)}, ${String(reply.source.bar_minutes)}-minute bars)`);
          else if (reply.type === 'progress') reporter.report(loaded + (backtested - loaded) * reply.fraction, 'backtesting');
          else {
            settle();
            if (reply.type === 'done') resolve(reply.result);
            else reject(new Error(reply.message));
          }
        });
        thread.once('error', (error) => {
          settle();
          reject(error);
        });
        thread.once('exit', (code) => {
          settle();
          reject(signal.aborted ? (signal.reason instanceof Error ? signal.reason : new Error('cancelled')) : new Error(`the backtest thread exited (${code}) without a result`));
        });
      });
      await reporter.drain();
      return result;
    } finally {
      await reporter.drain();
      await thread.terminate().catch(() => undefined);
    }
  };
}
