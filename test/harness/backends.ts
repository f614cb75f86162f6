// One Redis or a Redis Cluster behind the same small surface, for tests that run on both:
// a URL for tickbus, redis-cli for checks (following MOVED on a cluster), and clean-up.
import { spawnSync } from 'node:child_process';
import { startRedis } from './redis-server.ts';
import { startCluster } from './redis-cluster.ts';

export type Backend = 'redis' | 'cluster';

export const BACKENDS: readonly Backend[] = ['redis', 'cluster'];

export interface TestRedis {
  readonly backend: Backend;
  readonly url: string;
  /** redis-cli for one command; on a cluster it follows MOVED to the key's shard (-c). */
  cli(...args: string[]): string;
  /** The same command on every live node. */
  cliAll(...args: string[]): string[];
  /** Empties every shard. */
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

/** A private redis-server, or a 3+3 Redis Cluster, on free ports. */
export async function startBackend(backend: Backend): Promise<TestRedis> {
  if (backend === 'redis') {
    const one = await startRedis();
    return {
      backend,
      url: one.url,
      cli: (...args) => one.cli(...args),
      cliAll: (...args) => [one.cli(...args)],
      flushAll: () => Promise.resolve(void one.cli('FLUSHALL')),
      stop: () => one.stop(),
    };
  }
  const cluster = await startCluster();
  const cli = (port: number, args: string[]) => {
    const out = spawnSync('redis-cli', ['-c', '-p', String(port), ...args], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${out.stderr}`);
    return out.stdout.trim();
  };
  const live = () => cluster.nodes.filter((n) => n.alive);
  return {
    backend,
    url: cluster.url,
    cli: (...args) => cli((live()[0] as { port: number }).port, args),
    cliAll: (...args) => live().map((n) => cli(n.port, args)),
    async flushAll() {
      for (const master of await cluster.masters()) master.cli('FLUSHALL');
    },
    stop: () => cluster.stop(),
  };
}
