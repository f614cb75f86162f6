// Process plumbing for benchmarks: the parent forks TypeScript workers and talks to them
// over IPC with typed messages; a worker serves the parent's commands and exits when the
// parent lets go of it (or dies). Every forked worker is killed when the parent exits, so
// a failed or interrupted run leaves no process behind.
import { fork, spawn, type ChildProcess } from 'node:child_process';

/** IPC messages are plain objects told apart by `type`. */
export interface Tagged {
  type: string;
}

type Of<M extends Tagged, K extends M['type']> = Extract<M, { type: K }>;

/** What a worker sends when it fails; the parent turns it into a rejected wait. */
interface WorkerFailure {
  type: 'failed';
  message: string;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Kills every worker still running (for signal handlers; exit does it anyway). */
export function killAllWorkers(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * Kills `pid` and removes `dir` should this process die without stopping them itself (on
 * SIGKILL, exit handlers do not run): a tiny watchdog child acts when its IPC channel to
 * us closes. Returns the release to call once the guarded process was stopped normally.
 */
export function guardProcess(pid: number, dir = ''): () => void {
  const watchdog = `const [pid, dir] = process.argv.slice(1);
process.on('disconnect', () => {
  try { process.kill(Number(pid), 'SIGKILL'); } catch {}
  if (dir) require('node:fs').rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});`;
  const child = spawn(process.execPath, ['-e', watchdog, String(pid), dir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.unref();
  child.channel?.unref();
  return () => {
    child.kill('SIGKILL');
  };
}

/** A forked worker: send commands, await its messages by type, stop it. */
export class Worker<In extends Tagged, Out extends Tagged> {
  readonly name: string;
  readonly child: ChildProcess;
  readonly #inbox: Out[] = [];
  readonly #waiters = new Set<{ type: string; resolve: (m: Out) => void; reject: (e: Error) => void }>();
  #failure: Error | undefined;
  readonly #exited: Promise<void>;

  constructor(name: string, script: string | URL, args: readonly string[]) {
    this.name = name;
    this.child = fork(script, [...args], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    live.add(this.child);
    this.#exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        this.#fail(new Error(`${name} exited (${signal ?? `code ${code}`})`));
        resolve();
      });
    });
    this.child.on('error', (error) => this.#fail(new Error(`${name}: ${error.message}`)));
    this.child.on('message', (raw) => {
      const message = raw as Out | WorkerFailure;
      if (message.type === 'failed') {
        this.#fail(new Error(`${name} failed: ${(message as WorkerFailure).message}`));
        return;
      }
      for (const w of this.#waiters) {
        if (w.type === message.type) {
          this.#waiters.delete(w);
          w.resolve(message as Out);
          return;
        }
      }
      this.#inbox.push(message as Out);
    });
  }

  send(message: In): void {
    if (this.#failure) throw this.#failure;
    this.child.send(message);
  }

  /** The next message of a type (queued or still to come); rejects on timeout or failure. */
  next<K extends Out['type']>(type: K, timeoutMs: number, what: string = type): Promise<Of<Out, K>> {
    const queued = this.#inbox.findIndex((m) => m.type === type);
    if (queued >= 0) return Promise.resolve(this.#inbox.splice(queued, 1)[0] as Of<Out, K>);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const waiter = {
        type,
        resolve: (m: Out) => {
          clearTimeout(timer);
          resolve(m as Of<Out, K>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(new Error(`${e.message} (while awaiting ${what})`, { cause: e }));
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new TimeoutError(`${this.name}: no ${what} within ${Math.round(timeoutMs / 1000)} s.`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Lets the worker go (it closes its connections and exits); kills it after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const w of this.#waiters) w.reject(this.#failure);
    this.#waiters.clear();
  }
}

export class TimeoutError extends Error {}

/**
 * The worker side: passes the parent's commands to `onCommand` and returns a typed send.
 * When the parent disconnects (done, or dead), runs `close` and exits; an error in a
 * command or anywhere else is reported to the parent and ends the worker.
 */
export function serveParent<In extends Tagged, Out extends Tagged>(onCommand: (command: In) => void | Promise<void>, close: () => Promise<void>): (message: Out) => void {
  if (!process.send) throw new Error('This is a benchmark worker: run the benchmark (e.g. bench/pubsub.ts), which starts it.');
  const sendRaw = process.send.bind(process);
  const fail = (error: unknown): void => {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (process.connected) sendRaw({ type: 'failed', message } satisfies WorkerFailure, () => process.exit(1));
    else process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  process.on('message', (raw) => {
    try {
      const result = onCommand(raw as In);
      if (result instanceof Promise) result.catch(fail);
    } catch (error) {
      fail(error);
    }
  });
  process.once('disconnect', () => {
    const timer = setTimeout(() => process.exit(1), 5000);
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
    timer.unref();
  });
  return (message: Out) => {
    if (process.connected) sendRaw(message);
  };
}
