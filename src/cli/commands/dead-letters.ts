// `tickbus dead-letters`: what a durable channel's consumers gave up on, with the error and
// the attempts, and a way to put messages back once the cause is fixed.
import type { Command } from 'commander';
import { DEFAULT_DURABLE_MAXLEN } from '../../core/channel.ts';
import { deadLetterKey, streamKey } from '../../core/keys.ts';
import { preview } from '../../core/errors.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';

interface DeadLetterOptions extends ConnectionOptions {
  json?: boolean;
  count?: string;
  requeue?: boolean;
}

export function registerDeadLetters(program: Command): void {
  addConnectionOptions(
    program
      .command('dead-letters')
      .description("List a durable channel's dead letters (messages its handlers failed on every attempt), or put them back on the channel.")
      .argument('<channel>', 'a durable channel, e.g. ORDER_REQUESTS')
      .option('--json', 'one JSON object per line, for machines')
      .option('-n, --count <n>', 'at most this many, oldest first', '100')
      .option('--requeue', 'move them back onto the channel (as new messages) and delete them from the dead-letter stream'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus dead-letters ORDER_REQUESTS
  $ tickbus dead-letters ORDER_REQUESTS --json -n 10
  $ tickbus dead-letters ORDER_REQUESTS --requeue     # after fixing what made the handler fail`,
    )
    .action(async (channel: string, options: DeadLetterOptions) => {
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1) throw new CliError(`--count must be a whole number of at least 1, got "${options.count}".`, ExitCode.Usage);
      const bus = await commandBus(options);
      const found = bus.context.resolver.resolve(channel);
      if (found && found.channel.delivery !== 'durable') {
        await bus.close();
        throw new CliError(`"${channel}" is not a durable channel, so it has no dead letters.`, ExitCode.Usage);
      }
      const link = bus.context.transport.createStreamLink?.();
      if (!link) {
        await bus.close();
        throw new CliError('Dead letters live in Redis Streams: point --redis-url at Redis.', ExitCode.Usage);
      }
      try {
        await link.connect();
        const letters = await link.rangeFields(deadLetterKey(channel), '-', count);
        const maxLen = found?.channel.retention?.maxLen ?? DEFAULT_DURABLE_MAXLEN;
        for (const { id, fields } of letters) {
          let requeued: string | undefined;
          if (options.requeue) requeued = await link.requeue(deadLetterKey(channel), streamKey(channel), id, maxLen);
          if (options.json) {
            process.stdout.write(`${JSON.stringify({ id, ...fields, ...(options.requeue ? { requeued_as: requeued ?? null } : {}) })}\n`);
          } else {
            const what = options.requeue ? (requeued ? ` -> requeued as ${requeued}` : ' -> already gone') : '';
            process.stdout.write(`${id} position=${fields.position ?? '?'} attempts=${fields.attempts ?? '?'} ${fields.code ?? ''}: ${preview(fields.error ?? '', 200)}\n  ${preview(fields.payload ?? '', 200)}${what}\n`);
          }
        }
        if (!options.json) process.stderr.write(`${letters.length} dead letter(s) on ${channel}${options.requeue ? ' requeued' : ''}\n`);
      } finally {
        await link.close();
        await bus.close();
      }
    });
}
