// Running a long-lived service from the CLI: stop it on SIGINT/SIGTERM within a bounded
// time, and say so.

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
