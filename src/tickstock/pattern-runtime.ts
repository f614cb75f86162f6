// Assembles a running reference pattern library: its bus (or one given), the service, the
// heartbeat and the operator endpoints, and takes it all down again in order. Shared by
// `tickbus patterns` and, later, `tickbus up`: a caller that already has a bus (the one
// process of `up`, or an in-memory bus) passes it and keeps owning it.
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createBus, type TickBus } from '../bus/tick-bus.ts';
import type { Logger } from '../core/logger.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { withinMs } from '../core/background.ts';
import { resolveRedisConfig } from '../core/config.ts';
import { OpsServer, type HealthReport } from '../ops/ops-server.ts';
import { HeartbeatPublisher } from '../ops/heartbeat.ts';
import { connectCommands, type CommandLink } from '../transports/commands.ts';
import { PatternService, type PatternServiceOptions } from './pattern-service.ts';
import { PATTERN_DEFAULTS } from './pattern-defaults.ts';

export interface PatternRuntimeOptions extends Omit<PatternServiceOptions, 'bus' | 'registry' | 'logger'> {
  logger: Logger;
  /**
   * A bus to run on (it stays the caller's: stop() leaves it open). Without one the runtime
   * makes its own from `redisUrl`.
   */
  bus?: TickBus;
  /** Redis URL of the runtime's own bus; undefined for the in-memory transport. Ignored with `bus`. */
  redisUrl?: string | undefined;
  /** A registry to add the metrics to (`up` shares one); default one of its own with Node's metrics. */
  registry?: Registry;
  /** Port of /health and /metrics; undefined for none, 0 for any free port. */
  opsPort?: number;
  opsHost?: string;
  /** Heartbeat interval on tickbus.health; 0 for none. @default 5000 */
  heartbeatMs?: number;
  /**
   * With `bus`: a command link (the caller's) for the heartbeat hash `tickbus health` reads.
   * Without `bus`, on Redis, the runtime opens its own.
   */
  commands?: Pick<CommandLink, 'send'>;
  /** How long start-up waits for Redis. @default the bus's (5000 ms) */
  connectTimeoutMs?: number;
}

export interface PatternRuntime {
  readonly service: PatternService;
  readonly bus: TickBus;
  readonly registry: Registry;
  /** Where /health and /metrics answer, when enabled. */
  readonly opsUrl: string | undefined;
  close(): Promise<void>;
}

export async function startPatternRuntime(options: PatternRuntimeOptions): Promise<PatternRuntime> {
  const registry = options.registry ?? new Registry();
  if (options.registry === undefined) collectDefaultMetrics({ register: registry });
  const ownBus = options.bus === undefined;
  const bus =
    options.bus ??
    createBus({
      transport: options.redisUrl ? 'redis' : 'memory',
      redis: options.redisUrl ? { url: options.redisUrl } : undefined,
      sender: PATTERN_DEFAULTS.sender,
      metrics: registry,
      logger: options.logger,
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    });
  let ops: OpsServer | undefined;
  let service: PatternService | undefined;
  let heartbeat: HeartbeatPublisher | undefined;
  let store: CommandLink | undefined;
  const takeDown = async (): Promise<void> => {
    await heartbeat?.stop().catch(() => undefined);
    await service?.stop().catch(() => undefined);
    await ops?.close().catch(() => undefined);
    if (ownBus) await bus.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
  };
  try {
    // The port first: one that is taken fails the start before anything else has begun.
    let opsUrl: string | undefined;
    if (options.opsPort !== undefined) {
      const starting = (): HealthReport => ({ status: 'down', service: 'patterns', starting: true });
      ops = new OpsServer({ port: options.opsPort, host: options.opsHost, registry, health: () => service?.health() ?? starting(), logger: options.logger, name: 'patterns' });
      opsUrl = (await ops.listen()).url;
    }
    await bus.connect();
    const started = new PatternService({ ...options, bus, registry });
    service = started;
    await started.start();
    const heartbeatMs = options.heartbeatMs ?? PATTERN_DEFAULTS.heartbeatMs;
    if (heartbeatMs > 0) {
      // The heartbeat hash (what `tickbus health` lists) needs commands; on memory there is none.
      let link = options.commands;
      if (ownBus && options.redisUrl) {
        link = store = await connectCommands(resolveRedisConfig({ url: options.redisUrl }), { name: 'tickbus:patterns', ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }) });
      }
      heartbeat = new HeartbeatPublisher({ bus, service: 'patterns', intervalMs: heartbeatMs, health: () => started.health(), counters: () => started.counters(), store: link, logger: options.logger });
      heartbeat.start();
    }
    let closing: Promise<void> | undefined;
    return {
      service: started,
      bus,
      registry,
      opsUrl,
      close() {
        closing ??= takeDown();
        return closing;
      },
    };
  } catch (error) {
    // Take down what did start, within a bound: a Redis that is away must not keep a
    // failed start-up running.
    await withinMs(takeDown(), DEFAULTS.startupCleanupMs);
    throw error;
  }
}
