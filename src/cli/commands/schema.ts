// `tickbus schema export`: the JSON Schema of every catalog channel, for services in
// other languages.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

export function registerSchema(program: Command): void {
  const schema = program.command('schema').description('Channel schemas for services in other languages.');
  schema
    .command('export')
    .description('Write the JSON Schema (draft 2020-12) of every catalog channel.')
    .option('--out <dir>', 'write one <catalog>.schema.json per catalog into this folder (default: print one JSON document)')
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus schema export > catalogs.json
  $ tickbus schema export --out schemas/`,
    )
    .action(async (options: { out?: string }) => {
      const [{ catalogJsonSchema }, { SHIPPED_CATALOGS }] = await Promise.all([import('../../core/catalog.ts'), import('../../catalogs/index.ts')]);
      const docs = SHIPPED_CATALOGS.map((c) => [c.name, catalogJsonSchema(c)] as const);
      if (!options.out) {
        process.stdout.write(`${JSON.stringify(Object.fromEntries(docs), null, 2)}\n`);
        return;
      }
      mkdirSync(options.out, { recursive: true });
      for (const [name, doc] of docs) {
        const file = join(options.out, `${name}.schema.json`);
        writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
        process.stdout.write(`wrote ${file}\n`);
      }
    });
}
