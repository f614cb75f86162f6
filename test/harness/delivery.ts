// Shared by the delivery fault tests: a private redis-server with buses that are closed
// after the suite, and the one-line figures each fault test prints.
import { after, before } from 'node:test';
import { createBus, type BusOptions, type Catalog, type TickBus } from '../../src/index.ts';
import { startRedis, type RedisServer } from './redis-server.ts';
import { silentLogger } from './quiet.ts';

export interface RedisBuses {
  /** The suite's redis-server (started in `before`). */
  readonly server: RedisServer;
  /** A bus on that server, with quick reconnection; closed after the suite. */
  bus(extra?: BusOptions): TickBus;
}

/** Call inside a describe(): starts a redis-server before its tests and cleans up after them. */
export function useRedisBuses(catalogs: readonly Catalog[]): RedisBuses {
  let server: RedisServer | undefined;
  const buses: TickBus[] = [];
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await server?.stop();
  });
  return {
    get server(): RedisServer {
      if (!server) throw new Error('useRedisBuses: the server starts in before()');
      return server;
    },
    bus(extra: BusOptions = {}): TickBus {
      const b = createBus({ redis: { url: this.server.url }, catalogs, logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 }, ...extra });
      buses.push(b);
      return b;
    },
  };
}

/** Prints a fault test's figures on one line: sent, delivered, duplicates, lost, time to recover. */
export function printFigures(name: string, figures: Record<string, number | string>): void {
  process.stdout.write(`# ${name}: ${Object.entries(figures).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
}

/** True when `items` is 0..n-1, each once, in order. */
export function contiguous(items: readonly number[], n: number): boolean {
  return items.length === n && items.every((v, i) => v === i);
}
