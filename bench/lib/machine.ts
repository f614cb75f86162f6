// The machine a benchmark ran on, for its report: CPUs, CPU model, load, Node and
// redis-server versions, and the versions of the libraries measured.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg } from 'node:os';

export interface Machine {
  /** `nproc`: the CPUs this process may use. */
  cpus: number;
  cpuModel: string;
  /** 1, 5 and 15 minute load averages when the benchmark started. */
  loadAverage: [number, number, number];
  node: string;
  redisServer: string;
  /** Versions of the packages measured (redis = node-redis). */
  packages: Record<string, string>;
}

function run(command: string, args: string[]): string | undefined {
  const out = spawnSync(command, args, { encoding: 'utf8' });
  return out.status === 0 ? out.stdout : undefined;
}

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function describeMachine(packages: readonly string[]): Machine {
  const nproc = Number(run('nproc', [])?.trim());
  const model = /Model name:\s*(.+)/.exec(run('lscpu', []) ?? '')?.[1]?.trim();
  const redis = /v=(\S+)/.exec(run('redis-server', ['--version']) ?? '')?.[1];
  const [l1, l5, l15] = loadavg();
  return {
    cpus: Number.isInteger(nproc) && nproc > 0 ? nproc : availableParallelism(),
    cpuModel: model ?? cpus()[0]?.model ?? 'unknown',
    loadAverage: [round2(l1 ?? 0), round2(l5 ?? 0), round2(l15 ?? 0)],
    node: process.version,
    redisServer: redis ?? 'unknown',
    packages: Object.fromEntries(packages.map((p) => [p, packageVersion(p)])),
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

export function machineLine(m: Machine): string {
  const pkgs = Object.entries(m.packages)
    .map(([name, v]) => `${name} ${v}`)
    .join(', ');
  return `${m.cpus} CPUs (${m.cpuModel}), load ${m.loadAverage.join(' ')}, node ${m.node}, redis-server ${m.redisServer}; ${pkgs}`;
}
