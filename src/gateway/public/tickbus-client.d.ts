// Types of the gateway's client library (tickbus-client.js), for TypeScript users in Node.
export interface Update<D = unknown> {
  channel: string;
  symbol?: string;
  position?: string;
  replayed?: true;
  data: D;
}

export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ClientOptions {
  /** A JWT, when the gateway requires one. */
  token?: string;
  /** A WebSocket implementation (Node: `import { WebSocket } from 'ws'`); browsers have their own. */
  WebSocket?: unknown;
  /** Reconnection back-off. @default { baseMs: 250, maxMs: 10000 } */
  reconnect?: { baseMs?: number; maxMs?: number };
  /** How often to measure the round trip. @default 5000 */
  pingMs?: number;
}

/** One entry of the user's inbox (an alert: a pattern event; a job result: a backtest's result). */
export interface InboxEntry<D = Record<string, unknown>> {
  type: 'inbox';
  id: string;
  kind: 'alert' | 'job_result';
  data: D;
}

/** A user's alert preferences (seed 003's tickstock.jobs.alerts). Absent symbols or patterns: all. */
export interface AlertPrefs {
  symbols?: string[];
  patterns?: string[];
  /** 0 to 1. */
  min_confidence?: number;
  action?: 'subscribe' | 'unsubscribe';
  /** Without JWT only: whose. */
  user?: string;
}

/** An order from a client (the gateway forwards it to ORDER_REQUESTS). */
export interface ClientOrder {
  /** The idempotency key: a resend with the same id is answered `duplicate: true`, never placed twice. */
  client_order_id: string;
  symbol: string;
  side: 'buy' | 'sell';
  /** Whole shares. */
  qty: number;
  type: 'market' | 'limit';
  limit_price?: number;
  time_in_force?: 'day' | 'gtc' | 'ioc' | 'fok';
  /** Without JWT only: whose. */
  user?: string;
}

export interface BacktestSubmission {
  symbols: string[];
  patterns: string[];
  /** YYYY-MM-DD. */
  start_date: string;
  end_date: string;
  parameters?: Record<string, unknown>;
  job_id?: string;
  user?: string;
}

export declare class TickbusClient {
  /** One gateway's /ws URL, or several: after a lost connection the next one is tried, and the client resumes there. */
  constructor(url: string | string[], options?: ClientOptions);
  /** The gateway connected to (or tried) now. */
  readonly url: string;
  readonly urls: readonly string[];
  readonly state: State;
  readonly rttMs: number | undefined;
  readonly symbols: Set<string>;
  readonly channels: Set<string>;
  /** The last position seen per symbol or channel. */
  readonly positions: Map<string, string>;
  /** Channels subscribed with a symbol filter, and its symbols. */
  readonly filters: Map<string, string[]>;
  /** The id of the last inbox entry received: a new connection resumes after it. */
  readonly lastInboxId: string | undefined;
  /** The gateway confirmed the inbox subscription on this connection. */
  readonly inboxSubscribed: boolean;
  on<D = unknown>(event: 'update', listener: (update: Update<D>) => void): this;
  /** Entries are acknowledged after these listeners ran, unless `subscribeInbox({ autoAck: false })`. */
  on<D = Record<string, unknown>>(event: 'inbox', listener: (entry: InboxEntry<D>) => void): this;
  on(event: 'state', listener: (state: State) => void): this;
  on<M = Record<string, unknown>>(event: 'snapshot' | 'subscribed' | 'unsubscribed' | 'error' | 'notice' | 'welcome' | 'ok', listener: (message: M) => void): this;
  off(event: string, listener: (arg: never) => void): this;
  connect(): Promise<unknown>;
  subscribe(symbols: string[], since?: Record<string, string>): void;
  /** With `filter`: of symbol-keyed channels, only the messages about these symbols (a new filter replaces the old). */
  subscribeChannels(channels: string[], filter?: { symbols: string[] }): void;
  unsubscribeChannels(channels: string[]): void;
  /** Sets the user's alert preferences; resolves on the gateway's `ok`, rejects with its error (`code`). */
  setAlerts(prefs: AlertPrefs): Promise<unknown>;
  /** Follows the user's inbox; resumes after the last entry on a new connection. */
  subscribeInbox(options?: { user?: string; autoAck?: boolean; since?: string }): void;
  unsubscribeInbox(): void;
  /** Follows the user's backtest jobs: progress and results as `update` events. */
  subscribeJobs(options?: { user?: string }): void;
  /** Places an order; resolves with the `ok` (`duplicate: true` for a resend of the same client_order_id). */
  placeOrder(order: ClientOrder): Promise<{ client_order_id: string; symbol: string; duplicate?: true }>;
  cancelOrder(order: { client_order_id: string; symbol: string; user?: string }): Promise<{ client_order_id: string; symbol: string }>;
  /** The newest updates of a ticker's history (at most 1,000), oldest first. */
  history<D = unknown>(symbol: string, limit?: number): Promise<{ symbol: string; updates: Update<D>[] }>;
  submitBacktest(request: BacktestSubmission): Promise<{ job_id: string; status: string }>;
  cancelBacktest(jobId: string, user?: string): Promise<{ job_id: string; status: string }>;
  /** Removes the inbox entries up to and including `id`. */
  ack(id: string): void;
  unsubscribe(symbols: string[]): void;
  close(): void;
}
