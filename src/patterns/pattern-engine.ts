// The reference pattern library as one pure object (seed 002's TickStockPL): ticks in,
// messages to publish out. A tick that closes bars runs each closed bar through the
// indicators and the candlestick detectors, and returns their messages in the seeds'
// formats; flush(now) does the same for bars whose bucket ended with no tick to close them,
// and health(now) reports on tickstock:streaming:health. No Redis, no timers, no clock: the
// service that owns it subscribes to tickstock:market:ticks, calls flush and health on its
// own timer, and publishes what comes back.
import { BarAggregator, tickTimeMs, type Bar, type BarStats, type Tick, type TickRejection } from './bars.ts';
import { PATTERNS, detectCandlesticks, historyNeeded, type CandlestickOptions, type PatternName } from './candlesticks.ts';
import { IndicatorBook, type IndicatorOptions } from './indicators.ts';
import { DETECTED_MIN_PERCENT, healthMessage, indicatorMessage, patternMessages, type HealthOutgoing, type HealthSnapshot, type Outgoing } from './messages.ts';

export interface PatternEngineOptions {
  /** Bar lengths in seconds. @default [60] */
  timeframes?: readonly number[];
  /** @default 10_000 */
  maxSymbols?: number;
  indicators?: IndicatorOptions;
  candlesticks?: CandlestickOptions;
  /** The patterns to look for. @default all of PATTERNS */
  patterns?: readonly PatternName[];
  /** @default 80 (seed 002) */
  detectedMinPercent?: number;
  /** Uptime counts from here (epoch ms). @default the first tick's time */
  startedAt?: number;
  /** Status "idle" when no tick was taken for this long. @default 60_000 */
  idleAfterMs?: number;
  /** Status "degraded" when more than this share of the ticks since the last health report was refused. @default 0.05 */
  degradedShare?: number;
}

export interface EngineStats extends BarStats {
  patternsDetected: number;
  indicatorsCalculated: number;
  barsProcessed: number;
}

export class PatternEngine {
  readonly #bars: BarAggregator;
  readonly #indicators: IndicatorBook;
  readonly #candles: CandlestickOptions;
  readonly #patterns: ReadonlySet<PatternName>;
  readonly #detectedMin: number;
  readonly #idleAfter: number;
  readonly #degradedShare: number;
  readonly #keep: number;
  readonly #maxHistories: number;
  /** The last few closed bars per series, for the detectors that look back; least recently used first. */
  readonly #history = new Map<string, Bar[]>();
  #startedAt: number | undefined;
  #lastTickAt: number | undefined;
  #lastRejection: TickRejection | undefined;
  #patternsDetected = 0;
  #indicatorsCalculated = 0;
  #barsProcessed = 0;
  /** Tick counts at the last health report, to judge the refusals since. */
  #lastReport = { taken: 0, refused: 0, full: 0 };

  constructor(options: PatternEngineOptions = {}) {
    this.#bars = new BarAggregator({ timeframes: options.timeframes ?? [60], ...(options.maxSymbols === undefined ? {} : { maxSymbols: options.maxSymbols }) });
    this.#maxHistories = (options.maxSymbols ?? 10_000) * this.#bars.timeframes.length;
    this.#indicators = new IndicatorBook({ maxSeries: this.#maxHistories, ...options.indicators });
    this.#candles = options.candlesticks ?? {};
    this.#keep = historyNeeded(this.#candles);
    this.#patterns = new Set(options.patterns ?? PATTERNS);
    this.#detectedMin = options.detectedMinPercent ?? DETECTED_MIN_PERCENT;
    this.#startedAt = options.startedAt;
    this.#idleAfter = options.idleAfterMs ?? 60_000;
    this.#degradedShare = options.degradedShare ?? 0.05;
  }

  get timeframes(): readonly number[] {
    return this.#bars.timeframes;
  }

  /** Why the last tick given to onTick was merged into no bar, or undefined if it was merged. */
  get lastRejection(): TickRejection | undefined {
    return this.#lastRejection;
  }

  /** Takes one tick; returns the messages of the bars it closed (none for most ticks). */
  onTick(tick: Tick): Outgoing[] {
    const outcome = this.#bars.onTick(tick);
    this.#lastRejection = outcome.rejected;
    const at = tickTimeMs(tick.timestamp);
    if (outcome.rejected === undefined && at !== undefined) {
      this.#startedAt ??= at;
      this.#lastTickAt = Math.max(at, this.#lastTickAt ?? at);
    }
    return this.#process(outcome.closed);
  }

  /** Closes the bars whose bucket ended by `nowMs` and returns their messages. */
  flush(nowMs: number): Outgoing[] {
    return this.#process(this.#bars.flush(nowMs));
  }

  /** Runs one closed bar (from elsewhere: a replay, a backfill) through the indicators and detectors. */
  onBar(bar: Bar): Outgoing[] {
    return this.#process([bar]);
  }

  /** The health message for `nowMs`; starts a new window for the "degraded" judgement. */
  health(nowMs: number): HealthOutgoing {
    return healthMessage(this.snapshot(nowMs, true));
  }

  /** What health() reports; `report` moves the window on (health does, a peek need not). */
  snapshot(nowMs: number, report = false): HealthSnapshot {
    const stats = this.#bars.stats();
    const refused = Object.values(stats.rejected).reduce((s, n) => s + n, 0);
    const since = { taken: stats.accepted - this.#lastReport.taken, refused: refused - this.#lastReport.refused, full: stats.rejected.symbols_full - this.#lastReport.full };
    if (report) this.#lastReport = { taken: stats.accepted, refused, full: stats.rejected.symbols_full };
    const seen = since.taken + since.refused;
    let status = 'healthy';
    if (this.#lastTickAt === undefined || nowMs - this.#lastTickAt > this.#idleAfter) status = 'idle';
    if (since.full > 0 || (seen > 0 && since.refused / seen > this.#degradedShare)) status = 'degraded';
    const start = this.#startedAt ?? nowMs;
    return {
      status,
      uptimeSeconds: Math.max(0, nowMs - start) / 1000,
      symbolsProcessed: this.#barsProcessed,
      patternsDetected: this.#patternsDetected,
      indicatorsCalculated: this.#indicatorsCalculated,
      at: nowMs,
    };
  }

  stats(): EngineStats {
    return { ...this.#bars.stats(), patternsDetected: this.#patternsDetected, indicatorsCalculated: this.#indicatorsCalculated, barsProcessed: this.#barsProcessed };
  }

  #process(closed: readonly Bar[]): Outgoing[] {
    const out: Outgoing[] = [];
    for (const bar of closed) {
      this.#barsProcessed += 1;
      for (const value of this.#indicators.onBar(bar)) {
        this.#indicatorsCalculated += 1;
        out.push(indicatorMessage(value));
      }
      const history = this.#remember(bar);
      for (const found of detectCandlesticks(history, this.#candles)) {
        if (!this.#patterns.has(found.pattern)) continue;
        this.#patternsDetected += 1;
        out.push(...patternMessages({ ...found, bar }, this.#detectedMin));
      }
    }
    return out;
  }

  #remember(bar: Bar): Bar[] {
    const key = `${bar.symbol}\u0000${bar.timeframe}`;
    const history = this.#history.get(key) ?? [];
    this.#history.delete(key);
    if (this.#history.size >= this.#maxHistories) {
      const oldest = this.#history.keys().next();
      if (oldest.done !== true) this.#history.delete(oldest.value);
    }
    history.push(bar);
    if (history.length > this.#keep) history.splice(0, history.length - this.#keep);
    this.#history.set(key, history);
    return history;
  }
}
