// What a benchmark prints and writes: the number formats of its tables and lines, where
// its results and profiles go, and the JSON record of a run.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Machine } from './machine.ts';
import type { Summary } from './stats.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A whole number with thousands separators; `-` for a figure that is missing. */
export const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
export const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
export const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

/** The latency columns of a table, in ms, and their cells for a (median) summary. */
export const LATENCY_HEADERS = ['p50', 'p90', 'p99', 'p99.9', 'max'] as const;
export function latencyCells(m: Summary | undefined): string[] {
  return [fixed(m?.p50 ?? NaN), fixed(m?.p90 ?? NaN), fixed(m?.p99 ?? NaN), fixed(m?.p999 ?? NaN), fixed(m?.max ?? NaN)];
}

/** Where a run's results and CPU profiles go, and whether a missed target fails it. */
export interface Outputs {
  profileDir: string | undefined;
  check: boolean;
  out: string;
}

/** Outputs from the --profile, --check and --out every benchmark takes. */
export function outputsFrom(v: { profile: boolean; check: boolean; out: string }): Outputs {
  return {
    profileDir: v.profile ? resolve(ROOT, 'artifacts/profiles', new Date().toISOString().replace(/[:.]/g, '-')) : undefined,
    check: v.check,
    out: resolve(process.cwd(), v.out),
  };
}

/** A run's JSON record, less its date. */
export interface Results {
  benchmark: string;
  machine: Machine;
  settings: object;
  targets: object;
  results: object;
  ratios: Record<string, number>;
  targetsMet: Record<string, boolean>;
  trials: readonly object[];
}

/** Writes the record to --out and says so; returns the exit code, 3 for a missed target under --check. */
export function writeResults(outputs: Outputs, r: Results): number {
  const { benchmark, machine, settings, targets, results, ratios, targetsMet, trials } = r;
  const record = { benchmark, date: new Date().toISOString(), machine, settings, targets, results, ratios, targetsMet, trials };
  mkdirSync(dirname(outputs.out), { recursive: true });
  writeFileSync(outputs.out, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`\nResults written to ${outputs.out}`);
  return outputs.check && Object.values(targetsMet).includes(false) ? 3 : 0;
}
