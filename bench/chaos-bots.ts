// The chaos run's bots: each holds leases on its tickers through the bot SDK
// (createBotClient, renewed while it runs) and places a market order every few seconds on
// the simulated venue. Every order update it receives is kept with its stream position, so
// the parent can tell a duplicated order (two `new` events at two positions) from a message
// delivered twice. On SIGTERM: stops ordering, waits a little for open orders, writes the
// result file (BotsResult) and exits 0.
// Usage: node --import tsx bench/chaos-bots.ts <redis-url> <result-file> <bots-json> <order-every-ms>
//   bots-json: [{"id":"bot-1","tickers":["AAPL","MSFT"]}, …]
import { writeFileSync } from 'node:fs';
import { createBotClient, type BotClient, type OrderTicket } from './lib/tickbus.ts';
import type { BotOrder, BotsResult } from './chaos-common.ts';

const [url, resultFile, botsJson, everyMs] = process.argv.slice(2) as [string, string, string, string];
const specs = JSON.parse(botsJson) as Array<{ id: string; tickers: string[] }>;
const result: BotsResult = { orders: [], refused: {}, prices: {}, errors: {} };
const orders = new Map<string, BotOrder>();
const open = new Set<Promise<unknown>>();
let stopping = false;
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

const bots: Array<{ id: string; tickers: string[]; client: BotClient }> = [];
for (const spec of specs) {
  const client = createBotClient({ clientId: spec.id, redis: { url }, leaseTtlSeconds: 9, retryMs: 500, reconnect: { baseMs: 50, maxMs: 500 } });
  client.on('error', (error) => (result.errors[error.code] = (result.errors[error.code] ?? 0) + 1));
  result.prices[spec.id] = 0;
  for (const ticker of spec.tickers) {
    await client.watch(ticker, {
      price: () => void (result.prices[spec.id] = (result.prices[spec.id] ?? 0) + 1),
      order: (update, ctx) => {
        const data = update.order_data ?? {};
        const id = typeof data.client_order_id === 'string' ? data.client_order_id : undefined;
        const order = id === undefined ? undefined : orders.get(id);
        order?.events.push({ event: text(data.event), status: text(data.status), orderId: text(data.id), position: ctx.position });
      },
    });
  }
  bots.push({ id: spec.id, tickers: spec.tickers, client });
}

let k = 0;
async function placeOne(): Promise<void> {
  const bot = bots[k % bots.length];
  if (!bot) return;
  const symbol = bot.tickers[Math.floor(k / bots.length) % bot.tickers.length] as string;
  const clientOrderId = `${bot.id}-o${k++}`;
  const order: BotOrder = { clientOrderId, bot: bot.id, symbol, placedAt: Date.now(), final: undefined, events: [] };
  orders.set(clientOrderId, order);
  let ticket: OrderTicket;
  try {
    ticket = await bot.client.placeOrder({ symbol, side: 'buy', qty: 1, type: 'market', client_order_id: clientOrderId });
  } catch (error) {
    orders.delete(clientOrderId);
    const code = (error as { code?: string }).code ?? 'unknown';
    result.refused[code] = (result.refused[code] ?? 0) + 1;
    return;
  }
  result.orders.push(order);
  const done = ticket.done.then((u) => (order.final = text(u.order_data?.status) || text(u.order_data?.event)));
  open.add(done);
  void done.finally(() => open.delete(done));
}

const timer = setInterval(() => {
  if (!stopping) void placeOne();
}, Number(everyMs));

process.once('SIGTERM', () => {
  stopping = true;
  clearInterval(timer);
  void (async () => {
    await Promise.race([Promise.all(open), new Promise((r) => setTimeout(r, 8000))]);
    writeFileSync(resultFile, JSON.stringify(result));
    await Promise.race([Promise.all(bots.map((b) => b.client.close())), new Promise((r) => setTimeout(r, 3000))]);
    process.exit(0);
  })();
});
process.stdout.write('ready\n');
