// Refuses import cycles in src/, type imports included. eslint's import-x/no-cycle skips
// `import type`, yet two modules that name each other's types are as coupled as two that
// call each other (issue 15 found two such pairs), so this check reads every import.
// Specs are left out: a spec imports what it tests and nothing imports a spec.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');
const src = join(root, 'src');

function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'public' ? [] : sources(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

// A relative specifier to the file it names: `./x.ts`, `./x.js` (compiled name) or `./x`.
function target(from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')]) {
    if (candidate.endsWith('.ts') && existsSync(candidate)) return candidate;
  }
  return undefined;
}

const files = sources(src);
const edges = new Map(files.map((file) => {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const to = info.importedFiles.map((ref) => target(file, ref.fileName)).filter((t) => t !== undefined);
  return [file, [...new Set(to)]];
}));

// Tarjan's strongly connected components: every component of more than one file is a cycle.
let index = 0;
const stack = [];
const state = new Map();
const cycles = [];
function visit(file) {
  const node = { index, low: index, onStack: true };
  index += 1;
  state.set(file, node);
  stack.push(file);
  for (const next of edges.get(file) ?? []) {
    const seen = state.get(next);
    if (seen === undefined) {
      visit(next);
      node.low = Math.min(node.low, state.get(next).low);
    } else if (seen.onStack) {
      node.low = Math.min(node.low, seen.index);
    }
  }
  if (node.low === node.index) {
    const component = [];
    let member;
    do {
      member = stack.pop();
      state.get(member).onStack = false;
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || (edges.get(file) ?? []).includes(file)) cycles.push(component);
  }
}
for (const file of files) if (!state.has(file)) visit(file);

if (cycles.length > 0) {
  for (const cycle of cycles) {
    console.error(`import cycle (type imports included): ${cycle.map((f) => relative(root, f)).sort().join(' <-> ')}`);
  }
  console.error('Break it: move the shared type into its own module, or let one side declare the interface it needs.');
  process.exit(1);
}
console.log(`no import cycles in ${files.length} files of src/ (type imports included)`);
