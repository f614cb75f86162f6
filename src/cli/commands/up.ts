// `tickbus up`: the whole system in one process for a first look, on an embedded default
// (see runtime/backend.ts for how Redis is chosen).
import type { Command } from 'commander';
import { startBrokerRuntime } from '../../broker/broker-runtime.ts';
import { createLogger } from '../../core/logger.ts';
import { chooseBackend, describeBackend } from '../../runtime/backend.ts';
import { checkParam, TICKER } from '../../core/channel-param.ts';
import { addBrokerOptions, runtimeOptions, type BrokerCliOptions } from './broker.ts';
import { runUntilSignal } from './service.ts';

export function registerUp(program: Command): void {
  addBrokerOptions(
    program
      .command('up')
      .description('Run the whole system in one process (broker on the simulated feed) on an embedded default.')
      .option('--redis-url <url>', 'use this Redis instead of choosing one'),
  )
    .option('--port <n>', 'HTTP port (health and metrics now; the dashboard later)', '8080')
    .option('--host <addr>', 'HTTP address', '127.0.0.1')
    .option('--tickers <list>', 'tickers to stream from the start, comma-separated', 'AAPL,MSFT,NVDA')
    .addHelpText(
      'after',
      `
Which Redis: $REDIS_URL when set; else one answering on localhost:6379; else a private
redis-server started for this run; else in-memory (this process only), with a warning.

Examples:
  $ npm start
  $ tickbus up --port 9000 --tickers AAPL,TSLA
  $ REDIS_URL=redis://redis.internal:6379 tickbus up`,
    )
    .action(async (options: BrokerCliOptions & { tickers: string }) => {
      const say = (line: string) => process.stderr.write(`tickbus up: ${line}\n`);
      // Checked before anything starts, so a typo cannot leave a half-started system behind.
      const tickers = options.tickers
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
        .map((t) => checkParam(TICKER, 'ticker', t));
      const backend = await chooseBackend({ redisUrl: options.redisUrl });
      say(`using ${describeBackend(backend)}`);
      const logger = createLogger('tickbus', process.env.TICKBUS_LOG_LEVEL ?? 'warn');
      let runtime;
      try {
        runtime = await startBrokerRuntime(await runtimeOptions(options, backend.kind === 'redis' ? backend.url : undefined, logger));
      } catch (error) {
        await backend.stop();
        throw error;
      }
      try {
        for (const ticker of tickers) await runtime.bus.publish('BROKER_REGISTRATION', { action: 'subscribe', ticker });
      } catch (error) {
        await runtime.stop();
        await backend.stop();
        throw error;
      }
      say(`broker streaming ${tickers.join(', ') || 'nothing yet'} from the ${options.feed} feed`);
      say(`health  ${runtime.opsUrl}/health`);
      say(`metrics ${runtime.opsUrl}/metrics`);
      if (backend.kind === 'redis') {
        say(`watch   REDIS_URL=${backend.url} npx tickbus tail 'TICKER_UPDATES_*'`);
        say(`add     REDIS_URL=${backend.url} npx tickbus publish BROKER_REGISTRATION '{"action":"subscribe","ticker":"TSLA"}'`);
      }
      say('Ctrl-C to stop');
      await runUntilSignal(async () => {
        await runtime.stop();
        await backend.stop();
      }, say);
    });
}
