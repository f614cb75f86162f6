// Running a long-lived service from the CLI: stop it on SIGINT/SIGTERM within a bounded
// time, and say so; a start-up that fails says in one line what to change and exits; and a
// rejection that nothing observed is logged and counted, not a crash (see guardProcess).
import { ErrorCode, ListenError, BusError } from '../../core/errors.ts';
import type { Background } from '../../core/background.ts';
import type { Logger } from '../../core/logger.ts';
import { LogThrottle } from '../../core/log-throttle.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import { CliError, exitCodeFor } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';

export async function runUntilSignal(stop: () => Promise<void>, log: (line: string) => void, timeoutMs = 10_000): Promise<void> {
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log(`${signal}: shutting down (at most ${timeoutMs / 1000} s)…`);
      const timer = setTimeout(() => {
        log('shutdown took too long; exiting anyway.');
        process.exit(1);
      }, timeoutMs);
      timer.unref();
      stop().then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          log(`error during shutdown: ${(error as Error).message}`);
          clearTimeout(timer);
          resolve();
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * A failed start-up as the one line the user reads: what went wrong and which option
 * changes it. `redis` is where the service looked for Redis (shown when it was not there);
 * `portOption` is the option that moves the service's port.
 */
export function startupFailure(error: unknown, redis: string | undefined, portOption = '--port'): Error {
  if (error instanceof ListenError) {
    const hostOption = portOption.replace(/port$/, 'host');
    if (error.reason === 'EADDRINUSE') return new CliError(`port ${error.port} is in use: pass ${portOption} <free port> (or stop what holds it).`, ExitCode.Failure);
    return new CliError(`${error.message.replace(/\.$/, '')}: pass another ${portOption} (or ${hostOption}).`, ExitCode.Failure);
  }
  if (error instanceof BusError && error.code === ErrorCode.NotConnected) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message.replace(/\s+/g, ' ').slice(0, 120)})` : '';
    return new CliError(`Redis at ${redis ?? 'the configured URL'} is unreachable${cause}: start it, or pass --redis-url <url> (or set REDIS_URL).`, ExitCode.Unreachable);
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * After a failed start-up: everything started has been taken down, so the process ends by
 * itself. Should a handle still be open (a library's socket that ignores close), exit anyway,
 * shortly: a service that failed to start must never stay up half-dead.
 */
export function exitSoonAfter(error: Error): Error {
  const code = exitCodeFor(error);
  setTimeout(() => process.exit(code), DEFAULTS.startupCleanupMs).unref();
  return error;
}

/**
 * The last resort of a running service: an unhandled rejection is logged (with its stack:
 * it is a bug) and counted in tickbus_background_failures_total{task="unhandled_rejection"},
 * and the service keeps serving. Why not exit: every known fire-and-forget path is observed
 * (core/background.ts; lint keeps it so), so what is left is work nobody waited for, whose
 * part retries on its next round, while /health still reports the real state (Redis, feed).
 * Exiting would drop every WebSocket client and every lease for what is, in practice, a
 * transient Redis error — the crash of issue 14. An uncaught exception still ends the
 * process: a synchronous throw out of a callback can leave state half-updated.
 * Returns the function that removes the handler (at shutdown).
 */
export function guardProcess(background: Background, logger: Logger): () => void {
  const throttle = new LogThrottle(1, DEFAULTS.backgroundLogEveryMs);
  const onRejection = (reason: unknown) => {
    background.failed('unhandled_rejection', reason);
    const suppressed = throttle.take();
    if (suppressed >= 0) logger.error({ err: reason, ...(suppressed > 0 ? { suppressed } : {}) }, 'unhandled rejection (a bug: please report it); the service keeps running');
  };
  process.on('unhandledRejection', onRejection);
  return () => process.off('unhandledRejection', onRejection);
}
