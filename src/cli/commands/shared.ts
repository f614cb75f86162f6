// Options and helpers every command shares: where Redis is, and a bus built from that.
import type { Command } from 'commander';
import { createBus, type TickBus } from '../../bus/tick-bus.ts';
import { createLogger } from '../../core/logger.ts';

export interface ConnectionOptions {
  redisUrl?: string;
}

export function addConnectionOptions(cmd: Command): Command {
  return cmd.option('--redis-url <url>', 'Redis to use, e.g. redis://localhost:6379/0 (default: $REDIS_URL, else redis://127.0.0.1:6379)');
}

/** A bus for a short-lived command: logs only warnings, fails fast when Redis is absent. */
export function commandBus(options: ConnectionOptions, sender = 'tickbus-cli'): TickBus {
  return createBus({
    redis: options.redisUrl ? { url: options.redisUrl } : undefined,
    sender,
    connectTimeoutMs: 1500,
    logger: createLogger('tickbus-cli', process.env.TICKBUS_LOG_LEVEL ?? 'warn'),
  });
}
