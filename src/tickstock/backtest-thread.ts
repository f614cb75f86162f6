// The backtest worker's thread: loads the job's bars and runs the backtest off the worker's
// event loop, which must stay free while a job runs (keep-alives every claimIdleMs / 3, the
// cancel command, progress). It posts progress as it goes, then the result or the error.
// Started by backtest-worker.ts with the job in workerData; ended by it on cancellation.
import { parentPort, workerData } from 'node:worker_threads';
import { runBacktest } from '../patterns/backtest.ts';
import { replayHistory, simulatedHistory } from './history.ts';
import type { ThreadReply, ThreadRequest } from './backtest-worker.ts';

const post = (reply: ThreadReply): void => parentPort?.postMessage(reply);

try {
  const { job, replay, seed, maxBarsPerSymbol } = workerData as ThreadRequest;
  const limits = maxBarsPerSymbol === undefined ? {} : { maxBarsPerSymbol };
  const history = replay === undefined ? simulatedHistory(job, { ...limits, ...(seed === undefined ? {} : { seed }) }) : replayHistory(replay, job, limits);
  const bars = Object.values(history.bars).reduce((n, b) => n + b.length, 0);
  post({ type: 'loaded', bars, source: history.source });
  const result = runBacktest({ job, bars: history.bars, timeframe: history.timeframe, onProgress: (fraction) => post({ type: 'progress', fraction }) });
  post({ type: 'done', result: { ...result, history: history.source } });
} catch (error) {
  post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
}
