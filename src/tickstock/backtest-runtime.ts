// The backtest side of TickStock as one unit: a job bridge (seed 003's published jobs into
// the durable queue) and a reference backtest worker (a member of backtest-workers), on one
// bus and one job store, from a config; close() stops both. What `tickbus jobs worker` runs,
// and what `tickbus up` can start beside the broker and the gateway.
import { createBus, type TickBus } from '../bus/tick-bus.ts';
import { resolveRedisConfig, type RedisOptions } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { JobStore } from '../jobs/job-store.ts';
import { JobWorker } from '../jobs/job-worker.ts';
import { createBacktestHandler } from './backtest-worker.ts';
import { JobBridge } from './job-bridge.ts';

export interface BacktestRuntimeConfig {
  /** Redis; @default $REDIS_URL, else redis://127.0.0.1:6379 */
  redis?: RedisOptions;
  logger: Logger;
  /** The worker's name in the group (and the bridge's, with a `bridge-` prefix). @default <hostname>-<pid> */
  name?: string;
  /** Start the bridge. @default true */
  bridge?: boolean;
  /** Start a worker. @default true */
  worker?: boolean;
  /** Bars from this replay file instead of the simulated market. */
  replay?: string;
  /** The simulated market's seed. @default 42 */
  seed?: number;
  maxBarsPerSymbol?: number;
  /** JobWorker's take-over time. @default JOB_DEFAULTS.claimIdleMs */
  claimIdleMs?: number;
  connectTimeoutMs?: number;
}

export interface BacktestRuntime {
  readonly bus: TickBus;
  readonly bridge: JobBridge | undefined;
  readonly worker: JobWorker | undefined;
  close(): Promise<void>;
}

export async function startBacktestRuntime(config: BacktestRuntimeConfig): Promise<BacktestRuntime> {
  const { logger } = config;
  const bus = createBus({ redis: config.redis, logger, sender: config.name ?? 'tickstock-backtest', ...(config.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.connectTimeoutMs }) });
  let store: JobStore | undefined;
  let bridge: JobBridge | undefined;
  let worker: JobWorker | undefined;
  const close = async (): Promise<void> => {
    await bridge?.close().catch((error: unknown) => logger.warn({ err: error }, 'backtest runtime: bridge close failed'));
    await worker?.close().catch((error: unknown) => logger.warn({ err: error }, 'backtest runtime: worker close failed'));
    await bus.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
  };
  try {
    await bus.connect();
    store = await JobStore.connect(resolveRedisConfig(config.redis), `tickbus:jobs:${config.name ?? 'backtest'}`, config.connectTimeoutMs);
    if (config.worker !== false) {
      const handler = createBacktestHandler({ logger, ...(config.replay === undefined ? {} : { replay: config.replay }), ...(config.seed === undefined ? {} : { seed: config.seed }), ...(config.maxBarsPerSymbol === undefined ? {} : { maxBarsPerSymbol: config.maxBarsPerSymbol }) });
      worker = await new JobWorker({ bus, store, logger, handler, ...(config.name === undefined ? {} : { name: config.name }), ...(config.claimIdleMs === undefined ? {} : { claimIdleMs: config.claimIdleMs }) }).start();
    }
    if (config.bridge !== false) bridge = await new JobBridge({ bus, store, logger, ...(config.name === undefined ? {} : { name: `bridge-${config.name}` }) }).start();
  } catch (error) {
    await close();
    throw error;
  }
  return { bus, bridge, worker, close };
}
