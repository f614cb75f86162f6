// `tickbus register` and `tickbus unregister`: ask the broker to start or stop streaming a
// ticker, as a bot would.
import type { Command } from 'commander';
import { BrokerRegistration } from '../../catalogs/broker.ts';
import { ExitCode } from '../exit-codes.ts';
import { CliError } from '../errors.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';

interface RegisterOptions extends ConnectionOptions {
  clientId?: string;
  ttl?: string;
}

export function registerRegistration(program: Command): void {
  for (const action of ['subscribe', 'unsubscribe'] as const) {
    const name = action === 'subscribe' ? 'register' : 'unregister';
    const cmd = addConnectionOptions(
      program
        .command(name)
        .description(action === 'subscribe' ? 'Ask the broker to stream a ticker (a registration lease).' : "Release a ticker's registration lease.")
        .argument('<ticker>', 'the ticker, e.g. AAPL or BRK.B')
        .option('--client-id <id>', 'hold the lease in this name (default: the anonymous lease of seed 000)'),
    );
    if (action === 'subscribe') cmd.option('--ttl <seconds>', 'lease lifetime (default: the broker\'s; 0: until unregistered)');
    cmd
      .addHelpText(
        'after',
        `
Examples:
  $ tickbus ${name} AAPL
  $ tickbus ${name} TSLA --client-id my-bot${action === 'subscribe' ? ' --ttl 60' : ''}

Exit codes: 0 a broker received it, 3 invalid ticker, 4 Redis unreachable, 5 no broker is listening.`,
      )
      .action(async (ticker: string, options: RegisterOptions) => {
        const ttl = options.ttl === undefined ? undefined : Number(options.ttl);
        if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 0)) throw new CliError(`--ttl must be a whole number of seconds, got "${options.ttl}".`, ExitCode.Usage);
        const bus = commandBus(options);
        try {
          const { receivers } = await bus.publish(BrokerRegistration, {
            action,
            ticker,
            ...(options.clientId ? { client_id: options.clientId } : {}),
            ...(ttl !== undefined ? { ttl_seconds: ttl } : {}),
          });
          if (receivers === 0) {
            throw new CliError(`No broker is listening on ${BrokerRegistration.template} at ${bus.context.transport.target}: start one with \`tickbus broker\` (or \`tickbus up\`).`, ExitCode.NoReceiver);
          }
          process.stdout.write(`${name}ed ${ticker.trim().toUpperCase()} (${receivers} receiver${receivers === 1 ? '' : 's'})\n`);
        } finally {
          await bus.close();
        }
      });
  }
}
