// Assembles a running broker: bus, store, feed, service and the operator endpoints, on
// Redis or (embedded mode) in memory, and takes it all down again in order.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createBus, type TickBus } from '../bus/tick-bus.ts';
import { resolveRedisConfig } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { OpsServer, type HealthReport } from '../ops/ops-server.ts';
import { cleanUpWithin } from '../core/background.ts';
import { HeartbeatPublisher } from '../ops/heartbeat.ts';
import { BrokerService, type BrokerServiceOptions } from './broker-service.ts';
import { MemoryBrokerStore, RedisBrokerStore, type BrokerStore } from './broker-store.ts';
import type { MarketDataFeed } from './feeds/feed.ts';

export interface BrokerRuntimeOptions extends Omit<BrokerServiceOptions, 'bus' | 'store' | 'feed' | 'registry' | 'logger'> {
  /** Redis URL, or undefined for the in-memory transport. */
  redisUrl: string | undefined;
  feed: MarketDataFeed;
  logger: Logger;
  /** Port of /health and /metrics; undefined for none, 0 for any free port. */
  opsPort?: number;
  opsHost?: string;
  sender?: string;
  /** Heartbeat interval on tickbus.health. @default 5000 */
  heartbeatMs?: number;
  /**
   * With Redis: this broker's name among the brokers sharing the tickers, and how long a
   * dead broker's tickers wait before moving (its lease). @default a unique name, 3000 ms
   */
  memberId?: string;
  leaseMs?: number;
  /** How long start-up waits for Redis. @default the bus's (5000 ms) */
  connectTimeoutMs?: number;
}

export interface BrokerRuntime {
  readonly service: BrokerService;
  readonly bus: TickBus;
  readonly registry: Registry;
  /** Where /health and /metrics answer, when enabled. */
  readonly opsUrl: string | undefined;
  readonly ops: OpsServer | undefined;
  /** Leases and the last-value cache (a gateway in the same process reads snapshots here). */
  readonly store: BrokerStore;
  stop(): Promise<void>;
}

export async function startBrokerRuntime(options: BrokerRuntimeOptions): Promise<BrokerRuntime> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const bus = createBus({
    transport: options.redisUrl ? 'redis' : 'memory',
    redis: options.redisUrl ? { url: options.redisUrl } : undefined,
    sender: options.sender ?? 'broker_service',
    metrics: registry,
    logger: options.logger,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
  });
  let store: BrokerStore | undefined;
  let ops: OpsServer | undefined;
  let service: BrokerService | undefined;
  let heartbeat: HeartbeatPublisher | undefined;
  try {
    // The port first: a port that is taken fails the start before anything else has begun
    // (no connection, no feed, no timer to take down again).
    let opsUrl: string | undefined;
    if (options.opsPort !== undefined) {
      const starting = (): HealthReport => ({ status: 'down', service: 'broker', starting: true });
      ops = new OpsServer({ port: options.opsPort, host: options.opsHost, registry, health: () => service?.health() ?? starting(), logger: options.logger, name: 'broker' });
      opsUrl = (await ops.listen()).url;
    }
    await bus.connect();
    store = options.redisUrl ? await RedisBrokerStore.connect(resolveRedisConfig({ url: options.redisUrl }), options.connectTimeoutMs) : new MemoryBrokerStore();
    const group = store instanceof RedisBrokerStore ? { redis: store.redis, memberId: options.memberId, leaseMs: options.leaseMs } : undefined;
    const started = new BrokerService({ ...options, bus, store, registry, group });
    service = started;
    await started.start();
    heartbeat = new HeartbeatPublisher({
      bus,
      service: 'broker',
      intervalMs: options.heartbeatMs,
      health: () => started.health(),
      counters: () => started.counters(),
      store: store instanceof RedisBrokerStore ? store.redis : undefined,
      logger: options.logger,
    });
    heartbeat.start();
    const stopStore = store;
    const stopOps = ops;
    const beat = heartbeat;
    return {
      service: started,
      bus,
      registry,
      opsUrl,
      ops,
      store,
      async stop() {
        await beat.stop();
        await started.stop();
        await stopOps?.close();
        await bus.close();
        await stopStore.close();
      },
    };
  } catch (error) {
    // Take down everything that did start, within a bound: a Redis that is away must not
    // keep a failed start-up running (its clients give up once closed).
    const [openBeat, openService, openOps, openStore] = [heartbeat, service, ops, store];
    await cleanUpWithin([() => openBeat?.stop(), () => openService?.stop(), () => openOps?.close(), () => bus.close(), () => openStore?.close()]);
    throw error;
  }
}
