// The TickStock catalog (seeds 002 and 003): pattern, indicator, tick, health and error
// channels between TickStockPL and TickStockApp, and the event and job channels of the
// backtesting workflow. These services publish the data object itself (json.dumps(event)),
// so the channels use the bare wire format.
import { z } from 'zod';
import { defineChannel } from '../core/channel.ts';
import { defineCatalog } from '../core/catalog.ts';
import { metadata, nonNegativeInt, ticker, unixSeconds } from './fields.ts';

const timeframe = z.string().min(1).max(16);
const looseTime = z.union([unixSeconds, z.string().min(1).max(64)]);

/** tickstock:patterns:* — confidence is a percentage here (seed 002: 0 to 100). */
export const StreamingPatternSchema = z.object({
  pattern_name: z.string().min(1).max(64),
  symbol: ticker,
  timeframe,
  confidence: z.number().min(0).max(100),
  detected_at: unixSeconds.optional(),
  bar_count: nonNegativeInt.optional(),
  metadata: metadata.optional(),
});

export const IndicatorSchema = z.object({
  indicator_name: z.string().min(1).max(64),
  symbol: ticker,
  timeframe,
  value: z.number(),
  calculated_at: unixSeconds.optional(),
  metadata: metadata.optional(),
});

export const MarketTickSchema = z.object({
  symbol: ticker,
  price: z.number().nonnegative(),
  volume: z.number().nonnegative(),
  timestamp: looseTime,
});

export const StreamingHealthSchema = z.object({
  status: z.string().min(1).max(32),
  uptime_seconds: z.number().nonnegative().optional(),
  symbols_processed: nonNegativeInt.optional(),
  patterns_detected: nonNegativeInt.optional(),
  indicators_calculated: nonNegativeInt.optional(),
  timestamp: unixSeconds.optional(),
});

export const ErrorEventSchema = z.object({
  severity: z.string().min(1).max(16),
  message: z.string().max(4096),
  component: z.string().min(1).max(64),
  timestamp: looseTime,
});

/** tickstock.events.patterns — confidence is a fraction here (seed 003: 0.0 to 1.0). */
export const PatternEventSchema = z.object({
  event_type: z.literal('pattern_detected'),
  pattern: z.string().min(1).max(64),
  symbol: ticker,
  timestamp: unixSeconds,
  confidence: z.number().min(0).max(1),
  timeframe,
  direction: z.string().max(32).optional(),
  source: z.string().max(64).optional(),
  metadata: metadata.optional(),
});

export const JobStatus = z.enum(['submitted', 'running', 'completed', 'failed', 'cancelled', 'cancelling']);

export const BacktestProgressSchema = z.object({
  job_id: z.string().min(1).max(128),
  progress: z.number().min(0).max(1),
  status: JobStatus,
  timestamp: unixSeconds,
  message: z.string().max(1024).optional(),
});

export const BacktestResultSchema = z.object({
  job_id: z.string().min(1).max(128),
  status: z.enum(['completed', 'failed', 'cancelled']),
  results: metadata.optional(),
  error: z.string().max(4096).optional(),
  timestamp: unixSeconds,
});

export const SystemHealthSchema = z.object({
  status: z.string().min(1).max(32),
  component: z.string().max(64).optional(),
  timestamp: unixSeconds,
  details: metadata.optional(),
});

const isoDate = z.iso.date();

export const BacktestJobSchema = z.object({
  job_type: z.literal('backtest'),
  job_id: z.string().min(1).max(128),
  user_id: z.string().min(1).max(128),
  symbols: z.array(ticker).min(1).max(1000),
  start_date: isoDate,
  end_date: isoDate,
  patterns: z.array(z.string().min(1).max(64)).max(256),
  parameters: metadata.optional(),
  timestamp: unixSeconds,
});

export const AlertSubscriptionSchema = z.object({
  user_id: z.string().min(1).max(128),
  action: z.enum(['subscribe', 'unsubscribe']).optional(),
  symbols: z.array(ticker).max(1000).optional(),
  patterns: z.array(z.string().min(1).max(64)).max(256).optional(),
  /** Alerts only at or above this confidence (0.0 to 1.0, as tickstock.events.patterns); tickbus's addition to seed 003. */
  min_confidence: z.number().min(0).max(1).optional(),
  timestamp: unixSeconds,
});

export const SystemCommandSchema = z.object({
  command: z.string().min(1).max(64),
  job_id: z.string().min(1).max(128).optional(),
  timestamp: unixSeconds,
});

const bare = 'bare' as const;

export const PatternsStreaming = defineChannel({ name: 'tickstock:patterns:streaming', schema: StreamingPatternSchema, wire: bare, keyField: 'symbol', description: 'Real-time pattern detections (TickStockPL to TickStockApp).' });
export const PatternsDetected = defineChannel({ name: 'tickstock:patterns:detected', schema: StreamingPatternSchema, wire: bare, keyField: 'symbol', description: 'High-confidence pattern detections (80% and above).' });
export const IndicatorsStreaming = defineChannel({ name: 'tickstock:indicators:streaming', schema: IndicatorSchema, wire: bare, keyField: 'symbol', description: 'Real-time indicator values.' });
export const MarketTicks = defineChannel({ name: 'tickstock:market:ticks', schema: MarketTickSchema, wire: bare, keyField: 'symbol', description: 'Raw ticks forwarded from TickStockApp to TickStockPL.' });
export const StreamingHealth = defineChannel({ name: 'tickstock:streaming:health', schema: StreamingHealthSchema, wire: bare, description: 'Health metrics of the streaming pipeline.' });
export const Errors = defineChannel({ name: 'tickstock:errors', schema: ErrorEventSchema, wire: bare, description: 'System errors, both directions.' });
export const PatternEvents = defineChannel({ name: 'tickstock.events.patterns', schema: PatternEventSchema, wire: bare, keyField: 'symbol', description: 'Pattern detections as events.' });
export const BacktestProgress = defineChannel({ name: 'tickstock.events.backtesting.progress', schema: BacktestProgressSchema, wire: bare, description: 'Progress of a backtest job (0.0 to 1.0).' });
export const BacktestResults = defineChannel({ name: 'tickstock.events.backtesting.results', schema: BacktestResultSchema, wire: bare, description: 'The result or error of a finished backtest job.' });
export const SystemHealthEvents = defineChannel({ name: 'tickstock.events.system.health', schema: SystemHealthSchema, wire: bare, description: 'System status updates.' });
// Durable (issue 8): a job submitted while no worker runs waits in the stream
// tickbus:{tickstock.jobs.backtest}:stream, each request taken by one worker of the group.
export const BacktestJobs = defineChannel({
  name: 'tickstock.jobs.backtest',
  schema: BacktestJobSchema,
  wire: bare,
  durable: { maxLen: 100_000 },
  description: 'Backtest job requests: a durable stream, each job taken by one worker.',
});
export const AlertJobs = defineChannel({ name: 'tickstock.jobs.alerts', schema: AlertSubscriptionSchema, wire: bare, description: "Users' alert preferences." });
export const SystemJobs = defineChannel({ name: 'tickstock.jobs.system', schema: SystemCommandSchema, wire: bare, description: 'System commands, such as cancel_job.' });

export const tickstockCatalog = defineCatalog('tickstock', 'TickStockPL and TickStockApp channels (seeds 002 and 003).', {
  PatternsStreaming,
  PatternsDetected,
  IndicatorsStreaming,
  MarketTicks,
  StreamingHealth,
  Errors,
  PatternEvents,
  BacktestProgress,
  BacktestResults,
  SystemHealthEvents,
  BacktestJobs,
  AlertJobs,
  SystemJobs,
});
