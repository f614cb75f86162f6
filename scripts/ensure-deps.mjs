// Runs before `npm start` and `npm test`: installs dependencies on a fresh clone (or when
// package-lock.json changed), so the quick start is two commands, not three.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync('package-lock.json').mtimeMs;
if (stale) {
  console.error('tickbus: installing dependencies (npm ci)…');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('tickbus: npm ci failed; fix the error above and run the command again.');
    process.exit(result.status ?? 1);
  }
}
