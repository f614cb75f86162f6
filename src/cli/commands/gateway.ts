// `tickbus gateway`: the WebSocket gateway and the live dashboard (docs/gateway.md).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { resolveJwtSecret, resolveRedisConfig } from '../../core/config.ts';
import { DEFAULTS, GATEWAY_DEFAULTS } from '../../core/defaults.ts';
import type { GatewayOptions } from '../../gateway/gateway.ts';
import type { BatchTiming } from '../../gateway/flush.ts';
import type { TokenOptions } from '../../gateway/auth.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { number } from './broker.ts';
import { exitSoonAfter, guardProcess, runUntilSignal, startupFailure } from './service.ts';

export interface GatewayCliOptions {
  batchMs: string;
  batchTiming: string;
  conflate?: boolean;
  highWater: string;
  maxConnections?: string;
  maxSubscriptions: string;
  maxRooms: string;
  maxRoomsPerConnection: string;
  maxRoomsPerUser: string;
  clientRate: string;
  maxFrame: string;
  origin?: string[];
  channel?: string[];
  jwtSecretEnv?: string;
  jwtPublicKey?: string;
  allowOrders?: boolean;
}

export function addGatewayOptions(cmd: Command): Command {
  const list = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];
  return cmd
    .option('--batch-ms <n>', 'adaptive: the longest a busy client\'s updates wait to be joined; interval: the flush period; 0: each update at once', String(GATEWAY_DEFAULTS.batchMs))
    .option('--batch-timing <how>', 'adaptive (at once when quiet, coalesced under load) or interval (every --batch-ms)', GATEWAY_DEFAULTS.batchTiming)
    .option('--conflate', 'within one flush, send only the latest price per symbol')
    .option('--high-water <bytes>', `a client's send buffer above which updates are conflated (x${GATEWAY_DEFAULTS.dropAtHighWater} dropped, then closed)`, String(GATEWAY_DEFAULTS.highWaterBytes))
    .option('--max-connections <n>', `WebSocket connections held at once; past it an upgrade gets 503 (default: the open-file limit less ${GATEWAY_DEFAULTS.reservedFiles})`)
    .option('--max-subscriptions <n>', 'subscriptions per connection', String(GATEWAY_DEFAULTS.maxSubscriptions))
    .option('--max-rooms <n>', 'rooms (symbols and channels watched) open in the gateway at once', String(GATEWAY_DEFAULTS.maxRooms))
    .option('--max-rooms-per-connection <n>', 'rooms one connection may own (open, or be left the last in)', String(GATEWAY_DEFAULTS.maxRoomsPerConnection))
    .option('--max-rooms-per-user <n>', 'rooms the connections of one JWT user may own together', String(GATEWAY_DEFAULTS.maxRoomsPerUser))
    .option('--client-rate <n>', 'requests per second per WebSocket connection', String(GATEWAY_DEFAULTS.ratePerSecond))
    .option('--max-frame <bytes>', 'largest frame a client may send', String(GATEWAY_DEFAULTS.maxFrameBytes))
    .option('--origin <list>', 'allowed browser origins (repeat or comma-separate); default any', list)
    .option('--channel <list>', 'catalog channels to expose besides ticker updates, e.g. tickstock.events.patterns', list)
    .option('--jwt-secret-env <name>', 'require HS256 JWTs signed with the secret in this environment variable')
    .option('--jwt-public-key <file>', 'require RS256 JWTs verified with this PEM public key')
    .option('--allow-orders', 'without JWT, let clients place and cancel orders (trusted networks only; with JWT the token\'s "orders" claim decides)');
}

function batchTiming(value: string): BatchTiming {
  if (value === 'adaptive' || value === 'interval') return value;
  throw new CliError(`--batch-timing: "${value}" is not a timing: pass adaptive or interval.`, ExitCode.Usage);
}

/** The gateway options a command line gives. */
export function gatewayOptions(options: GatewayCliOptions): Omit<GatewayOptions, 'bus' | 'logger'> {
  let auth: TokenOptions | undefined;
  if (options.jwtSecretEnv) {
    auth = { secret: resolveJwtSecret(options.jwtSecretEnv) };
  } else if (options.jwtPublicKey) {
    try {
      auth = { publicKey: readFileSync(options.jwtPublicKey, 'utf8') };
    } catch (error) {
      throw new CliError(`--jwt-public-key: cannot read ${options.jwtPublicKey} (${(error as Error).message}).`, ExitCode.Usage);
    }
  }
  return {
    batchMs: number(options.batchMs, '--batch-ms'),
    batchTiming: batchTiming(options.batchTiming),
    conflate: options.conflate ?? false,
    highWaterBytes: number(options.highWater, '--high-water', 1024),
    ...(options.maxConnections === undefined ? {} : { maxConnections: number(options.maxConnections, '--max-connections', 1) }),
    maxSubscriptions: number(options.maxSubscriptions, '--max-subscriptions', 1),
    maxRooms: number(options.maxRooms, '--max-rooms', 1),
    maxRoomsPerConnection: number(options.maxRoomsPerConnection, '--max-rooms-per-connection', 1),
    maxRoomsPerUser: number(options.maxRoomsPerUser, '--max-rooms-per-user', 1),
    ratePerSecond: number(options.clientRate, '--client-rate', 1),
    maxFrameBytes: number(options.maxFrame, '--max-frame', 256),
    allowedOrigins: options.origin,
    channels: options.channel ?? [],
    auth,
    allowOrders: options.allowOrders === true,
  };
}

export function registerGateway(program: Command): void {
  addGatewayOptions(
    program
      .command('gateway')
      .description('Run the WebSocket gateway and the live dashboard: Redis events to browsers, by symbol.')
      .option('--redis-url <url>', 'Redis to use (default: $REDIS_URL, else redis://127.0.0.1:6379)')
      .option('--port <n>', 'HTTP port: the dashboard at /, WebSocket at /ws, /health, /metrics', String(GATEWAY_DEFAULTS.port))
      .option('--host <addr>', 'HTTP address', GATEWAY_DEFAULTS.host),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus gateway                                  # dashboard on http://${GATEWAY_DEFAULTS.host}:${GATEWAY_DEFAULTS.port}/
  $ tickbus gateway --batch-ms 0 --port 9000         # every update at once
  $ TICKBUS_JWT_SECRET=… tickbus gateway --jwt-secret-env TICKBUS_JWT_SECRET --origin https://desk.example
  $ tickbus gateway --channel tickstock.events.patterns

The protocol is in docs/gateway.md. A broker must run on the same Redis (tickbus broker,
or tickbus up, which runs both).`,
    )
    .action(async (options: GatewayCliOptions & { redisUrl?: string; port: string; host: string }) => {
      const [{ startGatewayRuntime }, { createLogger }] = await Promise.all([import('../../gateway/gateway-runtime.ts'), import('../../core/logger.ts')]);
      const logger = createLogger('gateway');
      const config = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {});
      const settings = gatewayOptions(options);
      const port = number(options.port, '--port');
      let runtime;
      try {
        runtime = await startGatewayRuntime({ ...settings, logger, port, host: options.host, redis: config, connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs });
      } catch (error) {
        // What did start is down again by now (the runtime saw to it): one line says what to change.
        throw exitSoonAfter(startupFailure(error, config.display));
      }
      const { url, bus } = runtime;
      process.stderr.write(`tickbus gateway: dashboard ${url}/  websocket ${url.replace('http', 'ws')}/ws  health ${url}/health  (Redis ${bus.context.transport.target})\n`);
      const unguard = guardProcess(bus.context.background, logger);
      const running = runtime;
      await runUntilSignal(async () => {
        await running.stop();
        unguard();
      }, (line) => process.stderr.write(`tickbus gateway: ${line}\n`));
    });
}
