// `tickbus broker`: the market-data broker service (seed 000).
import type { Command } from 'commander';
import { startBrokerRuntime, type BrokerRuntimeOptions } from '../../broker/broker-runtime.ts';
import { BROKER_DEFAULTS } from '../../broker/broker-service.ts';
import { createFeed, FEED_NAMES } from '../../broker/feeds/create-feed.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { resolveRedisConfig } from '../../core/config.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { runUntilSignal } from './service.ts';

export interface BrokerCliOptions {
  redisUrl?: string;
  feed: string;
  file?: string;
  speed: string;
  loop?: boolean;
  seed: string;
  rate: string;
  maxTickers: string;
  leaseTtl: string;
  port: string;
  host: string;
  name?: string;
  sender?: string;
  failoverMs?: string;
  heartbeatMs?: string;
}

export function addBrokerOptions(cmd: Command): Command {
  return cmd
    .option('--feed <name>', `market data: ${FEED_NAMES.join(' | ')}`, 'sim')
    .option('--file <path>', 'trades to replay (NDJSON or CSV; see docs/feeds.md), with --feed replay')
    .option('--speed <x>', 'replay pace: a multiplier of the recorded pace, or "max"', '1')
    .option('--loop', 'replay the file again from the top when it ends')
    .option('--seed <n>', 'seed of the simulated market (same seed, same prices)', '42')
    .option('--rate <n>', 'simulated trades per second per ticker', '2')
    .option('--max-tickers <n>', 'most tickers streamed at once', String(BROKER_DEFAULTS.maxTickers))
    .option('--lease-ttl <seconds>', 'lifetime of anonymous registrations (0: until unregistered)', String(BROKER_DEFAULTS.anonymousLeaseTtlSeconds));
}

export function number(value: string, name: string, min = 0): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new CliError(`${name} must be a number of at least ${min}, got "${value}".`, ExitCode.Usage);
  return n;
}

export function registerBroker(program: Command): void {
  addBrokerOptions(
    program
      .command('broker')
      .description('Run the market-data broker: registrations in, price and order updates out, per ticker.')
      .option('--redis-url <url>', 'Redis to use (default: $REDIS_URL, else redis://127.0.0.1:6379)'),
  )
    .option('--port <n>', 'port of /health and /metrics', '9464')
    .option('--host <addr>', 'address of /health and /metrics', '127.0.0.1')
    .option('--name <name>', "this broker's name among the brokers sharing the tickers (default: host-pid-random)")
    .option('--sender <name>', 'the sender written into every update', 'broker_service')
    .option('--failover-ms <ms>', "how long a dead broker's tickers wait before another takes them (its lease)", '3000')
    .option('--heartbeat-ms <ms>', 'interval of the heartbeat `tickbus health` reads (a beat expires after six)', '5000')
    .addHelpText(
      'after',
      `
Several brokers on the same Redis (or cluster) share the registered tickers: each ticker
is streamed by exactly one live broker, under a fenced lease; when a broker dies, the
others take its tickers within about --failover-ms.

Examples:
  $ tickbus broker                                   # simulated market on $REDIS_URL
  $ tickbus broker --redis-url redis-cluster://10.0.0.1:7000,10.0.0.2:7000 --name broker-a
  $ tickbus broker --feed replay --file trades.ndjson --speed max
  $ APCA_API_KEY_ID=… APCA_API_SECRET_KEY=… tickbus broker --feed alpaca

Bots register tickers by publishing {"action":"subscribe","ticker":"AAPL"} on
BROKER_REGISTRATION, and receive updates on TICKER_UPDATES_AAPL.`,
    )
    .action(async (options: BrokerCliOptions) => {
      const logger = createLogger('broker');
      const url = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {}).url;
      const runtime = await startBrokerRuntime(await runtimeOptions(options, url, logger));
      process.stderr.write(`tickbus broker: ${options.feed} feed, Redis ${runtime.bus.context.transport.target}; health ${runtime.opsUrl}/health, metrics ${runtime.opsUrl}/metrics\n`);
      await runUntilSignal(() => runtime.stop(), (line) => process.stderr.write(`tickbus broker: ${line}\n`));
    });
}

/** The runtime options both `broker` and `up` build from their command line. */
export async function runtimeOptions(options: BrokerCliOptions, redisUrl: string | undefined, logger: Logger): Promise<BrokerRuntimeOptions> {
  return {
    redisUrl,
    feed: await createFeed(options.feed, feedOptions(options)),
    logger,
    opsPort: number(options.port, '--port'),
    opsHost: options.host,
    maxTickers: number(options.maxTickers, '--max-tickers', 1),
    anonymousLeaseTtlSeconds: number(options.leaseTtl, '--lease-ttl'),
    ...(options.name === undefined ? {} : { memberId: options.name }),
    ...(options.sender === undefined ? {} : { sender: options.sender }),
    ...(options.failoverMs === undefined ? {} : { leaseMs: number(options.failoverMs, '--failover-ms', 100) }),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: number(options.heartbeatMs, '--heartbeat-ms', 100) }),
  };
}

export function feedOptions(options: BrokerCliOptions): Parameters<typeof createFeed>[1] {
  return {
    seed: number(options.seed, '--seed'),
    rate: number(options.rate, '--rate', 0.001),
    file: options.file,
    speed: options.speed === 'max' ? 'max' : number(options.speed, '--speed', 0.000001),
    loop: options.loop,
  };
}
