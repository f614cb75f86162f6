// The dashboard's files (public/), served as they are, and the charts library it loads from
// its npm package. Each file is read on its first request and then kept.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Route } from '../ops/ops-server.ts';

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: `${PUBLIC_DIR}index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { file: `${PUBLIC_DIR}app.js`, type: 'text/javascript; charset=utf-8' },
  '/tickbus-client.js': { file: `${PUBLIC_DIR}tickbus-client.js`, type: 'text/javascript; charset=utf-8' },
  '/candles.js': { file: `${PUBLIC_DIR}candles.js`, type: 'text/javascript; charset=utf-8' },
  '/positions.js': { file: `${PUBLIC_DIR}positions.js`, type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: `${PUBLIC_DIR}style.css`, type: 'text/css; charset=utf-8' },
};

function chartsFile(): string {
  const pkg = createRequire(import.meta.url).resolve('lightweight-charts/package.json');
  return pkg.replace(/package\.json$/, 'dist/lightweight-charts.standalone.production.mjs');
}

function staticRoute(file: string, type: string): Route {
  let body: Buffer | undefined;
  return (_req, res) => {
    body ??= readFileSync(file);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.end(body);
  };
}

/** The routes given, with the dashboard's: its own files win over a route of the same path. */
export function withDashboard(routes: Record<string, Route> | undefined): Record<string, Route> {
  const all: Record<string, Route> = { '/vendor/lightweight-charts.mjs': staticRoute(chartsFile(), 'text/javascript; charset=utf-8'), ...routes };
  for (const [path, { file, type }] of Object.entries(STATIC)) all[path] = staticRoute(file, type);
  return all;
}
