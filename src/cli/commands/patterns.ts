// `tickbus patterns`: the reference pattern library (seed 002's TickStockPL) as a service:
// raw ticks from tickstock:market:ticks in, patterns, indicators and health out.
import type { Command } from 'commander';
import { resolveRedisConfig } from '../../core/config.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import { PATTERN_DEFAULTS } from '../../tickstock/pattern-defaults.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { number } from './broker.ts';
import { exitSoonAfter, guardProcess, runUntilSignal, startupFailure } from './service.ts';
import { addConnectionOptions, type ConnectionOptions } from './shared.ts';
import { OPS_DEFAULTS } from '../../core/defaults.ts';

interface PatternsCliOptions extends ConnectionOptions {
  timeframes: string;
  healthEvery: string;
  opsPort?: string;
  opsHost: string;
  heartbeatMs: string;
}

/** "5,60" → [5, 60]: whole seconds, at least one. */
export function parseTimeframes(value: string): number[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const out = list.map(Number);
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new CliError(`--timeframes takes whole seconds, comma-separated (e.g. 5,60), got "${value}".`, ExitCode.Usage);
  }
  return [...new Set(out)];
}

export function registerPatterns(program: Command): void {
  addConnectionOptions(program.command('patterns').description('Run the reference pattern library (TickStockPL): ticks from tickstock:market:ticks in; patterns, indicators and health out.'))
    .option('--timeframes <list>', 'bar lengths in seconds, comma-separated', PATTERN_DEFAULTS.timeframes.join(','))
    .option('--health-every <seconds>', 'interval of the health message on tickstock:streaming:health (0: none)', String(PATTERN_DEFAULTS.healthEveryMs / 1000))
    .option('--ops-port <n>', 'port of /health and /metrics (0: any free port; default: none)')
    .option('--ops-host <addr>', 'address of /health and /metrics', OPS_DEFAULTS.host)
    .option('--heartbeat-ms <ms>', 'interval of the heartbeat `tickbus health` reads (a beat expires after six)', String(PATTERN_DEFAULTS.heartbeatMs))
    .addHelpText(
      'after',
      `
Reads seed 002's raw ticks {symbol, price, volume, timestamp} (a broker run with
--forward-ticks publishes them), builds bars per symbol and timeframe, and on each closed
bar publishes (bare JSON, the seeds' formats; docs/tickstock.md):
  tickstock:patterns:streaming     every detection (confidence in %)
  tickstock:patterns:detected      those of 80 % and above
  tickstock:indicators:streaming   SMA, EMA, RSI, VWAP
  tickstock.events.patterns        every detection as a seed 003 event (confidence 0 to 1)
  tickstock:streaming:health       every --health-every seconds

Examples:
  $ tickbus broker --forward-ticks &                 # the ticks
  $ tickbus patterns                                 # 5 s and 1 min bars on $REDIS_URL
  $ tickbus patterns --timeframes 60,300 --ops-port 9470
  $ tickbus tail 'tickstock:patterns:*'              # watch what it finds`,
    )
    .action(async (options: PatternsCliOptions) => {
      const timeframes = parseTimeframes(options.timeframes);
      const healthEveryMs = number(options.healthEvery, '--health-every') * 1000;
      const heartbeatMs = number(options.heartbeatMs, '--heartbeat-ms');
      const opsPort = options.opsPort === undefined ? undefined : number(options.opsPort, '--ops-port');
      const [{ startPatternRuntime }, { createLogger }] = await Promise.all([import('../../tickstock/pattern-runtime.ts'), import('../../core/logger.ts')]);
      const logger = createLogger('patterns');
      const redis = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {});
      let runtime;
      try {
        runtime = await startPatternRuntime({ redisUrl: redis.url, logger, timeframes, healthEveryMs, heartbeatMs, opsPort, opsHost: options.opsHost, connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs });
      } catch (error) {
        // startPatternRuntime took down what it started; say what to change, and go.
        throw exitSoonAfter(startupFailure(error, redis.display, '--ops-port'));
      }
      const unguard = guardProcess(runtime.bus.context.background, logger);
      const ops = runtime.opsUrl === undefined ? '' : `; health ${runtime.opsUrl}/health, metrics ${runtime.opsUrl}/metrics`;
      process.stderr.write(`tickbus patterns: timeframes ${timeframes.join(',')} s, Redis ${runtime.bus.context.transport.target}${ops}\n`);
      const running = runtime;
      await runUntilSignal(async () => {
        await running.close();
        unguard();
      }, (line) => process.stderr.write(`tickbus patterns: ${line}\n`));
    });
}
