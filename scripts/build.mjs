// `npm run build`: compiles src/ into dist/ (ESM, declarations, source maps) and copies the
// dashboard and the client library (src/gateway/public), which are served as they are.
// `--if-stale` builds only when dist/ is missing or older than a source: what `npm start`
// and `npm test` run, so a fresh clone needs no extra command.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.build-stamp');
const inputs = ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs'];

/** The newest modification time among the build's inputs. */
function newestInput() {
  let newest = 0;
  const visit = (path) => {
    const stat = statSync(path);
    if (stat.isDirectory()) for (const entry of readdirSync(path)) visit(join(path, entry));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  for (const input of inputs) visit(join(root, input));
  return newest;
}

export function isStale() {
  return !existsSync(stamp) || statSync(stamp).mtimeMs < newestInput();
}

/** Declarations keep the sources' `.ts` import specifiers; consumers resolve `.js`. */
function rewriteDeclarations(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) rewriteDeclarations(path);
    else if (entry.name.endsWith('.d.ts')) {
      const text = readFileSync(path, 'utf8');
      const rewritten = text.replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1$2.js$3');
      if (rewritten !== text) writeFileSync(path, rewritten);
    }
  }
}

export function build() {
  const started = Date.now();
  // Built beside dist/ and swapped in at the end: a tickbus process started meanwhile (a test,
  // \`npm start\` in another terminal) finds the old build or the new one, never none.
  const next = join(root, `dist.next-${process.pid}`);
  const old = join(root, `dist.old-${process.pid}`);
  rmSync(next, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', next], { stdio: 'inherit' });
  if (result.status !== 0) {
    rmSync(next, { recursive: true, force: true });
    console.error('tickbus: the build failed; fix the type errors above and run `npm run build` again.');
    process.exit(result.status ?? 1);
  }
  rewriteDeclarations(next);
  cpSync(join(root, 'src/gateway/public'), join(next, 'gateway/public'), { recursive: true });
  mkdirSync(next, { recursive: true });
  writeFileSync(join(next, '.build-stamp'), `${new Date().toISOString()}\n`);
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(next, dist);
  rmSync(old, { recursive: true, force: true });
  console.error(`tickbus: built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.argv.includes('--if-stale') || isStale()) {
    if (process.argv.includes('--if-stale')) console.error('tickbus: dist/ is missing or older than the sources; building (npm run build)…');
    build();
  }
}
