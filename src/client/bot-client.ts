// The bot SDK (seed 001, "Usage in SCALE_T Trading Bot"): register interest in tickers
// with the broker (a lease in this client's name, renewed while it runs and released on
// close), receive their typed price and order updates, read the last price, and place
// orders whose updates come back as they happen.
import { randomUUID } from 'node:crypto';
import { connectCommands, type CommandLink } from '../transports/commands.ts';
import { parseRedisUrl } from '../core/config.ts';
import { createBus, type TickBus } from '../bus/tick-bus.ts';
import type { BusOptions } from '../bus/context.ts';
import type { MessageContext, Subscription } from '../bus/subscriber.ts';
import { ConfigError, type BusError } from '../core/errors.ts';
import { checkParam, IDENTIFIER, TICKER } from '../core/channel-param.ts';
import { TypedEmitter } from '../core/typed-emitter.ts';
import { lastValueKey } from '../core/keys.ts';
import {
  BrokerRegistration,
  OrderRequests,
  PriceUpdateSchema,
  TickerUpdates,
  type OrderRequestMessage,
  type OrderUpdate,
  type PriceUpdate,
} from '../catalogs/broker.ts';

export interface BotClientOptions extends BusOptions {
  /** Names this bot's leases and orders; letters, digits, "_", "-", ".", ":". */
  clientId: string;
  /** Lifetime of each registration; renewed every third of it. @default 30 */
  leaseTtlSeconds?: number;
  /** How soon to repeat a registration that no broker received (none running yet). @default 1000 */
  retryMs?: number;
}

export interface TickerHandlers {
  price?: (update: PriceUpdate, context: MessageContext<{ ticker: string }>) => unknown;
  order?: (update: OrderUpdate, context: MessageContext<{ ticker: string }>) => unknown;
}

export type OrderInput = Omit<OrderRequestMessage, 'client_order_id' | 'client_id' | 'time_in_force'> & {
  client_order_id?: string;
  time_in_force?: OrderRequestMessage['time_in_force'];
};

/** Statuses after which an order changes no more. */
const FINAL = new Set(['filled', 'canceled', 'expired', 'rejected', 'replaced']);

/** One placed order: its updates so far, and the final one when it comes. */
export class OrderTicket {
  readonly updates: OrderUpdate[] = [];
  readonly done: Promise<OrderUpdate>;
  #settle!: (update: OrderUpdate) => void;

  readonly clientOrderId: string;
  readonly symbol: string;

  constructor(clientOrderId: string, symbol: string) {
    this.clientOrderId = clientOrderId;
    this.symbol = symbol;
    this.done = new Promise((resolve) => (this.#settle = resolve));
  }

  /** @internal */
  push(update: OrderUpdate): void {
    this.updates.push(update);
    const status = update.order_data?.status ?? update.order_data?.event;
    if (typeof status === 'string' && FINAL.has(status)) this.#settle(update);
  }
}

export type BotClientEvents = {
  error: (error: BusError) => void;
  disconnected: (cause: Error) => void;
  reconnected: () => void;
};

interface Watched {
  handlers: TickerHandlers;
  /** True once a broker received the registration. */
  heard: boolean;
}

export class BotClient extends TypedEmitter<BotClientEvents> {
  readonly clientId: string;
  readonly bus: TickBus;
  readonly #ttl: number;
  readonly #retryMs: number;
  readonly #watched = new Map<string, Watched>();
  /** One subscription per ticker channel; the promise is stored first, so concurrent calls share it. */
  readonly #channels = new Map<string, Promise<Subscription>>();
  readonly #tickets = new Map<string, OrderTicket>();
  readonly #lastSeen = new Map<string, PriceUpdate>();
  readonly #redisUrl: string | undefined;
  #store: Promise<CommandLink> | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: BotClientOptions) {
    super();
    this.clientId = checkParam(IDENTIFIER, 'clientId', options.clientId);
    this.#ttl = options.leaseTtlSeconds ?? 30;
    if (!Number.isInteger(this.#ttl) || this.#ttl < 3) throw new ConfigError('leaseTtlSeconds must be a whole number of at least 3.');
    this.#retryMs = options.retryMs ?? 1000;
    this.bus = createBus({ sender: options.sender ?? this.clientId, ...options });
    const transport = this.bus.context.transport;
    this.#redisUrl = transport.redis?.url;
    this.setUnhandled((event, args) => {
      if (event === 'error') this.bus.context.logger.warn({ err: args[0] }, 'bot client error');
    });
    this.bus.on('error', (error) => this.emit('error', error));
    this.bus.on('disconnected', (_role, cause) => this.emit('disconnected', cause));
    this.bus.on('reconnected', (role) => {
      if (role === 'subscriber') this.emit('reconnected');
    });
  }

  /** Tickers this bot watches. */
  get tickers(): string[] {
    return [...this.#watched.keys()].sort();
  }

  /**
   * Starts receiving a ticker's updates and asks the broker to stream it. Works before the
   * broker runs: the registration is repeated until a broker hears it.
   */
  async watch(ticker: string, handlers: TickerHandlers): Promise<void> {
    this.#ensureOpen();
    const symbol = checkParam(TICKER, 'ticker', ticker);
    this.#watched.set(symbol, { handlers, heard: false });
    await this.#ensureChannel(symbol);
    await this.#register(symbol);
    this.#renewTimer ??= setInterval(() => this.bus.context.background.run('bot_lease_renewal', () => this.#renew()), (this.#ttl * 1000) / 3);
  }

  /** Stops receiving a ticker and releases this bot's lease on it. */
  async unwatch(ticker: string): Promise<void> {
    const symbol = checkParam(TICKER, 'ticker', ticker);
    if (!this.#watched.delete(symbol)) return;
    await this.bus.publish(BrokerRegistration, { action: 'unsubscribe', ticker: symbol, client_id: this.clientId });
    // Open orders on the ticker keep its channel: their updates arrive there.
    if (![...this.#tickets.values()].some((t) => t.symbol === symbol)) {
      const sub = this.#channels.get(symbol);
      this.#channels.delete(symbol);
      await (await sub)?.unsubscribe();
    }
  }

  /**
   * The last price of a ticker: from the broker's last-value cache on Redis, else the last
   * one this client received.
   */
  async lastPrice(ticker: string): Promise<PriceUpdate | undefined> {
    this.#ensureOpen();
    const symbol = checkParam(TICKER, 'ticker', ticker);
    if (!this.#redisUrl) return this.#lastSeen.get(symbol);
    // The promise, not the client, is cached: concurrent calls share one connection.
    this.#store ??= this.#connectStore(this.#redisUrl);
    const json = await (await this.#store).send<string | null>(['GET', lastValueKey(symbol)], lastValueKey(symbol));
    if (json === null) return this.#lastSeen.get(symbol);
    const parsed = PriceUpdateSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : this.#lastSeen.get(symbol);
  }

  /** Sends an order to the broker; the ticket collects its updates and settles on the final one. */
  async placeOrder(order: OrderInput): Promise<OrderTicket> {
    this.#ensureOpen();
    const clientOrderId = order.client_order_id ?? `${this.clientId}-${randomUUID()}`;
    const symbol = checkParam(TICKER, 'symbol', order.symbol);
    const ticket = new OrderTicket(clientOrderId, symbol);
    this.#tickets.set(clientOrderId, ticket);
    await this.#ensureChannel(symbol);
    try {
      await this.bus.publish(OrderRequests, { ...order, symbol, client_order_id: clientOrderId, client_id: this.clientId });
    } catch (error) {
      this.#tickets.delete(clientOrderId);
      throw error;
    }
    const forget = () => this.#tickets.delete(clientOrderId);
    ticket.done.then(forget, forget);
    return ticket;
  }

  /** Releases every lease, stops renewing, and closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#renewTimer);
    clearTimeout(this.#retryTimer);
    const release = [...this.#watched.keys()].map((ticker) =>
      this.bus.publish(BrokerRegistration, { action: 'unsubscribe', ticker, client_id: this.clientId }).catch(() => 0),
    );
    await Promise.all(release);
    this.#watched.clear();
    await this.bus.close();
    await (await this.#store?.catch(() => undefined))?.close();
    this.removeAllListeners();
  }

  #ensureOpen(): void {
    if (this.#closed) throw new ConfigError('This bot client is closed; create a new one.');
  }

  async #ensureChannel(symbol: string): Promise<void> {
    const existing = this.#channels.get(symbol);
    if (existing) {
      await existing;
      return;
    }
    const sub = this.bus.subscribe(TickerUpdates.of({ ticker: symbol }), (update, ctx) => {
      if (update.type === 'price') {
        this.#lastSeen.set(symbol, update);
        return this.#watched.get(symbol)?.handlers.price?.(update, ctx);
      }
      const id = update.order_data?.client_order_id;
      if (typeof id === 'string') this.#tickets.get(id)?.push(update);
      return this.#watched.get(symbol)?.handlers.order?.(update, ctx);
    });
    this.#channels.set(symbol, sub);
    try {
      await sub;
    } catch (error) {
      this.#channels.delete(symbol);
      throw error;
    }
  }

  async #register(symbol: string): Promise<void> {
    const watched = this.#watched.get(symbol);
    if (!watched || this.#closed) return;
    try {
      const { receivers } = await this.bus.publish(BrokerRegistration, { action: 'subscribe', ticker: symbol, client_id: this.clientId, ttl_seconds: this.#ttl });
      watched.heard = receivers > 0;
    } catch (error) {
      watched.heard = false;
      this.emit('error', error as BusError);
    }
    if (!watched.heard) this.#scheduleRetry();
  }

  /** No broker heard some registration: try again soon rather than at the next renewal. */
  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      for (const [symbol, w] of this.#watched) if (!w.heard) this.bus.context.background.run('bot_registration', () => this.#register(symbol));
    }, this.#retryMs);
  }

  async #renew(): Promise<void> {
    for (const symbol of this.#watched.keys()) await this.#register(symbol);
  }

  #connectStore(url: string): Promise<CommandLink> {
    return connectCommands(parseRedisUrl(url, 'the bus\'s Redis URL'), {
      name: `tickbus:bot:${this.clientId}`,
      onError: (error) => this.bus.context.logger.warn({ err: error }, 'bot last-price connection error'),
    });
  }
}

export function createBotClient(options: BotClientOptions): BotClient {
  return new BotClient(options);
}
