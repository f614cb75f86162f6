// Prometheus metrics of the reference pattern library service, registered on the service's
// registry. Bar and refusal counts live in the engine (it counts them as it goes); they are
// read into the counters when /metrics is scraped, so the tick path pays nothing for them.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EngineStats } from '../patterns/pattern-engine.ts';

export class PatternMetrics {
  readonly ticks: Counter;
  readonly rejects: Counter<'reason'>;
  readonly barsClosed: Counter;
  readonly patterns: Counter<'pattern'>;
  readonly indicators: Counter<'indicator'>;
  readonly published: Counter<'channel'>;
  readonly publishFailures: Counter<'code'>;
  readonly symbols: Gauge;
  /** What the engine had counted at the last scrape, so that only the difference is added. */
  #seen = { barsClosed: 0, rejected: {} as Record<string, number> };

  constructor(registry: Registry, stats: () => EngineStats) {
    const registers = [registry];
    const sync = (): void => this.#sync(stats());
    this.ticks = new Counter({ name: 'tickbus_patterns_ticks_total', help: 'Ticks received on tickstock:market:ticks that passed the schema.', registers });
    this.rejects = new Counter({
      name: 'tickbus_patterns_ticks_rejected_total',
      help: 'Ticks refused, by reason: an error code of the bus (TB_ERR_VALIDATION, TB_ERR_INVALID_JSON, …) or the engine (late, invalid_timestamp, symbols_full, …).',
      labelNames: ['reason'],
      registers,
      collect: sync,
    });
    this.barsClosed = new Counter({ name: 'tickbus_patterns_bars_closed_total', help: 'Bars closed (by a later tick or by the flush timer), one per symbol and timeframe.', registers, collect: sync });
    this.patterns = new Counter({ name: 'tickbus_patterns_detected_total', help: 'Patterns detected, by name (doji, bullish_engulfing, …), whatever their confidence.', labelNames: ['pattern'], registers });
    this.indicators = new Counter({ name: 'tickbus_patterns_indicators_published_total', help: 'Indicator values published, by indicator (SMA, EMA, RSI, VWAP).', labelNames: ['indicator'], registers });
    this.published = new Counter({ name: 'tickbus_patterns_messages_published_total', help: 'Messages published, by channel.', labelNames: ['channel'], registers });
    this.publishFailures = new Counter({ name: 'tickbus_patterns_publish_failures_total', help: 'Messages that could not be published, by error code.', labelNames: ['code'], registers });
    this.symbols = new Gauge({ name: 'tickbus_patterns_symbols', help: 'Symbols with bars held.', registers, collect: () => this.symbols.set(stats().symbols) });
  }

  #sync(stats: EngineStats): void {
    if (stats.barsClosed > this.#seen.barsClosed) this.barsClosed.inc(stats.barsClosed - this.#seen.barsClosed);
    this.#seen.barsClosed = stats.barsClosed;
    for (const [reason, n] of Object.entries(stats.rejected)) {
      const before = this.#seen.rejected[reason];
      // Every reason shows from the first scrape, at 0 until it happens.
      if (before === undefined || n > before) this.rejects.labels(reason).inc(n - (before ?? 0));
      this.#seen.rejected[reason] = n;
    }
  }
}
