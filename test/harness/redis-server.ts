// Private redis-server processes for tests and benchmarks: each on a free port, with no
// persistence (unless asked), in a temporary directory, stopped when the test ends. A
// missing redis-server binary is a hard failure, never a skip.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answersPing, freePort } from '../../src/runtime/backend.ts';

export { freePort };

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL, leaving its directory (for restart with AOF). */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>;
  /** Runs one command through redis-cli and returns its output. */
  cli(...args: string[]): string;
}

export interface StartOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes']. */
  args?: string[];
  port?: number;
}

let binaryChecked = false;

function requireBinary(): void {
  if (binaryChecked) return;
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'redis-server was not found on PATH. The integration tests need it: install it (Debian: apt-get install redis-server), or run .ci/run, which installs it.',
    );
  }
  binaryChecked = true;
}

function spawnServer(port: number, dir: string, args: string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

async function waitUp(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${child.exitCode} during start-up.`);
    if (await answersPing('127.0.0.1', port, 500)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms.`);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRedis(options: StartOptions = {}): Promise<RedisServer> {
  requireBinary();
  const args = options.args ?? [];
  const dir = mkdtempSync(join(tmpdir(), 'tickbus-redis-'));
  // A free port can be taken between probing and binding: retry on a fresh one.
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort());
    let child = spawnServer(port, dir, args);
    try {
      await waitUp(port, child);
    } catch (error) {
      child.kill('SIGKILL');
      if (attempt < 3 && options.port === undefined) continue;
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const server: RedisServer = {
      port,
      url: `redis://127.0.0.1:${port}`,
      dir,
      get process() {
        return child;
      },
      async stop() {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited(child);
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
      },
      async kill() {
        child.kill('SIGKILL');
        await exited(child);
      },
      async restart() {
        child = spawnServer(port, dir, args);
        await waitUp(port, child);
      },
      cli(...cmd: string[]) {
        const out = spawnSync('redis-cli', ['-p', String(port), ...cmd], { encoding: 'utf8' });
        if (out.status !== 0) throw new Error(`redis-cli ${cmd.join(' ')} failed: ${out.stderr}`);
        return out.stdout.trim();
      },
    };
    // Never leave a server behind if the test process dies first.
    process.once('exit', () => child.kill('SIGKILL'));
    return server;
  }
}
