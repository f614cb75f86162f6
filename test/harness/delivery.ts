// Shared by the delivery fault tests: a private redis-server (or Redis Cluster) with buses that are closed
// after the suite, and the one-line figures each fault test prints.
import { after, before } from 'node:test';
import { createBus, type BusOptions, type Catalog, type TickBus } from '../../src/index.ts';
import { startBackend, type Backend, type TestRedis } from './backends.ts';
import { silentLogger } from './quiet.ts';

export type { Backend, TestRedis };

export interface RedisBuses {
  /** The suite's Redis (started in `before`). */
  readonly server: TestRedis;
  /** A bus on it, with quick reconnection; closed after the suite. */
  bus(extra?: BusOptions): TickBus;
}

/**
 * Call inside a describe(): starts a redis-server (or a 3+3 Redis Cluster) before its tests
 * and cleans up after them.
 */
export function useRedisBuses(catalogs: readonly Catalog[], backend: Backend = 'redis'): RedisBuses {
  let server: TestRedis | undefined;
  const buses: TickBus[] = [];
  before(async () => {
    server = await startBackend(backend);
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await server?.stop();
  });
  return {
    get server(): TestRedis {
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
