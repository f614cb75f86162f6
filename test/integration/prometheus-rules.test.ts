// The shipped Prometheus rules and Grafana dashboard, checked by Prometheus's own tool
// (Debian's promtool) against what a real broker and a real gateway expose on /metrics:
// the rules load, their unit tests pass, the live expositions pass `promtool check
// metrics`, and every metric a rule or a panel names is one the services really export.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess } from '../harness/cli.ts';
import { waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { createBus, streamKey, type TickBus } from '../../src/index.ts';
import { Plain, Work, deliveryCatalog } from '../fixtures/delivery-channels.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RULES = join(ROOT, 'ops/prometheus/tickbus-rules.yml');
const RULE_TESTS = join(ROOT, 'test/prometheus/tickbus-rules.test.yml');
const DASHBOARD = join(ROOT, 'ops/grafana/tickbus.json');
const OPERATIONS = join(ROOT, 'docs/operations.md');
const PROMTOOL = process.env.PROMTOOL_PATH ?? 'promtool';

/**
 * What `promtool check metrics` says of prom-client's own default metrics (collectDefaultMetrics):
 * gauges named `_total`. Not tickbus's names to change; anything else it says fails the test.
 */
const PROM_CLIENT_DEFAULTS = new Set(['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'].map((m) => `${m} non-counter metrics should not have "_total" suffix`));

/** Runs promtool; a missing promtool fails the test with what to install. */
function promtool(args: string[], input?: string): { code: number | null; out: string } {
  const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8', cwd: ROOT });
  if (r.error) throw new Error(`promtool could not run (${r.error.message}). The tests need Debian's prometheus package: apt-get install prometheus (scripts/system-deps.sh does this as root), or set PROMTOOL_PATH.`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The tickbus metric names an expression uses (recording rule names, `a:b:c`, excluded). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/(?<![\w:])tickbus_[a-z0-9_]+(?![\w:])/g)].map((m) => m[0]);
}

/** Every sample name the exposition can have: from its TYPE lines, histogram series included. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** The `expr:` lines of the rules file (the file keeps each expression on one line). */
function ruleExpressions(): string[] {
  return [...readFileSync(RULES, 'utf8').matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1] as string);
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string; refId: string }>;
}

describe('Prometheus rules and Grafana dashboard', () => {
  let server: RedisServer;
  let broker: CliProcess;
  let gateway: CliProcess;
  const expositions: Record<string, string> = {};

  before(async () => {
    server = await startRedis();
    broker = new CliProcess(['broker', '--port', '0', '--rate', '20'], { REDIS_URL: server.url });
    gateway = new CliProcess(['gateway', '--redis-url', server.url, '--port', '0']);
    const [, brokerUrl] = await broker.waitFor(/metrics (http:\/\/\S+)\/metrics/);
    const [, gatewayUrl] = await gateway.waitFor(/health (http:\/\/\S+)\/health/);
    // Scraped once the broker has beaten and both have their Redis connections up.
    for (const [name, url, ready] of [
      ['broker', brokerUrl, /^tickbus_heartbeat_last_sent_timestamp_seconds\{service="broker"\} \d/m],
      ['gateway', gatewayUrl, /^tickbus_redis_connected\{role="subscriber"\} 1$/m],
    ] as const) {
      await waitFor(async () => {
        const res = await fetch(`${url}/metrics`);
        expositions[name] = await res.text();
        return res.ok && ready.test(expositions[name]) && /^tickbus_redis_connected\{role="publisher"\} 1$/m.test(expositions[name]);
      }, `the ${name}'s /metrics`, 20_000);
    }
  });

  after(async () => {
    await Promise.all([broker?.stop(), gateway?.stop()]);
    await server?.stop();
  });

  it('promtool check rules accepts the rules file', () => {
    const r = promtool(['check', 'rules', RULES]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  it('promtool test rules: every alert fires on its failure and stays quiet when healthy', () => {
    const r = promtool(['test', 'rules', RULE_TESTS]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
    // Each alert of the file has at least one unit test.
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1] as string);
    const tested = readFileSync(RULE_TESTS, 'utf8');
    const untested = alerts.filter((a) => !new RegExp(`alertname: ${a}$`, 'm').test(tested));
    assert.deepEqual(untested, []);
  });

  it('a live broker and a live gateway pass promtool check metrics', () => {
    for (const [name, text] of Object.entries(expositions)) {
      assert.match(text, /^# TYPE tickbus_messages_published_total counter$/m, `${name} exposes the bus's metrics`);
      const r = promtool(['check', 'metrics'], text);
      // Exit 3 is "lint problems" (1 would be an exposition promtool cannot read). The only
      // ones allowed are prom-client's default process metrics, whose names tickbus does not choose.
      const problems = r.out.split('\n').filter((l) => l.trim() !== '');
      assert.deepEqual(problems.filter((l) => !PROM_CLIENT_DEFAULTS.has(l.trim())), [], `${name}: promtool's complaints`);
      assert.equal(r.code, problems.length === 0 ? 0 : 3, `${name}: ${r.out}`);
    }
    assert.match(expositions.broker ?? '', /^# TYPE tickbus_broker_updates_published_total counter$/m);
    assert.match(expositions.gateway ?? '', /^# TYPE tickbus_gateway_closed_total counter$/m);
  });

  it('every metric a rule uses is in the broker or the gateway exposition', () => {
    const exposed = new Set([...exposedNames(expositions.broker ?? ''), ...exposedNames(expositions.gateway ?? '')]);
    const exprs = ruleExpressions();
    assert.ok(exprs.length >= 20, 'the expressions were found');
    const used = new Set(exprs.flatMap(metricNames));
    assert.ok(used.size >= 15, `the rules use the metrics (${used.size})`);
    assert.deepEqual([...used].filter((n) => !exposed.has(n)), [], 'metrics no service exposes');
  });

  it('every alert links to its section of docs/operations.md', () => {
    const doc = readFileSync(OPERATIONS, 'utf8');
    const anchors = new Set([...doc.matchAll(/^#{2,4} (.+)$/gm)].map((m) => (m[1] as string).toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1] as string);
    assert.ok(alerts.length >= 10);
    for (const alert of alerts) {
      assert.ok(anchors.has(alert.toLowerCase()), `docs/operations.md has a section "${alert}"`);
      assert.match(readFileSync(RULES, 'utf8'), new RegExp(`operations\\.md#${alert.toLowerCase()}\\.`), `${alert} links to it`);
    }
  });

  it('the Grafana dashboard is valid JSON whose every panel queries metrics the services expose', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; schemaVersion: number; panels: Panel[]; templating: { list: Array<{ name: string }> } };
    assert.equal(dashboard.uid, 'tickbus-overview');
    assert.ok(dashboard.schemaVersion >= 36);
    assert.deepEqual(dashboard.templating.list.map((v) => v.name), ['datasource', 'job']);
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const queries = dashboard.panels.filter((p) => p.type !== 'row');
    assert.ok(queries.length >= 12);
    const exposed = new Set([...exposedNames(expositions.broker ?? ''), ...exposedNames(expositions.gateway ?? '')]);
    const rules: string[] = [];
    for (const panel of queries) {
      assert.ok(panel.gridPos.w > 0 && panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: fits the grid`);
      assert.ok(panel.targets && panel.targets.length > 0, `${panel.title}: has a query`);
      for (const target of panel.targets) {
        const names = metricNames(target.expr);
        assert.ok(names.length > 0, `${panel.title}: ${target.expr} names a tickbus metric`);
        assert.deepEqual(names.filter((n) => !exposed.has(n)), [], `${panel.title}: metrics no service exposes`);
        // Grafana's variables as Prometheus would see them once Grafana substituted them.
        rules.push(target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*'));
      }
    }
    // Prometheus's own parser reads every panel query (as recording rules of a scratch file).
    const file = join(mkdtempSync(join(tmpdir(), 'tickbus-grafana-')), 'panels.yml');
    writeFileSync(file, `groups:\n  - name: panels\n    rules:\n${rules.map((e, i) => `      - record: panel_query_${i}\n        expr: ${JSON.stringify(e)}\n`).join('')}`);
    const r = promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${rules.length} rules found`));
  });
});

// The gauges the alerts read, moved by what they describe: a consumer group's lag, as Redis
// itself counts it; the Redis connection, lost and back; the fallback buffer's bound.
describe('the metrics behind the alerts', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server?.stop();
  });

  const sample = async (bus: TickBus, name: string, labels: string): Promise<number | undefined> => {
    const text = await bus.context.metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  it('tickbus_durable_group_lag counts what the group has not read, against the retention bound beside it', async () => {
    const bus = createBus({ redis: { url: server.url }, catalogs: [deliveryCatalog], logger: silentLogger });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const lag = () => sample(bus, 'tickbus_durable_group_lag', '{channel="TEST_WORK_{queue}",group="slow"}');
    try {
      const ref = Work.of({ queue: 'lag' });
      for (let n = 0; n < 20; n++) await bus.publish(ref, { n });
      // Set on each claim round, between batches: the first comes before the first read, and
      // the held handler keeps the loop from the next.
      await bus.consume(ref, () => gate, { group: 'slow', consumer: 'c1', start: 'beginning', batchSize: 5, claimIntervalMs: 50 });
      await waitFor(async () => (await lag()) === 20, 'the lag gauge to show the 20 unread messages', 10_000);
      assert.equal(await sample(bus, 'tickbus_durable_stream_max_length', '{channel="TEST_WORK_{queue}"}'), 1_000_000);
      release();
      await waitFor(async () => (await lag()) === 0, 'the lag gauge to fall to 0 once all are read', 10_000);
      const info = server.cli('XINFO', 'GROUPS', streamKey(ref.name)).split('\n');
      assert.equal(info[info.indexOf('lag') + 1], '0', 'as Redis counts it');
      assert.equal(info[info.indexOf('entries-read') + 1], '20');
    } finally {
      release();
      await bus.close();
    }
  });

  it('tickbus_redis_connected falls to 0 while Redis is gone and is 1 again once it is back; the fallback bound is exposed', async () => {
    const bus = createBus({ redis: { url: server.url }, catalogs: [deliveryCatalog], logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 }, fallback: { maxMessages: 250 } });
    bus.on('error', () => undefined);
    try {
      assert.equal(await sample(bus, 'tickbus_redis_connected', '{role="publisher"}'), undefined, 'not reported before the first connection');
      await bus.connect();
      await bus.subscribe(Plain.of({ queue: 'q' }), () => undefined);
      assert.equal(await sample(bus, 'tickbus_redis_connected', '{role="publisher"}'), 1);
      assert.equal(await sample(bus, 'tickbus_redis_connected', '{role="subscriber"}'), 1);
      assert.equal(await sample(bus, 'tickbus_fallback_buffer_capacity_messages', ''), 250);
      await server.kill();
      await waitFor(async () => (await sample(bus, 'tickbus_redis_connected', '{role="publisher"}')) === 0 && (await sample(bus, 'tickbus_redis_connected', '{role="subscriber"}')) === 0, 'both connections reported down', 10_000);
      await bus.publish(Plain.of({ queue: 'q' }), { n: 1 });
      assert.equal(await sample(bus, 'tickbus_fallback_buffer_messages', ''), 1, 'the publish waits in the buffer');
      await server.restart();
      await waitFor(async () => (await sample(bus, 'tickbus_redis_connected', '{role="publisher"}')) === 1 && (await sample(bus, 'tickbus_redis_connected', '{role="subscriber"}')) === 1, 'both connections reported up again', 20_000);
    } finally {
      await bus.close();
    }
  });
});
