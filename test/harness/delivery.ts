// Shared by the delivery fault tests: a private redis-server (or Redis Cluster) with buses that are closed
// after the suite, and the one-line figures each fault test prints.
import { after, before } from 'node:test';
import { createBus, type BusOptions, type Catalog, type TickBus } from '../../src/index.ts';
import { spawnSync } from 'node:child_process';
import { startRedis, type RedisServer } from './redis-server.ts';
import { startCluster, type RedisCluster } from './redis-cluster.ts';
import { silentLogger } from './quiet.ts';

/** What the delivery tests ask of their Redis: a URL, and redis-cli. */
export interface TestRedis {
  readonly url: string;
  /** redis-cli for one command; on a cluster it follows MOVED to the key's shard (-c). */
  cli(...args: string[]): string;
  /** The same command on every node (CLIENT KILL, say). */
  cliAll(...args: string[]): string[];
}

export type Backend = 'redis' | 'cluster';

export interface RedisBuses {
  /** The suite's Redis (started in `before`). */
  readonly server: TestRedis;
  /** A bus on it, with quick reconnection; closed after the suite. */
  bus(extra?: BusOptions): TickBus;
}

function clusterRedis(cluster: RedisCluster): TestRedis {
  const cli = (port: number, args: string[]) => {
    const out = spawnSync('redis-cli', ['-c', '-p', String(port), ...args], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${out.stderr}`);
    return out.stdout.trim();
  };
  return {
    url: cluster.url,
    cli: (...args) => cli((cluster.nodes[0] as { port: number }).port, args),
    cliAll: (...args) => cluster.nodes.filter((n) => n.alive).map((n) => cli(n.port, args)),
  };
}

/**
 * Call inside a describe(): starts a redis-server (or a 3+3 Redis Cluster) before its tests
 * and cleans up after them.
 */
export function useRedisBuses(catalogs: readonly Catalog[], backend: Backend = 'redis'): RedisBuses {
  let server: TestRedis | undefined;
  let stop: (() => Promise<void>) | undefined;
  const buses: TickBus[] = [];
  before(async () => {
    if (backend === 'cluster') {
      const cluster = await startCluster();
      server = clusterRedis(cluster);
      stop = () => cluster.stop();
    } else {
      const one: RedisServer = await startRedis();
      server = { url: one.url, cli: (...args) => one.cli(...args), cliAll: (...args) => [one.cli(...args)] };
      stop = () => one.stop();
    }
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await stop?.();
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
