// The `tickbus` command line: one sub-command per file under commands/.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { describeError, exitCodeFor } from './errors.ts';
import { ExitCode } from './exit-codes.ts';
import { registerTail } from './commands/tail.ts';
import { registerPublish } from './commands/publish.ts';
import { registerSchema } from './commands/schema.ts';
import { registerBroker } from './commands/broker.ts';
import { registerUp } from './commands/up.ts';
import { registerRegistration } from './commands/register.ts';
import { registerHealth } from './commands/health.ts';
import { registerDeadLetters } from './commands/dead-letters.ts';
import { registerGateway } from './commands/gateway.ts';
import { registerJobs } from './commands/jobs.ts';
import { registerPatterns } from './commands/patterns.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('tickbus')
    .description('tickbus: typed, schema-validated real-time channels over Redis for trading systems.')
    .version(pkg.version, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Environment:
  REDIS_URL           redis://[user:password@]host:port[/db] (rediss:// for TLS)
  TICKBUS_LOG_LEVEL   trace | debug | info | warn | error | silent

Exit codes:
  0 ok, 1 failure, 2 usage error, 3 invalid message, 4 Redis unreachable, 5 no receiver, 6 not found`,
    );
  registerUp(program);
  registerBroker(program);
  registerGateway(program);
  registerPatterns(program);
  registerTail(program);
  registerPublish(program);
  registerRegistration(program);
  registerHealth(program);
  registerDeadLetters(program);
  registerJobs(program);
  registerSchema(program);
  program.exitOverride();
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    process.stderr.write(`tickbus: ${describeError(error)}\n`);
    return exitCodeFor(error);
  }
}

