#!/usr/bin/env node
// The tickbus command: runs the compiled CLI in dist/ (`npm run build` writes it; the
// published package ships it built).
try {
  await import('../dist/cli/run.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/run.js')) {
    process.stderr.write('tickbus: dist/ is missing; run `npm run build` in the tickbus checkout first.\n');
    process.exit(1);
  }
  throw error;
}
