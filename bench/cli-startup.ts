// CLI start-up: how long `tickbus --version` and `tickbus tail --help` take as whole
// processes, from the package as a user installs it (packed, installed into an empty
// project, compiled JavaScript), side by side with the same command run from the sources
// through tsx (how every call ran before the package shipped compiled code).
//
//   node --import tsx bench/cli-startup.ts [--runs 15]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intOption, parseCli, runMain } from './lib/cli.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function must(file: string, args: string[], cwd: string): string {
  const result = spawnSync(file, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${file} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Wall time of one run of the command, in ms. */
function time(command: readonly string[]): number {
  const [file, ...args] = command;
  const started = process.hrtime.bigint();
  const result = spawnSync(file as string, args, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${command.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

function stats(samples: number[]): { min: number; median: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { min: sorted[0] ?? NaN, median: sorted[Math.floor(sorted.length / 2)] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

runMain(() => {
  const v = parseCli('node --import tsx bench/cli-startup.ts [options]', 'Start-up of the installed tickbus command against the same command from sources through tsx.', {
    runs: { type: 'string', description: 'timed runs of each command (after one warm-up)', default: '15', value: 'N' },
  });
  const runs = intOption(v.runs, '--runs');
  const dir = mkdtempSync(join(tmpdir(), 'tickbus-startup-'));
  try {
    console.log('packing and installing the package into an empty project…');
    must(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--if-stale'], ROOT);
    const [info] = JSON.parse(must('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT)) as Array<{ filename: string }>;
    const project = join(dir, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'startup', private: true, type: 'module' }));
    must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(dir, info!.filename)], project);
    const installed = [join(project, 'node_modules/.bin/tickbus')];
    const fromSource = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/run.ts')];

    const rows: string[][] = [['command', 'installed (ms, median)', 'min–max', 'tsx from source (ms, median)', 'min–max', 'ratio']];
    for (const args of [['--version'], ['tail', '--help']]) {
      const a: number[] = [];
      const b: number[] = [];
      time([...installed, ...args]);
      time([...fromSource, ...args]);
      // Alternated, so a drift in the machine's speed falls on both.
      for (let i = 0; i < runs; i++) {
        a.push(time([...installed, ...args]));
        b.push(time([...fromSource, ...args]));
      }
      const sa = stats(a);
      const sb = stats(b);
      rows.push([`tickbus ${args.join(' ')}`, sa.median.toFixed(0), `${sa.min.toFixed(0)}–${sa.max.toFixed(0)}`, sb.median.toFixed(0), `${sb.min.toFixed(0)}–${sb.max.toFixed(0)}`, `${(sa.median / sb.median).toFixed(2)}x`]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    console.log(`\n${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${runs} runs each\n`);
    for (const row of rows) console.log(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '));
    console.log('\ntarget: under 300 ms installed');
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
