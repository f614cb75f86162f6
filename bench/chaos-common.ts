// What the chaos run (bench/chaos.ts, bench/lib/chaos-run.ts) shares with the processes it
// starts: the tickers, the durable queue, the result files the long-lived workers write
// when they are told to stop (SIGTERM), and the lines the killable ones print as they go.

/** The tickers the bots lease and the browser-like clients watch. */
export const CHAOS_TICKERS = ['AAPL', 'MSFT', 'NVDA', 'TSLA'] as const;

/** The durable queue (test/fixtures/delivery-channels.ts: TEST_WORK_{queue}) and its group. */
export const CHAOS_QUEUE = 'chaos';
export const CHAOS_GROUP = 'chaos-workers';

/** What the publisher prints for each message: `pub <n> <status>` (sent, buffered, dropped, failed:<code>). */
export const PUB_LINE = /^pub (\d+) (\S+)$/;
/** What the durable consumer fixture prints as each message reaches its handler. */
export const GOT_LINE = /^got (\d+)$/;

/** One order update a bot received, as evidence: its stream position tells copies apart. */
export interface BotOrderEvent {
  event: string;
  status: string;
  /** The venue's order id: one per order the venue took. */
  orderId: string;
  position: string | undefined;
}

export interface BotOrder {
  clientOrderId: string;
  bot: string;
  symbol: string;
  placedAt: number;
  /** The final status from the ticket, if it came before the bots stopped. */
  final: string | undefined;
  events: BotOrderEvent[];
}

export interface BotsResult {
  /** Orders whose request was published (resolved). */
  orders: BotOrder[];
  /** Orders whose publish failed (Redis down): code → count. */
  refused: Record<string, number>;
  /** Price updates the bots received, per bot. */
  prices: Record<string, number>;
  errors: Record<string, number>;
}

/**
 * What a browser-like client saw on one symbol, in arrival order: a stream position for
 * each update, and markers for what the gateway told it (`!snapshot`, `!sub:<resume>`,
 * `!notice:<code>:<dropped>`, `!error:<code>`) and for its connection (`~<state>`).
 */
export type ClientLog = string[];

export interface ClientsResult {
  clients: Array<{ id: string; urls: string[]; symbols: Record<string, ClientLog>; connects: number }>;
}

/** The simulated market's seeded generator: the same seed replays the same kills. */
export { mulberry32 as seededRandom } from '../src/broker/feeds/random.ts';
