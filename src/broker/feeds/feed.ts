// The seam between the broker and a source of market data. A feed streams trades for a
// set of tickers and, as an execution venue, takes orders and reports their updates.
// Three implementations: SimFeed (seeded random walk + simulated venue), ReplayFeed
// (recorded trades from a file) and AlpacaFeed (Alpaca's market-data and trading streams).
import { ISO_TIMESTAMP } from '../../catalogs/fields.ts';

/** One trade (or price print) for a ticker. */
export interface TradeTick {
  readonly symbol: string;
  readonly price: number;
  readonly volume: number;
  /** ISO-8601 time of the trade at the source. */
  readonly timestamp: string;
  /** What the price is: a trade's (the default), a quote's mid (volume 0), or a bar's close. */
  readonly kind?: 'trade' | 'quote' | 'bar';
}

/**
 * Why a feed's trade cannot become a price update, or undefined when it can: the checks
 * PriceUpdateSchema makes of the fields the broker copies from a trade (a finite price and
 * volume of at least 0, an ISO-8601 timestamp), made once where the trade comes in so that
 * the update built from it is not validated again on the way out. The symbol is the broker's
 * own (a ticker it holds a lease for).
 */
export function tradeProblem(tick: TradeTick): string | undefined {
  if (typeof tick.price !== 'number' || !Number.isFinite(tick.price) || tick.price < 0) return `price ${String(tick.price)} is not a finite number of at least 0`;
  if (typeof tick.volume !== 'number' || !Number.isFinite(tick.volume) || tick.volume < 0) return `volume ${String(tick.volume)} is not a finite number of at least 0`;
  if (typeof tick.timestamp !== 'string' || !ISO_TIMESTAMP.test(tick.timestamp)) return `timestamp ${JSON.stringify(String(tick.timestamp).slice(0, 40))} is not ISO-8601`;
  return undefined;
}

/** An order request as the broker accepts it from the bus (see catalogs/broker.ts). */
export interface OrderRequest {
  readonly client_order_id: string;
  readonly symbol: string;
  readonly side: 'buy' | 'sell';
  readonly qty: number;
  readonly type: 'market' | 'limit';
  readonly limit_price?: number | undefined;
  readonly time_in_force: 'day' | 'gtc' | 'ioc' | 'fok';
}

/** Which open order to cancel: the client_order_id it was placed with, and its symbol. */
export interface CancelRequest {
  readonly client_order_id: string;
  readonly symbol: string;
}

/**
 * An order event as the venue reports it. `order` follows Alpaca's order object (amounts
 * as strings); `event` is one of Alpaca's trade_updates events (new, fill, partial_fill,
 * canceled, rejected, …).
 */
export interface OrderEvent {
  readonly event: string;
  readonly symbol: string;
  readonly timestamp: string;
  readonly order: Readonly<Record<string, unknown>>;
  /** Why an order was rejected, when it was. */
  readonly reason?: string;
  /** This event's own execution, on fills: its price and quantity (amounts as strings). */
  readonly execution?: Readonly<{ price?: string; qty?: string; position_qty?: string; execution_id?: string }>;
}

/** Where a feed sends what it produces. A returned promise asks the feed to slow down. */
export interface FeedSink {
  trade(tick: TradeTick): void | Promise<void>;
  order(event: OrderEvent): void | Promise<void>;
  /** A feed problem worth reporting; `final` means the feed gave up (e.g. Alpaca 402). */
  problem(message: string, details: { code?: number | string; final?: boolean; cause?: unknown }): void;
  /** The feed lost its upstream connection and is reconnecting. */
  reconnecting?(attempt: number, delayMs: number): void;
}

export type FeedState = 'idle' | 'starting' | 'streaming' | 'reconnecting' | 'stopped' | 'failed';

export interface MarketDataFeed {
  /** 'sim', 'replay' or 'alpaca'. */
  readonly name: string;
  /** True when update() changes the ticker set without a restart. */
  readonly updatesInPlace: boolean;
  readonly state: FeedState;
  /** Starts streaming these tickers into the sink. */
  start(tickers: readonly string[], sink: FeedSink): Promise<void>;
  /** Changes the ticker set in place (only when updatesInPlace). */
  update(add: readonly string[], remove: readonly string[]): Promise<void>;
  /** Stops streaming; resolves when nothing more will reach the sink. */
  stop(): Promise<void>;
  /** Sends an order to the venue; its updates arrive through sink.order(). */
  placeOrder(request: OrderRequest): Promise<void>;
  /**
   * Asks the venue to cancel an open order; the outcome arrives through sink.order():
   * `canceled`, or `order_cancel_rejected` with its reason (filled already, unknown, …).
   */
  cancelOrder(request: CancelRequest): Promise<void>;
}
