// The command's entry point: bin/tickbus.js runs its compiled form from dist/; the tests and
// development run it from source (`node --import tsx src/cli/run.ts`).
import { main } from './main.ts';

process.exitCode = await main(process.argv);
