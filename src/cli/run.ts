// The command's entry point: bin/tickbus.js runs its compiled form from dist/; the tests and
// development run it from source (`node --import tsx src/cli/run.ts`).
import { main } from './main.ts';

// A reader that went away (`tickbus tail | head`, `tickbus --help | head -3`) makes the next
// write fail with EPIPE, an 'error' event nobody listens to, which Node prints as a crash.
// The shell's convention is a quiet exit: whoever wanted the output has what they read.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

process.exitCode = await main(process.argv);
