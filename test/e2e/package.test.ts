// The package as a user gets it: `npm pack`, installed into an empty project, then used
// with plain Node (no tsx), from CommonJS, from a strict TypeScript project (nodenext and
// bundler resolution), through the client library, and as the `tickbus up` command.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess, runProcess } from '../harness/cli.ts';
import { waitFor } from '../harness/wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(file, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 240_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function ok(result: { code: number | null; stdout: string; stderr: string }, what: string): string {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

describe('the packed tarball, installed into an empty project', { timeout: 300_000 }, () => {
  let dir: string;
  let project: string;
  let tarball: string;
  let files: string[];
  let redis: RedisServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tickbus-pkg-'));
    project = join(dir, 'app');
    mkdirSync(project);
    // What `npm test` does first; here again so the file also runs on its own.
    ok(run(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--if-stale'], ROOT), 'the build');
    // prepack would build again: the build is fresh, so pack what it wrote.
    const packed = ok(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT), 'npm pack');
    const [info] = JSON.parse(packed) as Array<{ filename: string; files: Array<{ path: string }> }>;
    assert.ok(info);
    tarball = join(dir, info.filename);
    files = info.files.map((f) => f.path);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'tickbus-user', private: true, type: 'module' }));
    ok(
      run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, `@types/node@${rootPkg.devDependencies['@types/node']}`, 'ws'], project),
      'npm install of the tarball',
    );
    redis = await startRedis();
  });

  after(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ships the compiled package and nothing of the repository', () => {
    for (const expected of ['dist/index.js', 'dist/index.d.ts', 'dist/seed/index.js', 'dist/cli/run.js', 'dist/gateway/public/index.html', 'dist/gateway/public/tickbus-client.js', 'dist/gateway/public/tickbus-client.d.ts', 'bin/tickbus.js', 'ops/prometheus/tickbus-rules.yml', 'ops/grafana/tickbus.json', 'ops/redis/tickbus.acl', 'LICENSE', 'README.md', 'CHANGELOG.md']) {
      assert.ok(files.includes(expected), `${expected} is in the tarball`);
    }
    const unwanted = files.filter((f) => /^(test|bench|\.ci|scripts|src|examples)\//.test(f) || /\.(spec|test)\.(ts|js|d\.ts)$/.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'));
    assert.deepEqual(unwanted, []);
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/tickbus/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.equal(pkg.dependencies.tsx, undefined, 'tsx is not a runtime dependency');
    assert.equal(pkg.dependencies.typescript, undefined, 'typescript is not a runtime dependency');
  });

  it('plain node imports tickbus, publishes a typed price on Redis and receives it', () => {
    writeFileSync(
      join(project, 'roundtrip.js'),
      `import { createBus, TickerUpdates } from 'tickbus';
const bus = createBus({ sender: 'package-test', redis: { url: process.env.REDIS_URL } });
const received = new Promise((resolve) => bus.subscribe(TickerUpdates.of({ ticker: 'AAPL' }), (update) => resolve(update)));
await new Promise((r) => setTimeout(r, 100));
await bus.publish(TickerUpdates.of({ ticker: 'AAPL' }), { type: 'price', timestamp: new Date().toISOString(), price: 187.5, volume: 10, symbol: 'AAPL' });
const update = await received;
console.log(JSON.stringify(update));
await bus.close();
`,
    );
    const out = ok(run(process.execPath, ['roundtrip.js'], project, { REDIS_URL: redis.url }), 'the ESM round trip');
    const update = JSON.parse(out.trim()) as { type: string; price: number };
    assert.equal(update.type, 'price');
    assert.equal(update.price, 187.5);
  });

  it('imports tickbus/seed and every catalog the same way, and require() works from CommonJS', () => {
    writeFileSync(
      join(project, 'entries.js'),
      `import { CHANNELS, RedisPublisher } from 'tickbus/seed';
import * as broker from 'tickbus/catalogs/broker';
import * as tickstock from 'tickbus/catalogs/tickstock';
import * as events from 'tickbus/catalogs/trading-events';
import * as system from 'tickbus/catalogs/system';
console.log(JSON.stringify({ ticker: CHANNELS.getTickerChannel('AAPL'), publisher: typeof RedisPublisher, catalogs: [broker, tickstock, events, system].map((m) => Object.keys(m).length > 0) }));
`,
    );
    const seed = JSON.parse(ok(run(process.execPath, ['entries.js'], project), 'the seed and catalog imports').trim()) as { ticker: string; publisher: string; catalogs: boolean[] };
    assert.deepEqual(seed, { ticker: 'TICKER_UPDATES_AAPL', publisher: 'function', catalogs: [true, true, true, true] });

    writeFileSync(join(project, 'require.cjs'), `const { createBus, TickerUpdates } = require('tickbus');\nconsole.log(typeof createBus, TickerUpdates.name({ ticker: 'MSFT' }));\n`);
    const cjs = ok(run(process.execPath, ['--no-warnings', 'require.cjs'], project), 'require() from CommonJS');
    assert.equal(cjs.trim(), 'function TICKER_UPDATES_MSFT');
  });

  for (const resolution of ['nodenext', 'bundler'] as const) {
    it(`type-checks a strict TypeScript consumer with moduleResolution ${resolution}, from declarations only`, () => {
      const consumer = join(project, `ts-${resolution}`);
      mkdirSync(consumer, { recursive: true });
      writeFileSync(
        join(consumer, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            target: 'es2022',
            module: resolution === 'nodenext' ? 'nodenext' : 'esnext',
            moduleResolution: resolution,
            types: ['node'],
            typeRoots: ['../node_modules/@types'],
          },
          include: ['*.ts'],
        }),
      );
      writeFileSync(
        join(consumer, 'bot.ts'),
        `import { createBus, TickerUpdates, ValidationError, type PriceUpdate } from 'tickbus';
import { CHANNELS } from 'tickbus/seed';
import { TickbusClient, type Update } from 'tickbus/client';

const bus = createBus({ sender: 'typed' });
await bus.subscribe(TickerUpdates.of({ ticker: 'AAPL' }), (update, ctx) => {
  // @ts-expect-error: price exists on price updates only, so this must not type-check before narrowing
  const unnarrowed = update.price;
  if (update.type === 'price') {
    // Optional, as in the seed's schema; a number where present (an \`any\` would not fail here).
    const price: number | undefined = update.price;
    // @ts-expect-error: a price is not a string
    const wrong: string | undefined = update.price;
    const whole: PriceUpdate = update;
    console.log(ctx.params.ticker, price, wrong, whole.volume, unnarrowed);
  } else {
    console.log(update.order_data);
  }
});
// @ts-expect-error: the schema rejects a price that is a string
await bus.publish(TickerUpdates.of({ ticker: 'AAPL' }), { type: 'price', timestamp: 't', price: 'high', volume: 1, symbol: 'AAPL' });
const channel: string = CHANNELS.getTickerChannel('AAPL');
const client = new TickbusClient('ws://127.0.0.1:8080/ws');
client.on('update', (u: Update) => console.log(u.symbol, channel));
export const isValidation = (e: unknown): boolean => e instanceof ValidationError;
`,
      );
      const listed = ok(run(process.execPath, [TSC, '-p', consumer, '--listFiles'], consumer), `tsc (${resolution})`);
      const fromTickbus = listed.split('\n').filter((f) => f.includes('/node_modules/tickbus/'));
      assert.ok(fromTickbus.length > 10, `tickbus declarations were read:\n${listed}`);
      assert.deepEqual(
        fromTickbus.filter((f) => !f.endsWith('.d.ts')),
        [],
        'only .d.ts files of tickbus are type-checked',
      );
    });
  }

  it('the installed `tickbus up` serves the dashboard, and tickbus/client receives prices through its gateway', async () => {
    const bin = join(project, 'node_modules/.bin/tickbus');
    const version = await runProcess(bin, ['--version'], {}, 20_000);
    assert.equal(version.stdout.trim(), rootPkg.version);
    const up = new CliProcess([], { REDIS_URL: redis.url, TICKBUS_LOG_LEVEL: 'warn' }, [bin, 'up', '--port', '0', '--rate', '20']);
    try {
      await waitFor(() => /dashboard\s+http:\/\/\S+\//.test(up.stderr), 'tickbus up printed its dashboard URL', 30_000);
      const base = /dashboard\s+(http:\/\/\S+?)\/\s/.exec(up.stderr)?.[1];
      assert.ok(base, up.stderr);
      for (const [path, type] of [
        ['/', /text\/html/],
        ['/app.js', /javascript/],
        ['/tickbus-client.js', /javascript/],
        ['/vendor/lightweight-charts.mjs', /javascript/],
      ] as const) {
        const response = await fetch(`${base}${path}`);
        assert.equal(response.status, 200, path);
        assert.match(response.headers.get('content-type') ?? '', type, path);
        assert.ok((await response.text()).length > 100, `${path} has a body`);
      }
      writeFileSync(
        join(project, 'client.js'),
        `import { WebSocket } from 'ws';
import { TickbusClient } from 'tickbus/client';
const client = new TickbusClient(process.argv[2], { WebSocket });
const first = new Promise((resolve) => client.on('update', (u) => resolve(u)));
await client.connect();
client.subscribe(['AAPL']);
const update = await first;
console.log(JSON.stringify({ symbol: update.symbol, type: update.data.type }));
client.close();
`,
      );
      const wsUrl = `${base.replace(/^http/, 'ws')}/ws`;
      const client = await runProcess(process.execPath, [join(project, 'client.js'), wsUrl], {}, 30_000);
      assert.equal(client.code, 0, client.stderr);
      assert.deepEqual(JSON.parse(client.stdout.trim()), { symbol: 'AAPL', type: 'price' });
    } finally {
      await up.stop();
    }
  });
});
