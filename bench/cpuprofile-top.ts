// Summarises V8 CPU profiles (.cpuprofile, as `node --cpu-prof` or `bench/pubsub.ts
// --profile` writes them): the functions with the most self time, and self time by
// source (a file of src/, a package, Node internals, GC).
//
//   node --import tsx bench/cpuprofile-top.ts [--top N] <file.cpuprofile>...
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { UsageError, intOption, parseCliWithArgs, runMain, table } from './lib/cli.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: `src/bus/subscriber.ts`, `zod`, `node:internal`, `(gc)`. */
function sourceOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const local = /\/((?:src|bench|test)\/.+)$/.exec(url);
  return local?.[1] ?? url;
}

function summarize(file: string, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  });
  const byFunction = new Map<string, number>();
  const bySource = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    const source = sourceOf(frame.url, frame.functionName);
    const name = `${frame.functionName || '(anonymous)'}  ${source}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    bySource.set(source, (bySource.get(source) ?? 0) + us);
  }
  const rows = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => [k, `${(us / 1000).toFixed(0)} ms`, `${((100 * us) / total).toFixed(1)}%`]);
  return [
    `${basename(file)}: ${(total / 1000).toFixed(0)} ms sampled`,
    table(['self time by source', 'ms', '%'], rows(bySource, top)),
    '',
    table(['self time by function', 'ms', '%'], rows(byFunction, top)),
    '',
  ].join('\n');
}

runMain(() => {
  const { values, positionals: files } = parseCliWithArgs(
    'node --import tsx bench/cpuprofile-top.ts [--top N] <file.cpuprofile>...',
    'Self time of V8 CPU profiles, by function and by source.',
    { top: { type: 'string', value: 'N', default: '20', description: 'Rows per table.' } },
  );
  if (files.length === 0) throw new UsageError('Name at least one .cpuprofile file (see --help).');
  const top = intOption(values.top, 'top');
  for (const file of files) console.log(summarize(file, top));
});
