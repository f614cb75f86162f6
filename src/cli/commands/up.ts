// `tickbus up`: the whole system in one process for a first look, on an embedded default
// (see runtime/backend.ts for how Redis is chosen).
import type { Command } from 'commander';
import { checkParam, TICKER } from '../../core/channel-param.ts';
import { addBrokerOptions, number, runtimeOptions, type BrokerCliOptions } from './broker.ts';
import { addGatewayOptions, gatewayOptions, type GatewayCliOptions } from './gateway.ts';
import type { HealthReport } from '../../ops/ops-server.ts';
import { resolveLogLevel, resolveRedisConfig } from '../../core/config.ts';
import { exitSoonAfter, guardProcess, runUntilSignal, startupFailure } from './service.ts';
import { DEFAULTS, GATEWAY_DEFAULTS } from '../../core/defaults.ts';
import { cleanUpWithin } from '../../core/background.ts';

/** The TickStock channels `tickbus up` exposes to browsers besides ticker updates. */
const UP_TICKSTOCK_CHANNELS = ['tickstock:patterns:streaming', 'tickstock:patterns:detected', 'tickstock:indicators:streaming', 'tickstock.events.patterns', 'tickstock:streaming:health'];

/** `tickbus up` serves its dashboard here: beside, not on, a `tickbus gateway`'s port. */
const UP_PORT = 8080;

export function registerUp(program: Command): void {
  const cmd = addBrokerOptions(
    program
      .command('up')
      .description('Run the whole system in one process (broker on the simulated feed, gateway and dashboard, the TickStock pattern library and backtest worker) on an embedded default.')
      .option('--redis-url <url>', 'use this Redis instead of choosing one'),
  );
  addGatewayOptions(cmd)
    .option('--port <n>', 'HTTP port: the dashboard at /, WebSocket at /ws, /health, /metrics', String(UP_PORT))
    .option('--host <addr>', 'HTTP address', GATEWAY_DEFAULTS.host)
    .option('--no-tickstock', 'leave out the TickStock loop (tick forwarding, the pattern library, the backtest worker)')
    .option('--tickers <list>', 'tickers to stream from the start, comma-separated', 'AAPL,MSFT,NVDA')
    .addHelpText(
      'after',
      `
Which Redis: $REDIS_URL when set; else one answering on localhost:6379; else a private
redis-server started for this run; else in-memory (this process only), with a warning.

Open the dashboard at http://${GATEWAY_DEFAULTS.host}:${UP_PORT}/ (the WebSocket is at /ws).

Examples:
  $ npm start
  $ tickbus up --port 9000 --tickers AAPL,TSLA --batch-ms 100
  $ REDIS_URL=redis://redis.internal:6379 tickbus up
  $ tickbus up --no-tickstock                  # broker, gateway and dashboard only`,
    )
    .action(async (options: BrokerCliOptions & GatewayCliOptions & { tickers: string; tickstock?: boolean }) => {
      const say = (line: string) => process.stderr.write(`tickbus up: ${line}\n`);
      // Checked before anything starts, so a typo cannot leave a half-started system behind.
      const tickers = options.tickers
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
        .map((t) => checkParam(TICKER, 'ticker', t));
      const settings = gatewayOptions(options);
      const port = number(options.port, '--port');
      // A taken port is found before a Redis is chosen (or started) and a broker runs.
      try {
        await portIsFree(options.host, port);
      } catch (error) {
        throw startupFailure(error, undefined);
      }
      const [{ startBrokerRuntime }, { createLogger }, { chooseBackend, describeBackend }, { startGatewayRuntime }, { startPatternRuntime }, { startBacktestRuntime }] = await Promise.all([
        import('../../broker/broker-runtime.ts'),
        import('../../core/logger.ts'),
        import('../../runtime/backend.ts'),
        import('../../gateway/gateway-runtime.ts'),
        import('../../tickstock/pattern-runtime.ts'),
        import('../../tickstock/backtest-runtime.ts'),
      ]);
      const tickstock = options.tickstock !== false;
      const backend = await chooseBackend({ redisUrl: options.redisUrl });
      say(`using ${describeBackend(backend)}`);
      const logger = createLogger('tickbus', resolveLogLevel('warn'));
      const redisShown = backend.kind === 'redis' ? backend.url : undefined;
      let runtime;
      try {
        // The gateway serves /health and /metrics for both, on --port.
        runtime = await startBrokerRuntime({ ...(await runtimeOptions({ ...options, forwardTicks: tickstock || options.forwardTicks === true, priceEvents: true }, redisShown, logger)), opsPort: undefined, connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs });
      } catch (error) {
        await cleanUpWithin([() => backend.stop()]);
        throw exitSoonAfter(startupFailure(error, redisShown));
      }
      const broker = runtime;
      let gatewayRuntime;
      try {
        // On the broker's bus, with its last-value cache; job progress needs the job records in Redis.
        gatewayRuntime = await startGatewayRuntime({
          ...settings,
          // The local desk places orders on the simulated venue out of the box; with JWT the token's claim decides.
          allowOrders: true,
          channels: tickstock ? [...new Set([...(settings.channels ?? []), ...UP_TICKSTOCK_CHANNELS])] : settings.channels,
          logger,
          port,
          host: options.host,
          redis: backend.kind === 'redis' ? resolveRedisConfig({ url: backend.url }) : undefined,
          broker: { bus: broker.bus, lastValue: (ticker) => broker.store.lastValue(ticker) },
          connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs,
          health: (gateway): HealthReport => ({ ...broker.service.health(), gateway: gateway.stats() }),
        });
      } catch (error) {
        await cleanUpWithin([() => broker.stop(), () => backend.stop()]);
        throw exitSoonAfter(startupFailure(error, redisShown));
      }
      const gateway = gatewayRuntime;
      const { url } = gateway;
      // The TickStock loop (docs/tickstock.md): the pattern library on the broker's bus (its
      // metrics in the same /metrics), and, on Redis, the backtest worker with seed 003's bridge.
      let patterns: Awaited<ReturnType<typeof startPatternRuntime>> | undefined;
      let backtests: Awaited<ReturnType<typeof startBacktestRuntime>> | undefined;
      try {
        if (tickstock) {
          patterns = await startPatternRuntime({ logger, bus: broker.bus, registry: broker.bus.context.metrics.registry, heartbeatMs: 0 });
          if (backend.kind === 'redis') {
            backtests = await startBacktestRuntime({ redis: { url: backend.url }, logger, name: 'up', connectTimeoutMs: DEFAULTS.serviceConnectTimeoutMs });
          } else {
            say('backtests need Redis (job records and the queue live there): not started on the in-memory transport');
          }
        }
        for (const ticker of tickers) await runtime.bus.publish('BROKER_REGISTRATION', { action: 'subscribe', ticker });
      } catch (error) {
        await cleanUpWithin([() => backtests?.close(), () => patterns?.close(), () => gateway.stop(), () => broker.stop(), () => backend.stop()]);
        throw exitSoonAfter(startupFailure(error, redisShown));
      }
      const unguard = guardProcess(runtime.bus.context.background, logger);
      say(`broker streaming ${tickers.join(', ') || 'nothing yet'} from the ${options.feed} feed`);
      if (patterns) say(`patterns  bars of ${patterns.service.timeframes.join(' s, ')} s from tickstock:market:ticks; alerts on tickstock:patterns:* and tickstock.events.patterns`);
      if (backtests) say('backtests tickbus jobs submit … (or seed 003\'s JobManager: PUBLISH tickstock.jobs.backtest)');
      say(`dashboard ${url}/`);
      say(`health    ${url}/health`);
      say(`metrics   ${url}/metrics`);
      if (backend.kind === 'redis') {
        // On a cluster ticker channels are sharded, and a pattern cannot see them: name one.
        const watch = backend.url.includes('-cluster://') ? `TICKER_UPDATES_${tickers[0] ?? 'AAPL'}` : `'TICKER_UPDATES_*'`;
        say(`watch     REDIS_URL=${backend.url} npx tickbus tail ${watch}`);
        say(`add       REDIS_URL=${backend.url} npx tickbus publish BROKER_REGISTRATION '{"action":"subscribe","ticker":"TSLA"}'`);
      }
      say('Ctrl-C to stop');
      await runUntilSignal(async () => {
        await backtests?.close();
        await patterns?.close();
        await gateway.stop();
        await runtime.stop();
        await backend.stop();
        unguard();
      }, say);
    });
}

/** Fails with the ListenError the gateway would give later, before anything has started. */
async function portIsFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const [{ OpsServer }, { Registry }] = await Promise.all([import('../../ops/ops-server.ts'), import('prom-client')]);
  const probe = new OpsServer({ port, host, registry: new Registry(), health: () => ({ status: 'down' }) });
  await probe.listen();
  await probe.close();
}
