// The programs in examples/ run as a user runs them (subprocesses of `node --import tsx`)
// against a broker on a private Redis; their output, exit codes and effects are checked.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBrokerRuntime, type BrokerRuntime } from '../../src/broker/broker-runtime.ts';
import { SimFeed } from '../../src/broker/feeds/sim-feed.ts';
import { BROKER_LEASES_KEY as LEASES_KEY } from '../../src/core/keys.ts';
import { createBus, TickerUpdates, tradingEvents, type OrderUpdate, type TickBus } from '../../src/index.ts';
import { startRedis, type RedisServer } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';
import { Inbox, sleep, waitFor } from '../harness/wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One example program, its output collected as it comes. */
class Example {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    // cwd is the repository root, so `--import tsx` and the examples' relative imports resolve.
    this.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      env: { ...process.env, TICKBUS_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    process.once('exit', () => this.child.kill('SIGKILL'));
  }

  /** The exit code, or a failure naming the program and its output if it runs too long. */
  async exit(timeoutMs = 60_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`${this.child.spawnargs.join(' ')} did not exit within ${timeoutMs} ms.\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stdout)) {
      if (this.child.exitCode !== null) throw new Error(`exited (${this.child.exitCode}) before printing ${pattern}. stdout: ${this.stdout} stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${pattern}. stdout: ${this.stdout} stderr: ${this.stderr}`);
      await sleep(20);
    }
  }
}

describe('examples', () => {
  let server: RedisServer;
  let broker: BrokerRuntime | undefined;
  let bus: TickBus | undefined;
  const running: Example[] = [];
  const run = (script: string, args: string[], env?: NodeJS.ProcessEnv): Example => {
    const example = new Example(script, args, env);
    running.push(example);
    return example;
  };

  before(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    for (const example of running.splice(0)) if (example.child.exitCode === null) example.child.kill('SIGKILL');
    await bus?.close();
    await broker?.stop();
    bus = undefined;
    broker = undefined;
    server.cli('FLUSHALL');
  });
  after(async () => {
    await server.stop();
  });

  it('ma-crossover-bot: trades on crossovers, fills 2 market orders, exits 0 and releases its lease', async () => {
    broker = await startBrokerRuntime({ redisUrl: server.url, feed: new SimFeed({ ratePerTicker: 50 }), logger: silentLogger, sweepIntervalMs: 100 });
    // What the broker really sent, to check the bot's account of its orders against.
    bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    const fills = new Inbox<OrderUpdate>();
    await bus.subscribe(TickerUpdates.of({ ticker: 'AAPL' }), (update) => {
      if (update.type === 'order' && update.order_data?.event === 'fill') fills.push(update);
    });
    // Seed 004's events: validated by the catalog on the way in, so a wrong type would not arrive.
    const signals = new Inbox<tradingEvents.SignalEvent>();
    const executed = new Inbox<tradingEvents.OrderEvent>();
    const positionEvents = new Inbox<tradingEvents.PositionEvent>();
    await bus.subscribe(tradingEvents.SignalsGenerated, signals.push);
    await bus.subscribe(tradingEvents.OrdersExecuted, executed.push);
    await bus.subscribe(tradingEvents.PositionsUpdated, positionEvents.push);

    const bot = run('examples/ma-crossover-bot.ts', ['--redis-url', server.url, '--fast', '2', '--slow', '4', '--max-orders', '2']);
    const code = await bot.exit();
    assert.equal(code, 0, `exit code; stdout: ${bot.stdout} stderr: ${bot.stderr}`);
    assert.match(bot.stdout, /^watching AAPL on redis:\/\/127\.0\.0\.1:\d+: MA 2\/4, 10 shares per buy$/m);

    // Long-only: a buy on a golden cross, then the sale of that position on a death cross.
    const orders = [...bot.stdout.matchAll(/^order (\d+): (buy|sell) 10 AAPL filled at ([\d.]+); position (-?\d+) AAPL$/gm)];
    assert.deepEqual(
      orders.map((m) => [m[1], m[2], m[4]]),
      [
        ['1', 'buy', '10'],
        ['2', 'sell', '0'],
      ],
      `stdout: ${bot.stdout}`,
    );
    assert.match(bot.stdout, /^golden cross at [\d.]+ .*: buy 10$/m);
    assert.match(bot.stdout, /^death cross at [\d.]+ .*: sell 10$/m);
    assert.match(bot.stdout, /^stopping \(2 orders done\): 2 orders, position 0 AAPL$/m);

    // The broker's venue filled exactly these two orders, at the prices the bot printed.
    await fills.waitFor(2, 'two fills on TICKER_UPDATES_AAPL');
    assert.deepEqual(
      fills.items.map((f) => [f.order_data?.side, f.order_data?.filled_qty, f.order_data?.filled_avg_price]),
      orders.map((m) => [m[2], '10', m[3]]),
    );
    assert.ok(fills.items.every((f) => String(f.order_data?.client_order_id).startsWith(`ma-crossover-${bot.child.pid}-`)));

    // The third seed system: a signal per decision, a run of orders per batch, a position per fill.
    const strategy = `ma-crossover-${bot.child.pid}`;
    await signals.waitFor(2, 'signals.generated');
    await executed.waitFor(2, 'orders.executed');
    await positionEvents.waitFor(2, 'positions.updated');
    assert.ok(signals.items.every((e) => e.strategy_id === strategy && e.symbols[0] === 'AAPL' && e.num_signals === 1));
    assert.deepEqual(executed.items.map((e) => [e.strategy_id, e.num_orders, e.num_accepted, e.num_rejected]), [[strategy, 1, 1, 0], [strategy, 1, 1, 0]]);
    assert.deepEqual(positionEvents.items.map((e) => [e.strategy_id, e.action, e.qty_change, e.new_qty]), [[strategy, 'fill', 10, 10], [strategy, 'fill', -10, 0]]);

    // Its lease is released: the broker stops streaming a ticker no one holds.
    await waitFor(() => broker?.service.tickers.length === 0, 'the broker to stop streaming AAPL');
    assert.equal(server.cli('ZCARD', LEASES_KEY), '0');
  });

  it('ma-crossover-bot: --help exits 0; bad options exit 2 with the reason', async () => {
    const help = run('examples/ma-crossover-bot.ts', ['--help']);
    assert.equal(await help.exit(), 0);
    assert.match(help.stdout, /^Usage: node --import tsx examples\/ma-crossover-bot\.ts/);
    for (const flag of ['--ticker', '--fast', '--slow', '--qty', '--max-orders', '--redis-url']) assert.ok(help.stdout.includes(flag), flag);

    const bad = run('examples/ma-crossover-bot.ts', ['--fast', '8', '--slow', '3']);
    assert.equal(await bad.exit(), 2);
    assert.match(bad.stderr, /--fast \(8\) must be less than --slow \(3\)/);
  });

  it('seed-001: the subscriber prints the price the publisher publishes, and stops on Ctrl-C', async () => {
    const env = { REDIS_URL: server.url };
    const subscriber = run('examples/seed-001/subscriber.ts', [], env);
    await subscriber.waitForOutput(/^Listening on TICKER_UPDATES_AAPL/m);

    const publisher = run('examples/seed-001/publisher.ts', [], env);
    assert.equal(await publisher.exit(), 0, `publisher stderr: ${publisher.stderr}`);
    assert.equal(publisher.stdout.trim(), 'Published price 150 to TICKER_UPDATES_AAPL (1 subscriber)');

    await subscriber.waitForOutput(/^Received price: \$150\.00 for AAPL$/m);
    subscriber.child.kill('SIGINT');
    assert.equal(await subscriber.exit(10_000), 0, `subscriber stderr: ${subscriber.stderr}`);
    assert.equal(subscriber.stderr, '', 'no message was rejected');
  });
});
