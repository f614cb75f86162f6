// The reference pattern library as a service (seed 002's TickStockPL): raw ticks in from
// tickstock:market:ticks, PatternEngine in the middle, and what it returns out with one
// publishBatch per closing tick: tickstock:patterns:streaming, tickstock:patterns:detected
// (80 % and above), tickstock:indicators:streaming and tickstock.events.patterns, all bare
// JSON in the seeds' field names. A timer closes bars whose time is over without waiting
// for the next tick of their symbol, and another publishes tickstock:streaming:health.
// A bad tick (schema, JSON, a time that is no time) is counted and logged in one throttled
// line; it never stops the service.
import type { Registry } from 'prom-client';
import type { TickBus } from '../bus/tick-bus.ts';
import type { BusError } from '../core/errors.ts';
import { ErrorCode } from '../core/errors.ts';
import { ErrorEventLog, type Logger } from '../core/logger.ts';
import { LogThrottle } from '../core/log-throttle.ts';
import { errorCode, errorText } from '../core/background.ts';
import { MarketTicks, PatternsStreaming, IndicatorsStreaming, type MarketTickSchema } from '../catalogs/tickstock.ts';
import { PatternEngine, type PatternEngineOptions } from '../patterns/pattern-engine.ts';
import type { Outgoing } from '../patterns/messages.ts';
import type { HealthReport } from '../ops/ops-server.ts';
import type { z } from 'zod';
import { PatternMetrics } from './pattern-metrics.ts';
import { PATTERN_DEFAULTS } from './pattern-defaults.ts';

type MarketTick = z.infer<typeof MarketTickSchema>;

export interface PatternServiceOptions {
  bus: TickBus;
  registry: Registry;
  logger: Logger;
  /** Bar lengths in whole seconds. @default PATTERN_DEFAULTS.timeframes ([5, 60]) */
  timeframes?: readonly number[];
  /** Interval of tickstock:streaming:health; 0 for none. @default 5000 */
  healthEveryMs?: number;
  /** Interval of the flush that closes bars whose time is over. @default 1000 */
  flushEveryMs?: number;
  /** The rest of the engine's options (indicators, patterns, the 80 % rule, …). */
  engine?: Omit<PatternEngineOptions, 'timeframes'>;
  /**
   * The clock of the flush and the health report (epoch ms). The engine itself is timed by
   * the ticks; a replay of old ticks passes the replay's clock here. @default Date.now
   */
  now?: () => number;
}

export class PatternService {
  readonly engine: PatternEngine;
  readonly metrics: PatternMetrics;
  readonly #bus: TickBus;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #healthEveryMs: number;
  readonly #flushEveryMs: number;
  readonly #rejectLog = new LogThrottle(PATTERN_DEFAULTS.rejectLogsPerSecond);
  readonly #publishLog = new LogThrottle(1);
  readonly #busErrors: ErrorEventLog;
  /** Publications on their way, for stop() to wait for. */
  readonly #pending = new Set<Promise<void>>();
  #flushTimer: NodeJS.Timeout | undefined;
  #healthTimer: NodeJS.Timeout | undefined;
  #started = 0;
  #stopping = false;
  readonly #onBusError = (error: BusError): void => this.#busError(error);

  constructor(options: PatternServiceOptions) {
    this.#bus = options.bus;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#healthEveryMs = options.healthEveryMs ?? PATTERN_DEFAULTS.healthEveryMs;
    this.#flushEveryMs = options.flushEveryMs ?? PATTERN_DEFAULTS.flushEveryMs;
    this.engine = new PatternEngine({ ...options.engine, timeframes: options.timeframes ?? PATTERN_DEFAULTS.timeframes });
    this.metrics = new PatternMetrics(options.registry, () => this.engine.stats());
    this.#busErrors = new ErrorEventLog(options.logger, 'bus error');
  }

  get timeframes(): readonly number[] {
    return this.engine.timeframes;
  }

  /** Subscribes to the ticks, starts the flush and health timers, and says it is up (a first health message). */
  async start(): Promise<void> {
    this.#started = Date.now();
    // Before subscribing: a bad tick in the first burst is counted too.
    this.#bus.on('error', this.#onBusError);
    await this.#bus.subscribe(MarketTicks, (tick) => this.#onTick(tick));
    const background = this.#bus.context.background;
    this.#flushTimer = setInterval(() => background.run('pattern_flush', () => this.flush()), this.#flushEveryMs);
    if (this.#healthEveryMs > 0) {
      this.#healthTimer = setInterval(() => background.run('pattern_health', () => this.publishHealth()), this.#healthEveryMs);
      await this.publishHealth();
    }
    this.#log.info({ timeframes: this.timeframes, healthEveryMs: this.#healthEveryMs }, 'pattern library started');
  }

  /** Stops taking ticks and the timers, and publishes what is still on its way. Open bars are not closed: their time is not over. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#flushTimer);
    clearInterval(this.#healthTimer);
    await this.#bus.unsubscribe(MarketTicks).catch((error: unknown) => this.#log.warn({ code: errorCode(error), error: errorText(error) }, 'could not unsubscribe from the ticks'));
    await Promise.all(this.#pending);
    this.#bus.off('error', this.#onBusError);
    this.#log.info('pattern library stopped');
  }

  /** Closes the bars whose time is over by the clock, and publishes their messages. */
  flush(): Promise<void> {
    return this.#publish(this.engine.flush(this.#now()));
  }

  /** Publishes one health message on tickstock:streaming:health now. */
  publishHealth(): Promise<void> {
    return this.#publish([this.engine.health(this.#now())]);
  }

  /** The operator's /health: Redis reachable, and what the engine reports of itself. */
  health(): HealthReport {
    const connected = this.#bus.publisher.isConnected && this.#bus.subscriber.isConnected;
    const engine = this.engine.snapshot(this.#now());
    const stats = this.engine.stats();
    return {
      status: connected ? 'ok' : 'degraded',
      service: 'patterns',
      uptime_seconds: Math.round((Date.now() - this.#started) / 1000),
      redis: { connected, target: this.#bus.context.transport.target },
      engine: engine.status,
      timeframes: [...this.timeframes],
      symbols: stats.symbols,
      ticks_accepted: stats.accepted,
      bars_closed: stats.barsClosed,
      patterns_detected: stats.patternsDetected,
      indicators_calculated: stats.indicatorsCalculated,
    };
  }

  /** Counters for the heartbeat on tickbus.health. */
  counters(): Record<string, number> {
    const stats = this.engine.stats();
    const rejected = Object.values(stats.rejected).reduce((s, n) => s + n, 0);
    return { ticks_accepted: stats.accepted, ticks_rejected: rejected, bars_closed: stats.barsClosed, patterns_detected: stats.patternsDetected, indicators_calculated: stats.indicatorsCalculated };
  }

  #onTick(tick: MarketTick): void | Promise<void> {
    if (this.#stopping) return;
    this.metrics.ticks.inc();
    const out = this.engine.onTick(tick);
    const refused = this.engine.lastRejection;
    if (refused !== undefined) this.#rejected(refused, tick.symbol);
    // Most ticks close nothing. A closing one's messages go out without making the tick lane
    // wait: all symbols' bars close on the same boundary, and waiting for each publication in
    // turn queued the 100th symbol's pattern behind 99 round trips (p99 in the hundreds of ms,
    // bench/tickstock.ts). The connection keeps them in order. Only with many publications in
    // flight (Redis slow or away) does the lane wait, so the ticks slow down with Redis.
    if (out.length === 0) return;
    const sending = this.#publish(out);
    if (this.#pending.size > PATTERN_DEFAULTS.maxPublishesInFlight) return sending;
  }

  /** A tick the bus refused (schema, JSON, size) on the tick channel; other bus errors are only logged. */
  #busError(error: BusError): void {
    if (error.channel === MarketTicks.template) {
      this.metrics.rejects.labels(error.code ?? ErrorCode.Validation).inc();
      this.#rejected(error.code ?? ErrorCode.Validation, undefined, error);
      return;
    }
    this.#busErrors.log(error);
  }

  /** One compact line, throttled: a flood of bad ticks must not flood the log. */
  #rejected(reason: string, symbol: string | undefined, error?: BusError): void {
    const suppressed = this.#rejectLog.take();
    if (suppressed < 0) return;
    this.#log.warn({ reason, ...(symbol === undefined ? {} : { symbol }), ...(error ? { error: errorText(error).slice(0, 200) } : {}), ...(suppressed > 0 ? { suppressed } : {}) }, 'tick rejected');
  }

  /** Publishes in one round trip and counts; never rejects (a failure is counted and logged). */
  #publish(out: Outgoing[]): Promise<void> {
    if (out.length === 0) return Promise.resolve();
    const sending = this.#bus.publisher.publishBatch(out).then(
      () => {
        for (const m of out) {
          this.metrics.published.labels(m.channel.template).inc();
          if (m.channel === PatternsStreaming) this.metrics.patterns.labels((m.data as { pattern_name: string }).pattern_name).inc();
          else if (m.channel === IndicatorsStreaming) this.metrics.indicators.labels((m.data as { indicator_name: string }).indicator_name).inc();
        }
      },
      (error: unknown) => {
        this.metrics.publishFailures.labels(errorCode(error)).inc(out.length);
        const suppressed = this.#publishLog.take();
        if (suppressed >= 0) this.#log.warn({ code: errorCode(error), error: errorText(error), messages: out.length, ...(suppressed > 0 ? { suppressed } : {}) }, 'pattern messages not published');
      },
    );
    this.#pending.add(sending);
    return sending.finally(() => this.#pending.delete(sending));
  }
}
