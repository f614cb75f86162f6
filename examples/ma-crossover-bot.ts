// A moving-average crossover bot on the bot SDK: watches one ticker through the broker, buys
// on a golden cross (fast MA rises above slow), sells on a death cross, and tracks its position.
// It is seed 004's signal service too: each decision goes out as `signals.generated`, and each
// batch of orders it sent (one order here) as `orders.executed` once the orders are final.
//
//   node --import tsx examples/ma-crossover-bot.ts --ticker AAPL --fast 5 --slow 20 --max-orders 4
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createBotClient, tradingEvents, type BotClient, type OrderUpdate, type PriceUpdate } from '../src/index.ts';

const USAGE = `Usage: node --import tsx examples/ma-crossover-bot.ts [options]

A long-only moving-average crossover bot. It asks the broker for one ticker, keeps a fast
and a slow simple moving average of its prices, buys --qty at market when the fast one
crosses above the slow one (a golden cross) while flat, and sells the whole position when it
crosses below (a death cross). Needs a running broker: npm start, or tickbus broker.

Options:
  --ticker T        the ticker to trade (default AAPL)
  --fast N          prices in the fast average (default 5)
  --slow N          prices in the slow average, more than --fast (default 20)
  --qty Q           shares per buy (default 10)
  --max-orders N    exit after N orders have completed; 0 runs until Ctrl-C (default 0)
  --redis-url URL   the broker's Redis (default $REDIS_URL, else redis://localhost:6379)
  --help            this text`;

/** How long an order may go without a final update before the bot stops: its position is then unknown. */
const ORDER_TIMEOUT_MS = 30_000;

interface Settings {
  ticker: string;
  fast: number;
  slow: number;
  qty: number;
  maxOrders: number;
  redisUrl: string;
}

class UsageError extends Error {}

function positiveInt(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number of at least ${min}, got "${text}".`);
  return n;
}

/** Parses the command line; undefined means --help was asked for. */
function parseSettings(argv: string[]): Settings | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      ticker: { type: 'string', default: 'AAPL' },
      fast: { type: 'string', default: '5' },
      slow: { type: 'string', default: '20' },
      qty: { type: 'string', default: '10' },
      'max-orders': { type: 'string', default: '0' },
      'redis-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const fast = positiveInt('fast', values.fast, 1);
  const slow = positiveInt('slow', values.slow, 2);
  if (fast >= slow) throw new UsageError(`--fast (${fast}) must be less than --slow (${slow}).`);
  const qty = Number(values.qty);
  if (!Number.isFinite(qty) || qty <= 0) throw new UsageError(`--qty must be a positive number, got "${values.qty}".`);
  return {
    ticker: values.ticker.trim().toUpperCase(),
    fast,
    slow,
    qty,
    maxOrders: positiveInt('max-orders', values['max-orders'], 0),
    redisUrl: values['redis-url'] ?? process.env.REDIS_URL ?? 'redis://localhost:6379',
  };
}

/** The last `slow` prices, and the two averages once there are enough of them. */
class Averages {
  readonly #window: number[] = [];
  readonly fast: number;
  readonly slow: number;

  constructor(fast: number, slow: number) {
    this.fast = fast;
    this.slow = slow;
  }

  /** Adds a price; returns fast minus slow MA, or undefined while the window fills. */
  push(price: number): { fastMa: number; slowMa: number } | undefined {
    this.#window.push(price);
    if (this.#window.length > this.slow) this.#window.shift();
    if (this.#window.length < this.slow) return undefined;
    return { fastMa: mean(this.#window.slice(-this.fast)), slowMa: mean(this.#window) };
  }
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

class CrossoverBot {
  readonly #averages: Averages;
  /** Which side of the slow MA the fast one was on: +1 above, -1 below, 0 not yet known. */
  #side = 0;
  #position = 0;
  #completed = 0;
  /** One order at a time: signals while one is in flight are ignored, not queued. */
  #busy = false;
  #stopping: Promise<void> | undefined;
  readonly #bot: BotClient;

  readonly settings: Settings;
  readonly done: (code: number) => void;

  constructor(settings: Settings, done: (code: number) => void) {
    this.settings = settings;
    this.done = done;
    this.#averages = new Averages(settings.fast, settings.slow);
    this.#bot = createBotClient({ clientId: `ma-crossover-${process.pid}`, redis: { url: settings.redisUrl } });
    this.#bot.on('error', (error) => console.error(`bus error ${error.code}: ${error.message}`));
  }

  async start(): Promise<void> {
    const { ticker, fast, slow, qty, redisUrl } = this.settings;
    await this.#bot.watch(ticker, { price: (update) => this.#onPrice(update) });
    console.log(`watching ${ticker} on ${redisUrl}: MA ${fast}/${slow}, ${qty} shares per buy`);
  }

  /** Releases the lease and closes the connections, once, however many callers ask. */
  stop(reason: string, code = 0): Promise<void> {
    this.#stopping ??= (async () => {
      console.log(`stopping (${reason}): ${this.#completed} orders, position ${this.#position} ${this.settings.ticker}`);
      await this.#bot.close();
      this.done(code);
    })();
    return this.#stopping;
  }

  // Runs on the ticker's delivery lane, which also carries this bot's order updates: it
  // must never wait for an order here, or the update it waits for could never arrive.
  #onPrice(update: PriceUpdate): void {
    if (update.price === undefined || this.#stopping) return;
    const mas = this.#averages.push(update.price);
    if (!mas) return;
    const side = Math.sign(mas.fastMa - mas.slowMa);
    // Equal averages are no cross: keep the side last seen.
    if (side === 0 || side === this.#side) return;
    const first = this.#side === 0;
    this.#side = side;
    // The first side seen is where the averages stand, not a crossing.
    if (first || this.#busy) return;
    const what = `${side > 0 ? 'golden' : 'death'} cross at ${update.price} (fast ${mas.fastMa.toFixed(2)}, slow ${mas.slowMa.toFixed(2)})`;
    if (side > 0 && this.#position <= 0) void this.#trade('buy', this.settings.qty, what);
    else if (side < 0 && this.#position > 0) void this.#trade('sell', this.#position, what);
    else console.log(`${what}: ${side > 0 ? 'already long' : 'flat'}, no order`);
  }

  /** Seed 004's events are pub/sub, best effort: one that cannot go out is said, and trading goes on. */
  #announce(what: Promise<unknown>): Promise<void> {
    return what.then(
      () => undefined,
      (error: unknown) => console.error(`event not published: ${(error as Error).message}`),
    );
  }

  async #trade(side: 'buy' | 'sell', qty: number, why: string): Promise<void> {
    this.#busy = true;
    const strategy = this.#bot.clientId;
    try {
      console.log(`${why}: ${side} ${qty}`);
      const now = new Date();
      await this.#announce(
        this.#bot.bus.publish(tradingEvents.SignalsGenerated, { event_type: 'signals.generated', timestamp: now.toISOString(), strategy_id: strategy, symbols: [this.settings.ticker], num_signals: 1, as_of_date: now.toISOString().slice(0, 10) }),
      );
      const ticket = await this.#bot.placeOrder({ symbol: this.settings.ticker, side, qty, type: 'market' });
      const final = await withTimeout(ticket.done, ORDER_TIMEOUT_MS);
      if (this.#stopping) return;
      if (!final) {
        await this.stop(`order ${ticket.clientOrderId} had no final update within ${ORDER_TIMEOUT_MS / 1000} s`, 1);
        return;
      }
      const accepted = final.order_data?.status === 'filled' ? 1 : 0;
      await this.#announce(
        this.#bot.bus.publish(tradingEvents.OrdersExecuted, { event_type: 'orders.executed', timestamp: new Date().toISOString(), run_id: randomUUID(), strategy_id: strategy, num_orders: 1, num_accepted: accepted, num_rejected: 1 - accepted }),
      );
      this.#completed += 1;
      this.#position += signedFill(final);
      console.log(`order ${this.#completed}: ${describeFinal(final)}; position ${this.#position} ${this.settings.ticker}`);
      if (this.settings.maxOrders > 0 && this.#completed >= this.settings.maxOrders) await this.stop(`${this.#completed} orders done`);
    } catch (error) {
      await this.stop(`order failed: ${(error as Error).message}`, 1);
    } finally {
      this.#busy = false;
    }
  }
}

/** The shares a final update moved: its filled quantity, negative for a sale. */
function signedFill(final: OrderUpdate): number {
  const order = final.order_data ?? {};
  const filled = Number(order.filled_qty ?? 0);
  if (!Number.isFinite(filled)) return 0;
  return order.side === 'sell' ? -filled : filled;
}

function describeFinal(final: OrderUpdate): string {
  const order = final.order_data ?? {};
  const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '?');
  const base = `${text(order.side)} ${text(order.qty)} ${text(order.symbol ?? final.symbol)} ${text(order.status)}`;
  if (order.status === 'filled') return `${base} at ${text(order.filled_avg_price)}`;
  return typeof order.reason === 'string' ? `${base} (${order.reason})` : base;
}

/** Resolves with the value, or undefined after `ms`; the timer does not keep the process alive. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

async function main(): Promise<void> {
  let settings: Settings | undefined;
  try {
    settings = parseSettings(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (!settings) {
    console.log(USAGE);
    return;
  }
  // Nothing else is left running after stop(), so setting the code lets the process end by itself.
  const bot = new CrossoverBot(settings, (code) => (process.exitCode = code));
  process.once('SIGINT', () => void bot.stop('interrupted'));
  process.once('SIGTERM', () => void bot.stop('terminated'));
  try {
    await bot.start();
  } catch (error) {
    console.error(`cannot start: ${(error as Error).message}`);
    await bot.stop('start-up failed', 1);
  }
}

await main();
