// Work nobody awaits: a timer's round (lease renewals, sweeps, heartbeats), a reaction to
// an event (resubscribing after a reconnection, leaving a room when a socket closes). Node
// ends the process on a rejection nobody observes, so a Redis restart under such work used
// to kill a service that would otherwise have recovered by itself. Every such task goes
// through here: a failed round is counted (tickbus_background_failures_total{task,code}),
// logged in one compact line (no stack: while Redis is down the same failure repeats every
// round), at most once per task every few seconds, and left to the task's next round.
// The lint rule no-floating-promises (with ignoreVoid off) keeps new fire-and-forget calls
// from skipping this.
import type { Counter } from 'prom-client';
import { DEFAULTS } from './defaults.ts';
import { BusError } from './errors.ts';
import type { Logger } from './logger.ts';
import { LogThrottle } from './log-throttle.ts';

export class Background {
  readonly #logger: Logger;
  readonly #counter: Counter<'task' | 'code'> | undefined;
  readonly #throttles = new Map<string, LogThrottle>();
  readonly #logEveryMs: number;

  constructor(logger: Logger, counter?: Counter<'task' | 'code'>, logEveryMs: number = DEFAULTS.backgroundLogEveryMs) {
    this.#logger = logger;
    this.#counter = counter;
    this.#logEveryMs = logEveryMs;
  }

  /** Starts `work` without awaiting it; a throw or a rejection is reported as a failed round of `task`. */
  run(task: string, work: () => unknown): void {
    try {
      const result = work();
      if (result instanceof Promise) result.catch((error: unknown) => this.failed(task, error));
    } catch (error) {
      this.failed(task, error);
    }
  }

  /** A `.catch` handler that reports a failed round of `task`. */
  catcher(task: string, fields?: Record<string, unknown>): (error: unknown) => void {
    return (error) => this.failed(task, error, fields);
  }

  /** Reports one failed round of `task`: counted always, logged compactly and throttled. */
  failed(task: string, error: unknown, fields?: Record<string, unknown>): void {
    const code = errorCode(error);
    try {
      this.#counter?.labels(task, code).inc();
      let throttle = this.#throttles.get(task);
      if (!throttle) this.#throttles.set(task, (throttle = new LogThrottle(1, this.#logEveryMs)));
      const suppressed = throttle.take();
      if (suppressed < 0) return;
      this.#logger.warn({ task, code, error: errorText(error), ...(suppressed > 0 ? { suppressed } : {}), ...fields }, `${task} failed; retrying`);
    } catch {
      // Reporting must never be what fails: a logger or a metric gone wrong is not worth a crash.
    }
  }
}

/** A stable label for an error: a tickbus code, else the error's own code or class name. */
export function errorCode(error: unknown): string {
  if (error instanceof BusError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  if (error instanceof Error) return error.name.slice(0, 40);
  return 'unknown';
}

/** The message of an error on one short line. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Waits for `work`, at most `ms` (cleaning up after a failure must not hang on a Redis that is away). */
export async function withinMs(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * After a failed start-up: takes down what did start, one step after the other in the order
 * given (a step that fails does not stop the next; one for something never started returns
 * undefined), all within `ms`: a Redis that is away must not keep a failed start-up running.
 */
export async function cleanUpWithin(steps: ReadonlyArray<() => Promise<unknown> | undefined>, ms: number = DEFAULTS.startupCleanupMs): Promise<void> {
  await withinMs(
    (async () => {
      for (const step of steps) {
        try {
          await step();
        } catch {
          // Cleaning up goes on: what is left to close matters more than why this one failed.
        }
      }
    })(),
    ms,
  );
}
