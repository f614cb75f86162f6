// `tickbus schema export`: the channels of the catalogs for services in other languages and
// for the AsyncAPI tools: the JSON Schema of every channel, or one AsyncAPI 3.0 document.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Option, type Command } from 'commander';
import type { Catalog } from '../../core/catalog.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';

interface ExportOptions {
  format: 'json-schema' | 'asyncapi';
  out?: string;
  catalog?: string[];
  server: string;
}

function isCatalog(value: unknown): value is Catalog {
  const v = value as Partial<Catalog> | null;
  return typeof v === 'object' && v !== null && typeof v.name === 'string' && typeof v.list === 'function' && typeof v.channels === 'object';
}

/** The catalogs a module exports (named exports made with defineCatalog, or an array of them). */
async function loadCatalogs(file: string): Promise<Catalog[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`--catalog ${file}: cannot load the module: ${(error as Error).message}`, ExitCode.Usage);
  }
  const found = new Set<Catalog>();
  for (const value of Object.values(mod)) {
    if (isCatalog(value)) found.add(value);
    else if (Array.isArray(value)) for (const v of value) if (isCatalog(v)) found.add(v);
  }
  if (found.size === 0) throw new CliError(`--catalog ${file}: the module exports no catalog; export the result of defineCatalog(…).`, ExitCode.Usage);
  return [...found];
}

export function registerSchema(program: Command): void {
  const schema = program.command('schema').description('Channel schemas for services in other languages and AsyncAPI tools.');
  schema
    .command('export')
    .description('Write the JSON Schema (draft 2020-12) of every catalog channel, or one AsyncAPI 3.0 document of them all.')
    .addOption(new Option('--format <format>', 'json-schema: one JSON Schema document per catalog; asyncapi: one AsyncAPI 3.0 document (channels, messages, delivery, the Redis server)').choices(['json-schema', 'asyncapi']).default('json-schema'))
    .option('--out <path>', 'json-schema: a folder for one <catalog>.schema.json per catalog; asyncapi: the file to write (default: print to stdout)')
    .option('--catalog <module...>', 'export the catalogs this JavaScript/TypeScript module exports (defineCatalog) instead of the shipped ones; repeatable')
    .option('--server <host:port>', 'asyncapi: the Redis server the document names', '127.0.0.1:6379')
    .addHelpText(
      'after',
      `
Examples:
  $ tickbus schema export > catalogs.json
  $ tickbus schema export --out schemas/
  $ tickbus schema export --format asyncapi --out tickbus.asyncapi.json
  $ tickbus schema export --format asyncapi --catalog ./dist/my-channels.js --server redis.internal:6379`,
    )
    .action(async (options: ExportOptions) => {
      const [{ catalogJsonSchema }, { catalogsAsyncApi }, { SHIPPED_CATALOGS }] = await Promise.all([import('../../core/catalog.ts'), import('../../core/asyncapi.ts'), import('../../catalogs/index.ts')]);
      const catalogs: readonly Catalog[] = options.catalog ? (await Promise.all(options.catalog.map(loadCatalogs))).flat() : SHIPPED_CATALOGS;
      if (options.format === 'asyncapi') {
        const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
        const text = `${JSON.stringify(catalogsAsyncApi(catalogs, { version: pkg.version, host: options.server }), null, 2)}\n`;
        if (!options.out) {
          process.stdout.write(text);
          return;
        }
        mkdirSync(dirname(resolve(options.out)), { recursive: true });
        writeFileSync(options.out, text);
        process.stdout.write(`wrote ${options.out}\n`);
        return;
      }
      const docs = catalogs.map((c) => [c.name, catalogJsonSchema(c)] as const);
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
