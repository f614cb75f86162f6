// The heartbeat every tickbus service publishes on `tickbus.health` at a fixed interval,
// and keeps (when on Redis) in one hash so that `tickbus health` can show every service at
// once instead of waiting for the next beat.
import { hostname } from 'node:os';
import type { RedisCommands } from '../transports/redis/redis-commands.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import type { Logger } from '../core/logger.ts';
import { ServiceHealth, type Heartbeat } from '../catalogs/system.ts';
import type { HealthReport } from './ops-server.ts';

/** Where the latest beat of every instance is kept: field = instance, value = JSON. */
export const HEARTBEATS_KEY = 'tickbus:{health}:heartbeats';

export interface HeartbeatOptions {
  bus: TickBus;
  service: string;
  /** @default host:pid */
  instance?: string;
  /** @default 5000 */
  intervalMs?: number;
  health: () => HealthReport | Promise<HealthReport>;
  counters?: () => Record<string, number> | Promise<Record<string, number>>;
  /** A Redis client for the heartbeat hash; none in memory mode. */
  store?: Pick<RedisCommands, 'send'>;
  logger: Logger;
}

export class HeartbeatPublisher {
  readonly instance: string;
  readonly intervalMs: number;
  readonly #o: HeartbeatOptions;
  readonly #started = Date.now();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
    this.instance = options.instance ?? `${hostname()}:${process.pid}`;
    this.intervalMs = options.intervalMs ?? 5000;
  }

  start(): void {
    // beat() reports its own failures; run() is the guard that no rejection escapes a timer.
    const background = this.#o.bus.context.background;
    background.run('heartbeat', () => this.beat());
    this.#timer = setInterval(() => background.run('heartbeat', () => this.beat()), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Publishes one heartbeat now. Failures are logged: a missed beat is what readers watch for. */
  async beat(): Promise<void> {
    try {
      const report = await this.#o.health();
      const { status, ...details } = report;
      const beat: Heartbeat = {
        service: this.#o.service,
        instance: this.instance,
        status,
        uptime_seconds: Math.round((Date.now() - this.#started) / 1000),
        interval_ms: this.intervalMs,
        counters: (await this.#o.counters?.()) ?? {},
        details,
        timestamp: new Date().toISOString(),
      };
      await this.#o.bus.publish(ServiceHealth, beat);
      await this.#o.store?.send(['HSET', HEARTBEATS_KEY, this.instance, JSON.stringify(beat)], HEARTBEATS_KEY);
    } catch (error) {
      this.#o.bus.context.background.failed('heartbeat', error);
    }
  }
}
