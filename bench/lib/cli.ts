// Command-line plumbing shared by the benchmarks and their workers: declared options,
// --help generated from the declarations, and number checks with messages that say
// which option is wrong.
import { parseArgs } from 'node:util';

export interface OptionSpec {
  type: 'string' | 'boolean';
  description: string;
  /** Shown in --help and used when the option is absent. */
  default?: string;
  /** The value's name in --help (`--messages <N>`). */
  value?: string;
}

export type OptionValues<S extends Record<string, OptionSpec>> = {
  [K in keyof S]: S[K]['type'] extends 'boolean' ? boolean : S[K]['default'] extends string ? string : string | undefined;
};

export class UsageError extends Error {}

/** Help text for a set of options. */
export function helpText(usage: string, summary: string, specs: Record<string, OptionSpec>): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const flag = spec.type === 'boolean' ? `--${name}` : `--${name} <${spec.value ?? 'value'}>`;
    const def = spec.default === undefined ? '' : ` (default: ${spec.default})`;
    return [flag, `${spec.description}${def}`] as const;
  });
  rows.push(['--help', 'Show this help.']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [`Usage: ${usage}`, '', summary, '', 'Options:', ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`), ''].join('\n');
}

/**
 * Parses argv against the declared options. Prints the help and exits on --help; throws
 * UsageError on an unknown option, a missing value or a positional argument.
 */
export function parseCli<S extends Record<string, OptionSpec>>(usage: string, summary: string, specs: S, argv: string[] = process.argv.slice(2)): OptionValues<S> {
  const { values, positionals } = parseCliWithArgs(usage, summary, specs, argv);
  if (positionals.length > 0) throw new UsageError(`Unexpected argument "${positionals[0]}".\nRun with --help for the options.`);
  return values;
}

/** parseCli, also returning the positional arguments (file names and such). */
export function parseCliWithArgs<S extends Record<string, OptionSpec>>(
  usage: string,
  summary: string,
  specs: S,
  argv: string[] = process.argv.slice(2),
): { values: OptionValues<S>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.type };
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nRun with --help for the options.`);
  }
  if (parsed.values.help === true) {
    process.stdout.write(helpText(usage, summary, specs));
    process.exit(0);
  }
  const out: Record<string, string | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    out[name] = parsed.values[name] ?? (spec.type === 'boolean' ? false : spec.default);
  }
  return { values: out as OptionValues<S>, positionals: parsed.positionals };
}

/** A whole number >= min, from an option's text. */
export function intOption(text: string, name: string, min = 1): number {
  const n = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got "${text}".`);
  return n;
}

/** A finite number > 0, from an option's text. */
export function positiveOption(text: string, name: string): number {
  const n = Number(text.replace(/_/g, ''));
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number > 0, got "${text}".`);
  return n;
}

/** A value from a fixed set, from an option's text. */
export function choiceOption<const C extends string>(text: string, name: string, choices: readonly C[]): C {
  if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${text}".`);
  return text as C;
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * Runs a command's main and sets the exit code: its return value (0 when none), 2 for a
 * UsageError (message only), 1 for any other error (with its stack).
 */
export function runMain(main: () => number | void | Promise<number | void>): void {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        process.exitCode = code ?? 0;
      },
      (error: unknown) => {
        console.error(error instanceof UsageError ? error.message : error);
        process.exitCode = error instanceof UsageError ? 2 : 1;
      },
    );
}
