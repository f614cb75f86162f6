// The private Redis Clusters of bench/cluster.ts: one shard (a single redis-server with
// cluster mode on that holds all 16384 slots, started here, since redis-cli --cluster
// create needs 3 masters) or three and more (test/harness/redis-cluster.ts, no replicas).
// Every node runs on free ports (never 6379) in a temporary directory, is stopped when the
// benchmark ends, fails or is interrupted, and by a watchdog should the benchmark be
// killed. Also: the CPU time of a process and of the whole machine, read from /proc at
// the same moment for every shard, and each shard's command counts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answersPing } from '../src/runtime/backend.ts';
import { startCluster } from '../test/harness/redis-cluster.ts';
import { freePort } from '../test/harness/redis-server.ts';
import { guardProcess, killAllWorkers } from './lib/proc.ts';

const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One master of a bench cluster. */
export interface Shard {
  readonly port: number;
  /** redis-server's process id (INFO server), for its CPU time from /proc. */
  readonly pid: number;
  /** The first and last slot it serves ("0-16383"; "0-5460" ...). */
  readonly slots: string;
  /** One command through redis-cli (no -c). */
  cli(...args: string[]): string;
}

export interface BenchCluster {
  readonly shards: readonly Shard[];
  /** redis-cluster://127.0.0.1:p1,... */
  readonly url: string;
  readonly version: string;
  stop(): Promise<void>;
}

function cliOn(port: number, args: string[]): string {
  const out = spawnSync('redis-cli', ['-h', HOST, '-p', String(port), ...args], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')} failed: ${out.stderr}`);
  return out.stdout.trim();
}

function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * One redis-server with cluster mode on, given every slot: a real one-shard cluster
 * (cluster_state:ok, MOVED-free routing, SPUBLISH), with the harness's settings. No
 * replica: the benchmark measures the masters' work only.
 */
async function startOneShard(): Promise<{ port: number; stop: () => Promise<void>; pid: number; dir: string }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let busPort = await freePort();
    while (busPort === port) busPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tickbus-bench-cluster-'));
    // The settings of test/harness/redis-cluster.ts's nodes, so both configurations run alike.
    const child = spawn(
      'redis-server',
      [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', HOST, '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000',
        '--cluster-replica-validity-factor', '0', '--repl-diskless-sync-delay', '0',
        '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const keep = (d: Buffer) => (log = (log + d.toString()).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const stop = async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited(child);
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    };
    process.once('exit', () => child.kill('SIGKILL'));
    try {
      const deadline = Date.now() + 10_000;
      while (!(await answersPing(HOST, port, 500))) {
        if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${child.exitCode} during start-up:\n${log}`);
        if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10 s.`);
        await sleep(25);
      }
      // Another server that took the port meanwhile would answer PING just as well.
      if (infoField(cliOn(port, ['INFO', 'server']), 'process_id') !== String(child.pid)) throw new Error(`Port ${port} is served by another process.`);
      cliOn(port, ['CLUSTER', 'ADDSLOTSRANGE', '0', '16383']);
      for (const until = Date.now() + 10_000; ; ) {
        const info = cliOn(port, ['CLUSTER', 'INFO']);
        if (info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384')) break;
        if (Date.now() > until) throw new Error(`The one-shard cluster on port ${port} did not reach cluster_state:ok within 10 s:\n${info}`);
        await sleep(50);
      }
      return { port, stop, pid: child.pid as number, dir };
    } catch (error) {
      await stop();
      if (attempt >= 3) throw error;
    }
  }
}

function shardOf(port: number): Shard {
  const pid = Number(infoField(cliOn(port, ['INFO', 'server']), 'process_id'));
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`No process id from the redis-server on port ${port}.`);
  const myself = cliOn(port, ['CLUSTER', 'NODES'])
    .split('\n')
    .find((line) => line.split(' ')[2]?.split(',').includes('myself'));
  const slots = myself?.trim().split(' ').slice(8).join(' ') ?? '';
  return { port, pid, slots, cli: (...args) => cliOn(port, args) };
}

/** The cluster running now, for the signal handlers. */
let running: BenchCluster | undefined;
let handlersInstalled = false;

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${signal}: stopping the workers and the cluster.`);
      killAllWorkers();
      void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
    });
  }
}

/**
 * Starts a cluster of `shards` masters without replicas: 1, or 3 and more (2 cannot be
 * created with redis-cli --cluster create, which the harness uses).
 */
export async function startBenchCluster(shards: number): Promise<BenchCluster> {
  installSignalHandlers();
  if (shards === 2 || shards < 1) throw new Error(`A bench cluster has 1 shard or 3 and more, not ${shards}.`);
  let ports: number[];
  let stopNodes: () => Promise<void>;
  const releases: Array<() => void> = [];
  if (shards === 1) {
    const one = await startOneShard();
    releases.push(guardProcess(one.pid, one.dir));
    ports = [one.port];
    stopNodes = one.stop;
  } else {
    const cluster = await startCluster({ masters: shards, replicasPerMaster: 0, nodeTimeoutMs: 1000 });
    ports = (await cluster.masters()).map((m) => m.port);
    for (const node of cluster.nodes) {
      const pid = Number(infoField(node.cli('INFO', 'server'), 'process_id'));
      if (Number.isInteger(pid) && pid > 0) releases.push(guardProcess(pid, node.dir));
    }
    stopNodes = () => cluster.stop();
  }
  if (ports.includes(6379)) throw new Error('refusing to benchmark on port 6379');
  const list = ports.map(shardOf).sort((a, b) => Number(a.slots.split('-')[0]) - Number(b.slots.split('-')[0]));
  let stopped: Promise<void> | undefined;
  const cluster: BenchCluster = {
    shards: list,
    url: `redis-cluster://${list.map((s) => `${HOST}:${s.port}`).join(',')}`,
    version: infoField(list[0]?.cli('INFO', 'server') ?? '', 'redis_version') ?? 'unknown',
    stop: () =>
      (stopped ??= stopNodes().finally(() => {
        for (const release of releases) release();
        if (running === cluster) running = undefined;
      })),
  };
  running = cluster;
  return cluster;
}

// ---- CPU time ------------------------------------------------------------------------

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * A process's CPU time so far, every thread, in microseconds: the scheduler's running time
 * of each thread (/proc/<pid>/task/<tid>/schedstat, in ns), which is what INFO cpu reports
 * for redis-server, but read at once for every shard and without a command to the server.
 * /proc/<pid>/stat counts in clock ticks (10 ms), too coarse for a shard at a tenth of a core.
 */
export function procCpuMicros(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1000;
}

/** The whole machine's CPU time so far (/proc/stat), busy and in all, in microseconds of CPU. */
export function machineCpuMicros(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, ...values] = line.trim().split(/\s+/);
  const n = values.map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (n[3] ?? 0) + (n[4] ?? 0);
  return { busy: ((total - idle) / CLOCK_TICKS) * 1e6, total: (total / CLOCK_TICKS) * 1e6 };
}

/** Calls of each command a shard ran (INFO commandstats; commands run by scripts included). */
export function commandCalls(shard: Shard): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of shard.cli('INFO', 'commandstats').matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}
