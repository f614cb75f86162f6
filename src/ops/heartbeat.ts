// The heartbeat every tickbus service publishes on `tickbus.health` at a fixed interval,
// and keeps (when on Redis) in one hash so that `tickbus health` can show every service at
// once instead of waiting for the next beat. A beat lives HEARTBEAT_TTL_INTERVALS intervals:
// a service that stops removes its own, and one that died is dropped by the next beat of
// any other (each beat also prunes the expired ones) or, when none is left, with the keys'
// own expiry. Without that the hash listed every service that ever ran, for good.
import { hostname } from 'node:os';
import type { CommandLink } from '../transports/commands.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import type { Logger } from '../core/logger.ts';
import { ServiceHealth, type Heartbeat } from '../catalogs/system.ts';
import type { HealthReport } from './ops-server.ts';
import { HEARTBEAT_EXPIRY_KEY, HEARTBEATS_KEY } from '../core/keys.ts';

// Named with the other defaults, where the CLI's help reads them without loading this module.
import { HEARTBEAT_DEFAULTS, HEARTBEAT_TTL_INTERVALS } from '../core/defaults.ts';
export { HEARTBEAT_DEFAULTS, HEARTBEAT_TTL_INTERVALS };

// Stores this beat and its expiry, drops the beats past theirs, and keeps both keys alive at
// least as long as this beat (never shortening a longer-lived service's).
const BEAT = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if #dead > 0 then
  redis.call('HDEL', KEYS[1], unpack(dead))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
end
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
return #dead`;

const LEAVE = `redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])`;

export interface HeartbeatOptions {
  bus: TickBus;
  service: string;
  /** @default host:pid */
  instance?: string;
  /** @default HEARTBEAT_DEFAULTS.intervalMs (5000) */
  intervalMs?: number;
  health: () => HealthReport | Promise<HealthReport>;
  counters?: () => Record<string, number> | Promise<Record<string, number>>;
  /** A Redis client for the heartbeat hash; none in memory mode. */
  store?: Pick<CommandLink, 'send'>;
  logger: Logger;
}

export class HeartbeatPublisher {
  readonly instance: string;
  readonly intervalMs: number;
  readonly #options: HeartbeatOptions;
  readonly #started = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The beat on its way, for stop() to wait for (it would put the beat back after its removal). */
  #beating: Promise<void> = Promise.resolve();

  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.instance = options.instance ?? `${hostname()}:${process.pid}`;
    this.intervalMs = options.intervalMs ?? HEARTBEAT_DEFAULTS.intervalMs;
  }

  start(): void {
    this.#options.bus.context.metrics.heartbeatInterval.labels(this.#options.service).set(this.intervalMs / 1000);
    // beat() reports its own failures; run() is the guard that no rejection escapes a timer.
    const background = this.#options.bus.context.background;
    background.run('heartbeat', () => this.beat());
    this.#timer = setInterval(() => background.run('heartbeat', () => this.beat()), this.intervalMs);
    this.#timer.unref();
  }

  /** Stops beating and removes this instance's beat: a service that left is not listed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#beating;
    try {
      await this.#options.store?.send(['EVAL', LEAVE, '2', HEARTBEATS_KEY, HEARTBEAT_EXPIRY_KEY, this.instance], HEARTBEATS_KEY);
    } catch (error) {
      // It expires by itself within HEARTBEAT_TTL_INTERVALS intervals.
      this.#options.logger.warn({ err: error }, 'heartbeat not removed; it expires by itself');
    }
  }

  /** Publishes one heartbeat now. Failures are logged: a missed beat is what readers watch for. */
  beat(): Promise<void> {
    if (this.#stopped) return this.#beating;
    this.#beating = this.#beat();
    return this.#beating;
  }

  async #beat(): Promise<void> {
    try {
      const report = await this.#options.health();
      const { status, ...details } = report;
      const beat: Heartbeat = {
        service: this.#options.service,
        instance: this.instance,
        status,
        uptime_seconds: Math.round((Date.now() - this.#started) / 1000),
        interval_ms: this.intervalMs,
        counters: (await this.#options.counters?.()) ?? {},
        details,
        timestamp: new Date().toISOString(),
      };
      await this.#options.bus.publish(ServiceHealth, beat);
      const now = Date.now();
      const ttlMs = HEARTBEAT_TTL_INTERVALS * this.intervalMs;
      await this.#options.store?.send(['EVAL', BEAT, '2', HEARTBEATS_KEY, HEARTBEAT_EXPIRY_KEY, this.instance, JSON.stringify(beat), String(now), String(now + ttlMs), String(ttlMs)], HEARTBEATS_KEY);
      this.#options.bus.context.metrics.heartbeatSent.labels(this.#options.service).set(Date.now() / 1000);
    } catch (error) {
      this.#options.bus.context.background.failed('heartbeat', error);
    }
  }
}
