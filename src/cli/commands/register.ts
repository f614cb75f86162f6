// `tickbus register` and `tickbus unregister`: ask the broker to start or stop streaming a
// ticker, as a bot would.
import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.ts';
import { CliError } from '../errors.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';
import type { TickBus } from '../../bus/tick-bus.ts';

/**
 * On a Redis Cluster a PUBLISH counts only the subscribers of the node that took it, so a
 * 0 there proves nothing: ask how many brokers are alive (they heartbeat their membership).
 */
async function liveBrokers(bus: TickBus): Promise<number> {
  const [{ BROKER_MEMBERS_KEY: MEMBERS_KEY }, { RedisTransport }, { RedisCommands }] = await Promise.all([
    import('../../core/keys.ts'),
    import('../../transports/redis/redis-transport.ts'),
    import('../../transports/redis/redis-commands.ts'),
  ]);
  const transport = bus.context.transport;
  if (!(transport instanceof RedisTransport) || !transport.shardedPubSub) return 0;
  const redis = await RedisCommands.connect(transport.options.redis, { name: 'tickbus:cli', reconnect: false });
  try {
    return Number(await redis.send(['ZCOUNT', MEMBERS_KEY, `(${Date.now()}`, '+inf'], MEMBERS_KEY));
  } finally {
    await redis.close();
  }
}

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
        const { BrokerRegistration } = await import('../../catalogs/broker.ts');
        const bus = await commandBus(options);
        try {
          const { receivers } = await bus.publish(BrokerRegistration, {
            action,
            ticker,
            ...(options.clientId ? { client_id: options.clientId } : {}),
            ...(ttl !== undefined ? { ttl_seconds: ttl } : {}),
          });
          const brokers = receivers === 0 ? await liveBrokers(bus) : 0;
          if (receivers === 0 && brokers > 0) {
            process.stdout.write(`${name}ed ${ticker.trim().toUpperCase()} (${brokers} broker${brokers === 1 ? '' : 's'} live in the cluster)\n`);
            return;
          }
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
