// `tickbus publish`: one message, validated against the catalog before it is sent.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { addConnectionOptions, commandBus, type ConnectionOptions } from './shared.ts';

export function registerPublish(program: Command): void {
  addConnectionOptions(
    program
      .command('publish')
      .description("Validate a message against its channel's schema and publish it.")
      .argument('<channel>', 'a concrete channel name, e.g. BROKER_REGISTRATION or TICKER_UPDATES_AAPL')
      .argument('<data>', 'the message data as JSON, or @file to read it from a file')
      .option('--sender <name>', 'the envelope sender', 'tickbus-cli'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus publish BROKER_REGISTRATION '{"action":"subscribe","ticker":"AAPL"}'
  $ tickbus publish TICKER_UPDATES_AAPL @price.json

Exit codes: 0 published, 3 invalid JSON or schema violation, 4 Redis unreachable.`,
    )
    .action(async (channel: string, raw: string, options: ConnectionOptions & { sender: string }) => {
      const text = raw.startsWith('@') ? readSource(raw.slice(1)) : raw;
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch (error) {
        throw new CliError(`The data is not valid JSON (${(error as Error).message}).`, ExitCode.Invalid);
      }
      const bus = await commandBus(options, options.sender);
      try {
        const { receivers, position } = await bus.publish(channel, data);
        process.stdout.write(`published to ${channel} (${receivers} receiver${receivers === 1 ? '' : 's'}${position ? `, position ${position}` : ''})\n`);
      } finally {
        await bus.close();
      }
    });
}

function readSource(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`Cannot read ${path}: ${(error as Error).message}`, ExitCode.Usage);
  }
}
