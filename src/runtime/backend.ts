// The embedded default for `tickbus up`: use REDIS_URL when it is set; else a Redis on
// localhost:6379 when one answers; else a private redis-server started for the purpose
// when the binary is on PATH; else the in-memory transport (one process only), with a
// warning. The choice is printed, so nobody wonders where their data went.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maskUrl, redisUrlFromEnv } from '../core/config.ts';

export type Backend =
  | { kind: 'redis'; url: string; source: 'REDIS_URL' | 'option' | 'localhost' | 'private'; stop(): Promise<void> }
  | { kind: 'memory'; source: 'fallback'; stop(): Promise<void> };

export interface BackendChoice {
  redisUrl?: string;
  env?: NodeJS.ProcessEnv;
  /** Where to look for an already running Redis. @default 127.0.0.1:6379 */
  localPort?: number;
  /** Skip the localhost probe (tests use this to exercise the private server). */
  probeLocal?: boolean;
  /** The redis-server binary to start. @default 'redis-server' */
  redisServer?: string;
}

const none = () => Promise.resolve();

export async function chooseBackend(choice: BackendChoice = {}): Promise<Backend> {
  if (choice.redisUrl) return { kind: 'redis', url: choice.redisUrl, source: 'option', stop: none };
  const envUrl = redisUrlFromEnv(choice.env);
  if (envUrl) return { kind: 'redis', url: envUrl, source: 'REDIS_URL', stop: none };
  const localPort = choice.localPort ?? 6379;
  if (choice.probeLocal !== false && (await answersPing('127.0.0.1', localPort))) {
    return { kind: 'redis', url: `redis://127.0.0.1:${localPort}`, source: 'localhost', stop: none };
  }
  const binary = choice.redisServer ?? 'redis-server';
  if (hasRedisServer(binary)) return startPrivateRedis(binary);
  return { kind: 'memory', source: 'fallback', stop: none };
}

export function describeBackend(backend: Backend): string {
  switch (backend.source) {
    case 'option':
      return `Redis at ${maskUrl(backend.kind === 'redis' ? backend.url : '')} (--redis-url)`;
    case 'REDIS_URL':
      return `Redis at ${maskUrl(backend.kind === 'redis' ? backend.url : '')} (REDIS_URL)`;
    case 'localhost':
      return `the Redis already running at ${backend.kind === 'redis' ? backend.url : ''}`;
    case 'private':
      return `a private redis-server at ${backend.kind === 'redis' ? backend.url : ''}, started for this run and stopped on exit (no persistence)`;
    case 'fallback':
      return 'the in-memory transport: no Redis was found (set REDIS_URL, run one on localhost:6379, or install redis-server). Other processes cannot connect to it.';
  }
}


function hasRedisServer(binary: string): boolean {
  const probe = spawnSync(binary, ['--version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
}

export function answersPing(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.on('error', () => done(false));
  });
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startPrivateRedis(binary: string): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'tickbus-up-'));
  const port = await freePort();
  const child: ChildProcess = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  while (!(await answersPing('127.0.0.1', port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      return { kind: 'memory', source: 'fallback', stop: none };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  return {
    kind: 'redis',
    url: `redis://127.0.0.1:${port}`,
    source: 'private',
    stop: async () => {
      process.off('exit', kill);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
