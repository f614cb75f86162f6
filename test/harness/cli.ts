// Drives the `tickbus` command as a user would: as a subprocess, reading its output and
// exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The command as the package ships it: compiled JavaScript in dist/ (the package test runs it). */
export const TICKBUS_BIN = fileURLToPath(new URL('../../bin/tickbus.js', import.meta.url));
/** The command from source, as the tests run it: always current, no build step needed. */
export const TICKBUS_COMMAND: readonly string[] = [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../../src/cli/run.ts', import.meta.url))];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end, asynchronously (the test process may be serving it). */
export function runProcess(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not exit within ${timeoutMs} ms. stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<CliResult> {
  const [file, ...rest] = TICKBUS_COMMAND;
  return runProcess(file as string, [...rest, ...args], { TICKBUS_LOG_LEVEL: 'silent', ...env }, timeoutMs);
}

/** A long-running tickbus process whose output is collected as it comes. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #group: boolean;

  /** Runs `tickbus args…`, or the `command` given instead (e.g. npm start). */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, command?: string[]) {
    const [file, ...rest] = command ?? [...TICKBUS_COMMAND, ...args];
    // A wrapper (npm, sh) may not pass signals on: give it a process group to signal whole.
    this.#group = command !== undefined;
    this.child = spawn(file as string, rest, { env: { ...process.env, TICKBUS_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: this.#group });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    process.once('exit', () => this.#signal('SIGKILL'));
  }

  async waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stderr', timeoutMs = 15_000): Promise<RegExpExecArray> {
    // (Polls: output arrives in chunks that may split a line.)
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this[stream]);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${pattern} on ${stream}. stdout: ${this.stdout} stderr: ${this.stderr}`);
      if (this.child.exitCode !== null) throw new Error(`tickbus exited (${this.child.exitCode}) before printing ${pattern}. stderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.#signal(signal);
    return this.exited;
  }

  #signal(signal: NodeJS.Signals): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      if (this.#group && this.child.pid !== undefined) process.kill(-this.child.pid, signal);
      else this.child.kill(signal);
    } catch {
      // already gone
    }
  }
}
