// The least-privilege Redis ACL users of ops/redis/tickbus.acl, loaded into a real
// redis-server: each role does its job under its own user (a broker streams, a bot watches,
// reads last values and places an order, a tail reads live and history), and what a role
// must not do is refused, with an error that names the permission missing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BusError, TickerUpdates, createBotClient, createBus, type BotClient } from '../../src/index.ts';
import { BrokerErrors } from '../../src/catalogs/broker.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { GatewayClient } from '../harness/gateway-client.ts';
import { silentLogger } from '../harness/quiet.ts';

const ACL_FILE = fileURLToPath(new URL('../../ops/redis/tickbus.acl', import.meta.url));
const ROLES = ['broker', 'bot', 'worker', 'gateway', 'tail'] as const;
type Role = (typeof ROLES)[number];

/** The file's users, with a password per role for the test instead of its placeholders. */
function aclUsers(): Array<{ name: string; rules: string[] }> {
  return readFileSync(ACL_FILE, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('user '))
    .map((line) => {
      const [name, ...rules] = line.slice(5).match(/\([^)]*\)|\S+/g) ?? [];
      return { name: name as string, rules: rules.map((r) => r.replace(/^>CHANGE-ME-(\w+)$/, '>test-$1')) };
    });
}

describe('least-privilege ACL users', () => {
  let server: RedisServer;
  const url = (role: Role) => `redis://tickbus-${role}:test-${role}@127.0.0.1:${server.port}`;
  /** One command as a role's user, through redis-cli: Redis's own answer. */
  const as = (role: Role, ...cmd: string[]) => spawnSync('redis-cli', ['-p', String(server.port), '--user', `tickbus-${role}`, '--pass', `test-${role}`, '--no-auth-warning', ...cmd], { encoding: 'utf8' }).stdout.trim();

  /** What Redis refused since the last reset, as `<user> <command, channel or key>` (ACL LOG). */
  const refusals = (): string[] => {
    const lines = server.cli('ACL', 'LOG').split('\n');
    const out: string[] = [];
    let user = '';
    for (let i = 0; i < lines.length - 1; i++) {
      if (lines[i] === 'username') user = lines[i + 1] as string;
      if (lines[i] === 'client-info') out.push(`${user} ${objectOf(lines, i)}`);
    }
    return out;
  };
  const objectOf = (lines: string[], until: number): string => {
    for (let i = until; i >= 0; i--) if (lines[i] === 'object') return lines[i + 1] as string;
    return '?';
  };

  before(async () => {
    server = await startRedis();
    server.cli('ACL', 'LOG', 'RESET');
    const users = aclUsers();
    assert.deepEqual(users.map((u) => u.name), ROLES.map((r) => `tickbus-${r}`), 'one user per role in the shipped file');
    for (const user of users) assert.equal(server.cli('ACL', 'SETUSER', user.name, ...user.rules), 'OK', user.name);
  });
  after(async () => {
    await server?.stop();
  });

  it('each role does its job: a broker streams to a bot, which reads the last value and places an order; a tail reads live and history', async () => {
    const broker = new CliProcess(['broker', '--port', '0', '--rate', '50'], { REDIS_URL: url('broker') });
    let bot: BotClient | undefined;
    try {
      const [, ops] = await broker.waitFor(/metrics (http:\/\/\S+)\/metrics/);
      bot = createBotClient({ clientId: 'acl-bot', redis: { url: url('bot') }, logger: silentLogger });
      const prices = new Inbox<number>();
      await bot.watch('ACLB', { price: (u) => prices.push(u.price ?? 0) });
      await waitFor(() => prices.items.length >= 3, 'prices of ACLB for the bot', 20_000);
      const last = await bot.lastPrice('ACLB');
      assert.equal(last?.symbol, 'ACLB', 'the last value, read with GET');
      const ticket = await bot.placeOrder({ symbol: 'ACLB', side: 'buy', qty: 1, type: 'market' });
      const final = await Promise.race([ticket.done, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no final order update within 15 s')), 15_000))]);
      assert.equal(final.type, 'order');
      // The broker beats under its user (EVAL of the heartbeat script on tickbus:{health}:*).
      await waitFor(async () => /^tickbus_heartbeat_last_sent_timestamp_seconds\{service="broker"\} \d/m.test(await (await fetch(`${ops}/metrics`)).text()), "the broker's heartbeat", 10_000);
      // Nothing it did was refused along the way (a refusal in the background is only counted and logged).
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      assert.doesNotMatch(metrics, /^tickbus_(background_failures|broker_publish_failures|publish_failures|broker_forward_failures)_total\{[^}]*\} [1-9]/m);
      // The one refusal by design: the bot's publisher asking whether it may run scripts.
      assert.ok(refusals().includes('tickbus-bot eval'), 'the probe, refused and logged');
      assert.deepEqual(refusals().filter((r) => r !== 'tickbus-bot eval'), [], 'Redis refused nothing else (ACL LOG)');
      const health = await runCli(['health', '--json'], { REDIS_URL: url('tail') });
      assert.equal(health.code, 0, health.stderr);
      assert.match(health.stdout, /"service":\s*"broker"/);
      const history = await runCli(['tail', 'TICKER_UPDATES_ACLB', '--after', '0-0', '-n', '2', '--json'], { REDIS_URL: url('tail') });
      assert.equal(history.code, 0, history.stderr);
      assert.equal(history.stdout.trim().split('\n').length, 2, 'two updates from the history');
    } finally {
      await bot?.close();
      assert.equal(await broker.stop(), 0, broker.stderr);
    }
  });

  it('a bot cannot publish ticker updates, touch the leases, or run scripts; the error names the missing permission', async () => {
    assert.match(as('bot', 'PUBLISH', 'TICKER_UPDATES_ACLB', 'x'), /^NOPERM .*channels/);
    assert.match(as('bot', 'ZADD', 'tickbus:{broker}:leases', '1', 'ACLB|someone-else'), /^NOPERM .*'zadd'/);
    assert.match(as('bot', 'ZREM', 'tickbus:{broker}:leases', 'ACLB|someone-else'), /^NOPERM .*'zrem'/);
    assert.match(as('bot', 'EVAL', "return redis.call('ZADD', KEYS[1], 1, 'x')", '1', 'tickbus:{broker}:leases'), /^NOPERM .*'eval'/);
    assert.match(as('bot', 'SET', 'tickbus:last:{ACLB}', 'x'), /^NOPERM .*'set'/);
    assert.equal(as('bot', 'PUBLISH', 'BROKER_REGISTRATION', 'x'), '0', 'its own channels it may publish on');
    const bus = createBus({ redis: { url: url('bot') }, logger: silentLogger });
    try {
      // A ticker update goes to its history first (XADD; scripts are refused, so no EVAL).
      await assert.rejects(bus.publish(TickerUpdates.of({ ticker: 'ACLB' }), { type: 'price', timestamp: new Date().toISOString(), price: 1 }), (error: unknown) => {
        assert.ok(error instanceof BusError, String(error));
        assert.match(error.message, /the ACL of user "tickbus-bot" lacks the command "XADD" \(\+xadd\)/);
        assert.deepEqual([error.code, error.retryable], ['TB_ERR_NO_PERMISSION', false], 'a permission to grant, not a fault to wait out');
        return true;
      });
      // A plain pub/sub channel that is not its own: PUBLISH is allowed, the channel is not.
      await assert.rejects(bus.publish(BrokerErrors, { code: 'X', message: 'forged', timestamp: new Date().toISOString() }), (error: unknown) => {
        assert.ok(error instanceof BusError, String(error));
        assert.match(error.message, /the ACL of user "tickbus-bot" lacks the channel of this command \(&<channel>, or a pattern that covers it\)/);
        assert.equal(error.code, 'TB_ERR_NO_PERMISSION');
        return true;
      });
    } finally {
      await bus.close();
    }
  });

  it('a tail cannot write or publish; the CLI says which permission is missing', async () => {
    assert.match(as('tail', 'PUBLISH', 'TICKER_UPDATES_ACLB', 'x'), /^NOPERM .*'publish'/);
    assert.match(as('tail', 'SET', 'tickbus:last:{ACLB}', 'x'), /^NOPERM .*'set'/);
    assert.match(as('tail', 'XADD', 'tickbus:{TICKER_UPDATES_ACLB}:stream', '*', 'payload', 'x'), /^NOPERM .*'xadd'/);
    assert.match(as('tail', 'DEL', 'tickbus:{broker}:leases'), /^NOPERM .*'del'/);
    const r = await runCli(['publish', 'BROKER_REGISTRATION', '{"action":"subscribe","ticker":"ACLT"}'], { REDIS_URL: url('tail') });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the ACL of user "tickbus-tail" lacks the command "PUBLISH" \(\+publish\)/);
  });

  it('a backtest worker runs a job under its user, and cannot publish prices or touch the broker\'s keys', async () => {
    server.cli('ACL', 'LOG', 'RESET');
    const worker = new CliProcess(['jobs', 'worker', '--name', 'acl-w1'], { REDIS_URL: url('worker') });
    try {
      // The consumer group exists once the worker reads the queue.
      await waitFor(() => /backtest-workers/.test(server.cli('XINFO', 'GROUPS', 'tickbus:{tickstock.jobs.backtest}:stream')), 'the worker to join its group', 20_000);
      const submit = await runCli(['jobs', 'submit', '--user', 'acl-user', '--symbols', 'AAPL', '--from', '2024-01-02', '--to', '2024-01-03', '--patterns', 'Doji', '--job-id', 'acl-job-1', '--json'], { REDIS_URL: server.url });
      assert.equal(submit.code, 0, submit.stderr);
      await waitFor(async () => /"status":\s*"completed"/.test((await runCli(['jobs', 'status', 'acl-job-1', '--json'], { REDIS_URL: server.url })).stdout), 'the job to complete under the worker user', 30_000);
      assert.deepEqual(refusals(), [], 'Redis refused nothing (ACL LOG)');
    } finally {
      assert.equal(await worker.stop(), 0, worker.stderr);
    }
    assert.match(as('worker', 'PUBLISH', 'TICKER_UPDATES_ACLW', 'x'), /^NOPERM .*channels/);
    assert.match(as('worker', 'ZADD', 'tickbus:{broker}:leases', '1', 'x'), /^NOPERM .*keys/);
    assert.match(as('worker', 'SET', 'tickbus:last:{ACLW}', 'x'), /^NOPERM .*keys/);
  });

  it('a gateway serves its clients under its user (rooms, a resume from history, alert preferences, an alert in the inbox), and cannot publish prices or orders', async () => {
    server.cli('ACL', 'LOG', 'RESET');
    const broker = new CliProcess(['broker', '--port', '0', '--rate', '50'], { REDIS_URL: url('broker') });
    // --allow-orders, which this user does not cover (its orders are refused by Redis, below).
    const gateway = new CliProcess(['gateway', '--port', '0', '--batch-ms', '0', '--allow-orders'], { REDIS_URL: url('gateway') });
    let client: GatewayClient | undefined;
    let again: GatewayClient | undefined;
    try {
      await broker.waitFor(/metrics (http:\/\/\S+)\/metrics/);
      const [, ws, ops] = await gateway.waitFor(/websocket (ws:\/\/\S+)\s+health (http:\/\/\S+)\/health/);
      client = new GatewayClient(ws as string);
      await client.opened;
      // A room: the gateway subscribes and registers its lease; the broker streams.
      client.send({ op: 'subscribe', symbols: ['ACLG'], id: 1 });
      await client.reply(1);
      await waitFor(() => (client?.updates().length ?? 0) >= 3, 'prices of ACLG through the gateway', 20_000);
      // Alert preferences (HSET, and a PUBLISH on tickstock.jobs.alerts), then an alert routed to the inbox (the router's script).
      client.send({ op: 'alerts', user: 'aclu', symbols: ['ACLG'], id: 2 });
      assert.equal((await client.reply(2)).type, 'ok');
      client.send({ op: 'subscribe', inbox: true, user: 'aclu', id: 3 });
      await client.reply(3);
      await new Promise((r) => setTimeout(r, 200));
      server.cli('PUBLISH', 'tickstock.events.patterns', JSON.stringify({ event_type: 'pattern_detected', pattern: 'Doji', symbol: 'ACLG', timestamp: 1_700_000_000, confidence: 0.9, timeframe: '1min' }));
      await waitFor(() => client?.inbox().length === 1, 'the alert in the inbox, live', 10_000);
      // A backtest submitted for the user (its record, its index, the queue), then cancelled.
      client.send({ op: 'backtest', symbols: ['ACLG'], patterns: ['Doji'], start_date: '2024-01-01', end_date: '2024-01-05', user: 'aclu', id: 5 });
      const submitted = await client.reply(5);
      assert.equal(submitted.status, 'submitted', JSON.stringify(submitted));
      client.send({ op: 'backtest_cancel', job_id: submitted.job_id, user: 'aclu', id: 6 });
      const cancelled = await client.reply(6);
      assert.equal(cancelled.status, 'cancelled', JSON.stringify(cancelled));
      // A client back with its last position: the gap from history (XRANGE under the gateway's user).
      const last = client.updates().at(-1)?.position;
      client.close();
      await new Promise((r) => setTimeout(r, 300));
      again = new GatewayClient(ws as string);
      await again.opened;
      again.send({ op: 'subscribe', symbols: ['ACLG'], since: { ACLG: last }, id: 4 });
      await again.reply(4);
      const subscribed = again.messages.find((m) => m.type === 'subscribed');
      assert.equal(subscribed?.resume, 'replayed', JSON.stringify(subscribed));
      const metrics = await (await fetch(`${ops}/metrics`)).text();
      assert.doesNotMatch(metrics, /^tickbus_(background_failures|publish_failures)_total\{[^}]*\} [1-9]/m);
      assert.deepEqual(refusals().filter((r) => r.startsWith('tickbus-gateway')), [], 'Redis refused the gateway nothing (ACL LOG)');
      // An order from a browser needs ORDER_REQUESTS, which this user lacks: refused with its
      // code, and the client is not told the gateway's Redis user or address.
      again.send({ op: 'order', symbol: 'ACLG', side: 'buy', qty: 1, type: 'market', client_order_id: 'acl-web-1', user: 'aclu', id: 7 });
      const refused = await again.reply(7);
      assert.equal(refused.code, 'TB_ERR_NO_PERMISSION', JSON.stringify(refused));
      assert.doesNotMatch(String(refused.message), /redis:\/\/|tickbus-gateway|NOPERM/);
    } finally {
      client?.close();
      again?.close();
      assert.equal(await gateway.stop(), 0, gateway.stderr);
      assert.equal(await broker.stop(), 0, broker.stderr);
    }
    assert.match(as('gateway', 'PUBLISH', 'TICKER_UPDATES_ACLG', 'x'), /^NOPERM/);
    assert.match(as('gateway', 'PUBLISH', 'ORDER_REQUESTS', 'x'), /^NOPERM/);
    assert.match(as('gateway', 'SET', 'tickbus:last:{ACLG}', 'x'), /^NOPERM .*keys/);
    assert.match(as('gateway', 'XADD', 'tickbus:{TICKER_UPDATES_ACLG}:stream', '*', 'payload', 'x'), /^NOPERM .*keys/);
    assert.match(as('gateway', 'ZADD', 'tickbus:{broker}:leases', '1', 'x'), /^NOPERM .*keys/);
  });

  it('a broker cannot touch keys outside tickbus:*, even from a script', () => {
    assert.match(as('broker', 'SET', 'job:someone', 'x'), /^NOPERM .*keys/);
    assert.match(as('broker', 'EVAL', "return redis.call('SET', KEYS[1], 'x')", '1', 'user_messages:u1'), /^NOPERM .*keys/);
    assert.match(as('broker', 'FLUSHALL'), /^NOPERM .*'flushall'/);
  });
});
