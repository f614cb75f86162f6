// `tickbus broker`: the market-data broker service (seed 000).
import type { Command } from 'commander';
import type { BrokerRuntimeOptions } from '../../broker/broker-runtime.ts';
import { BROKER_DEFAULTS } from '../../broker/broker-defaults.ts';
import { FEED_DEFAULTS, FEED_NAMES } from '../../broker/feeds/feed-names.ts';
import type { FeedOptions } from '../../broker/feeds/create-feed.ts';
import type { Logger } from '../../core/logger.ts';
import { environment, resolveRedisConfig } from '../../core/config.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { exitSoonAfter, guardProcess, runUntilSignal, startupFailure } from './service.ts';
import { DEFAULTS, HEARTBEAT_DEFAULTS, HEARTBEAT_TTL_INTERVALS, OPS_DEFAULTS } from '../../core/defaults.ts';

export interface BrokerCliOptions {
  redisUrl?: string;
  feed: string;
  file?: string;
  speed: string;
  loop?: boolean;
  seed: string;
  rate: string;
  maxTickers: string;
  maxGatewayTickers?: string;
  leaseTtl: string;
  port: string;
  host: string;
  name?: string;
  sender?: string;
  failoverMs?: string;
  heartbeatMs?: string;
  /** `broker` has the flag; `up` may add it (runtimeOptions reads it for both). */
  forwardTicks?: boolean;
  priceEvents?: boolean;
}

export function addBrokerOptions(cmd: Command): Command {
  return cmd
    .option('--feed <name>', `market data: ${FEED_NAMES.join(' | ')}`, FEED_DEFAULTS.feed)
    .option('--file <path>', 'trades to replay (NDJSON or CSV; see docs/feeds.md), with --feed replay')
    .option('--speed <x>', 'replay pace: a multiplier of the recorded pace, or "max"', String(FEED_DEFAULTS.replaySpeed))
    .option('--loop', 'replay the file again from the top when it ends')
    .option('--seed <n>', 'seed of the simulated market (same seed, same prices)', String(FEED_DEFAULTS.simSeed))
    .option('--rate <n>', 'simulated trades per second per ticker', String(FEED_DEFAULTS.simTradesPerSecond))
    .option('--max-tickers <n>', 'most tickers streamed at once', String(BROKER_DEFAULTS.maxTickers))
    .option('--max-gateway-tickers <n>', 'most of them held by gateways alone (client_id gateway-…); the rest is kept for bots (default: half of --max-tickers)')
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
    .option('--port <n>', 'port of /health and /metrics', String(OPS_DEFAULTS.brokerPort))
    .option('--host <addr>', 'address of /health and /metrics', OPS_DEFAULTS.host)
    .option('--name <name>', "this broker's name among the brokers sharing the tickers (default: host-pid-random)")
    .option('--sender <name>', 'the sender written into every update', 'broker_service')
    .option('--failover-ms <ms>', "how long a dead broker's tickers wait before another takes them (its lease)", String(BROKER_DEFAULTS.groupLeaseMs))
    .option('--heartbeat-ms <ms>', `interval of the heartbeat \`tickbus health\` reads (a beat expires after ${HEARTBEAT_TTL_INTERVALS})`, String(HEARTBEAT_DEFAULTS.intervalMs))
    .option('--price-events', "also publish each price as seed 004's price.updated.{symbol} (bare JSON, the price as a decimal string)")
    .option('--forward-ticks', 'also publish each price as a raw tick on tickstock:market:ticks, for a pattern library (`tickbus patterns`; docs/tickstock.md)')
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
  $ tickbus broker --forward-ticks                   # and feed \`tickbus patterns\`
  $ APCA_API_KEY_ID=… APCA_API_SECRET_KEY=… tickbus broker --feed alpaca

Bots register tickers by publishing {"action":"subscribe","ticker":"AAPL"} on
BROKER_REGISTRATION, and receive updates on TICKER_UPDATES_AAPL.`,
    )
    .action(async (options: BrokerCliOptions) => {
      const [{ startBrokerRuntime }, { createLogger }] = await Promise.all([import('../../broker/broker-runtime.ts'), import('../../core/logger.ts')]);
      const logger = createLogger('broker');
      const redis = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {});
      let runtime;
      try {
        runtime = await startBrokerRuntime({ ...(await runtimeOptions(options, redis.url, logger)), connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs });
      } catch (error) {
        // startBrokerRuntime took down what it started; say what to change, and go.
        throw exitSoonAfter(startupFailure(error, redis.display));
      }
      const unguard = guardProcess(runtime.bus.context.background, logger);
      process.stderr.write(`tickbus broker: ${options.feed} feed, Redis ${runtime.bus.context.transport.target}; health ${runtime.opsUrl}/health, metrics ${runtime.opsUrl}/metrics\n`);
      const running = runtime;
      await runUntilSignal(async () => {
        await running.stop();
        unguard();
      }, (line) => process.stderr.write(`tickbus broker: ${line}\n`));
    });
}

/** The runtime options both `broker` and `up` build from their command line. */
export async function runtimeOptions(options: BrokerCliOptions, redisUrl: string | undefined, logger: Logger): Promise<BrokerRuntimeOptions> {
  const [{ createFeed }, { ALPACA_ENV }] = await Promise.all([import('../../broker/feeds/create-feed.ts'), import('../../broker/feeds/alpaca/alpaca-config.ts')]);
  return {
    redisUrl,
    // The feed sees only its own variables of the environment (the Alpaca keys), not the rest.
    feed: await createFeed(options.feed, feedOptions(options), environment(ALPACA_ENV)),
    logger,
    opsPort: number(options.port, '--port'),
    opsHost: options.host,
    maxTickers: number(options.maxTickers, '--max-tickers', 1),
    ...(options.maxGatewayTickers === undefined ? {} : { maxGatewayTickers: number(options.maxGatewayTickers, '--max-gateway-tickers') }),
    anonymousLeaseTtlSeconds: number(options.leaseTtl, '--lease-ttl'),
    ...(options.name === undefined ? {} : { memberId: options.name }),
    ...(options.sender === undefined ? {} : { sender: options.sender }),
    ...(options.failoverMs === undefined ? {} : { leaseMs: number(options.failoverMs, '--failover-ms', 100) }),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: number(options.heartbeatMs, '--heartbeat-ms', 100) }),
    ...(options.forwardTicks === true ? { forwardTicks: true } : {}),
    ...(options.priceEvents === true ? { priceEvents: true } : {}),
  };
}

export function feedOptions(options: BrokerCliOptions): FeedOptions {
  return {
    seed: number(options.seed, '--seed'),
    rate: number(options.rate, '--rate', 0.001),
    file: options.file,
    speed: options.speed === 'max' ? 'max' : number(options.speed, '--speed', 0.000001),
    loop: options.loop,
  };
}
