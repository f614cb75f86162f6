// `tickbus tail`: live messages of a channel or pattern, validated against the catalogs;
// invalid ones are shown as invalid, with the reason, not hidden.
import type { Command } from 'commander';
import type { BusError } from '../../core/errors.ts';
import { ConfigError, DecodeError, PositionError } from '../../core/errors.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';

interface TailOptions extends ConnectionOptions {
  json?: boolean;
  count?: string;
  after?: string;
}

export function registerTail(program: Command): void {
  addConnectionOptions(
    program
      .command('tail')
      .description('Print live messages of a channel or a glob pattern, validated against the catalogs.')
      .argument('<channel>', 'a channel name (TICKER_UPDATES_AAPL) or a Redis glob (TICKER_UPDATES_*)')
      .option('--json', 'one JSON object per line, for machines')
      .option('-n, --count <n>', 'exit after this many messages (valid or not)')
      .option('--after <position>', 'on a channel with history: first replay what came after this position (a message\'s "position"), then go live'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus tail TICKER_UPDATES_AAPL
  $ tickbus tail 'TICKER_UPDATES_*' --json
  $ tickbus tail BROKER_REGISTRATION -n 1
  $ tickbus tail TICKER_UPDATES_AAPL --after 1732233600000-0 --json`,
    )
    .action(async (channel: string, options: TailOptions) => {
      const limit = options.count === undefined ? Infinity : Number(options.count);
      if (limit !== Infinity && (!Number.isInteger(limit) || limit < 1)) throw new CliError(`--count must be a whole number of at least 1, got "${options.count}".`, ExitCode.Usage);
      const bus = await commandBus(options);
      let seen = 0;
      let finish!: () => void;
      const done = new Promise<void>((r) => (finish = r));
      const count = () => {
        if (++seen >= limit) finish();
      };
      bus.on('error', (error: BusError) => {
        if (seen >= limit) return;
        if (!error.channel) {
          process.stderr.write(`tickbus: ${error.message}\n`);
          return;
        }
        const detail = error instanceof DecodeError ? error.preview : undefined;
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ channel: error.channel, valid: false, code: error.code, reason: error.message, preview: detail })}\n`);
        } else {
          process.stdout.write(`${time()} ${error.channel} INVALID ${error.code}: ${error.message}\n`);
        }
        count();
      });
      let subscription;
      try {
        subscription = await bus.subscribe(
          channel,
          (data, ctx) => {
            if (seen >= limit) return;
            if (options.json) {
              process.stdout.write(`${JSON.stringify({ channel: ctx.channel, valid: true, sender: ctx.sender, timestamp: ctx.timestamp, position: ctx.position, replayed: ctx.replayed || undefined, data })}\n`);
            } else {
              process.stdout.write(`${time()} ${ctx.channel}${ctx.sender ? ` <${ctx.sender}>` : ''}${ctx.position ? ` @${ctx.position}` : ''} ${JSON.stringify(data)}\n`);
            }
            count();
          },
          options.after === undefined ? {} : { resumeAfter: options.after },
        );
      } catch (error) {
        await bus.close();
        if (error instanceof ConfigError || error instanceof PositionError) throw new CliError(error.message, ExitCode.Usage);
        throw error;
      }
      const resume = subscription.resume;
      if (resume?.status === 'complete') process.stderr.write(`replayed ${resume.replayed} message(s) from history after ${resume.after}\n`);
      else if (resume?.status === 'gap') process.stderr.write(`history does not hold ${resume.after} (oldest kept: ${resume.oldest ?? 'none'}): messages may be missing; replayed the ${resume.replayed} it holds after it, then live\n`);
      else if (resume?.status === 'unavailable') process.stderr.write(`${channel} keeps no history: live only\n`);
      if (!options.json) process.stderr.write(`tailing ${channel} on ${bus.context.transport.target} (Ctrl-C to stop)\n`);
      const stop = () => finish();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await done;
      await bus.close();
    });
}

function time(): string {
  return new Date().toISOString().slice(11, 23);
}
