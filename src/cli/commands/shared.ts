// Options and helpers every command shares: where Redis is, and a bus built from that.
// The bus and the logger load only when a command runs, not for --help (see main.ts).
import type { Command } from 'commander';
import type { TickBus } from '../../bus/tick-bus.ts';

export interface ConnectionOptions {
  redisUrl?: string;
}

export function addConnectionOptions(cmd: Command): Command {
  return cmd.option('--redis-url <url>', 'Redis to use, e.g. redis://localhost:6379/0 (default: $REDIS_URL, else redis://127.0.0.1:6379)');
}

/** A bus for a short-lived command: logs only warnings, fails fast when Redis is absent. */
export async function commandBus(options: ConnectionOptions, sender = 'tickbus-cli'): Promise<TickBus> {
  const [{ createBus }, { createLogger }, { resolveLogLevel }] = await Promise.all([import('../../bus/tick-bus.ts'), import('../../core/logger.ts'), import('../../core/config.ts')]);
  return createBus({
    redis: options.redisUrl ? { url: options.redisUrl } : undefined,
    sender,
    connectTimeoutMs: 1500,
    logger: createLogger('tickbus-cli', resolveLogLevel('warn')),
  });
}
