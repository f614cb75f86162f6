// The seam through which services keep state in Redis beside the bus (the broker's leases,
// members and last values, job records, heartbeats, a bot's last price): one small
// interface and one way to open it. The Redis transport implements it; services import
// this file, never src/transports/redis (the lint checks it), so how commands reach one
// Redis or a cluster stays the transport's business.
import type { RedisConfig } from '../core/config.ts';

/** A plain command connection: no pub/sub, no blocking reads. */
export interface CommandLink {
  /** One command, routed by `key` on a cluster (undefined: any node). */
  send<T>(args: string[], key: string | undefined): Promise<T>;
  close(): Promise<void>;
}

export interface CommandLinkOptions {
  /** CLIENT SETNAME. */
  name: string;
  /** How long connecting waits. @default 5000 */
  connectTimeoutMs?: number;
  /** Keep reconnecting after a lost connection (false: fail once, for one-shot checks). @default true */
  reconnect?: boolean;
  onError?: (error: Error) => void;
}

/** Opens a command link to the Redis (or cluster) the config names; NotConnectedError when it cannot. */
export async function connectCommands(redis: RedisConfig, options: CommandLinkOptions): Promise<CommandLink> {
  const { RedisCommands } = await import('./redis/redis-commands.ts');
  return RedisCommands.connect(redis, options);
}

export { hashReply } from './redis/redis-commands.ts';
