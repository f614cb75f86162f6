// The gateway's WebSocket protocol (docs/gateway.md): JSON text frames, one object each.
// Clients send operations; the server sends updates in batches, replies and errors with
// stable codes. Kept free of Node imports: the browser client mirrors these shapes.

/** Close codes the gateway uses, beside WebSocket's own (1001 going away, 1009 too big). */
export const CloseCode = {
  /** The token expired during the session. */
  Unauthorized: 4001,
  /** The client read too slowly for too long: its buffer passed the hard limit. */
  SlowConsumer: 4008,
  /** The client kept sending past its rate limit. */
  RateLimited: 4029,
} as const;

/** What a client sends (checked by the schemas of requests.ts). */
export type ClientOp =
  | {
      op: 'subscribe';
      /** Ticker symbols: their updates (TICKER_UPDATES_{symbol}). */
      symbols?: string[];
      /** Other channels the gateway exposes (e.g. tickstock.events.patterns). */
      channels?: string[];
      /** The last position seen per symbol or channel: resume from there. */
      since?: Record<string, string>;
      /** The user's own backtest jobs: their progress and results (room `user_<id>`). */
      jobs?: boolean;
      /** The user's inbox (alerts and job results, `user_messages:<user>`): what was not acknowledged, then live; `since.inbox` is the last id seen. */
      inbox?: boolean;
      /** Of the symbol-keyed channels named, only the messages about these symbols. */
      filter?: { symbols: string[] };
      /** Whose jobs or inbox: the token's subject with JWT; without JWT, this field (trusted networks only). */
      user?: string;
      /** Echoed in the reply. */
      id?: string | number;
    }
  | { op: 'unsubscribe'; symbols?: string[]; channels?: string[]; jobs?: boolean; inbox?: boolean; id?: string | number }
  | { op: 'ping'; t?: number; id?: string | number }
  /** The user's alert preferences (published on tickstock.jobs.alerts). */
  | { op: 'alerts'; action?: 'subscribe' | 'unsubscribe'; symbols?: string[]; patterns?: string[]; min_confidence?: number; user?: string; id?: string | number }
  /** The inbox entries up to and including this id are read: removed from the inbox. */
  | { op: 'ack'; inbox: string; user?: string; id?: string | number }
  /** Place an order through the broker (ORDER_REQUESTS); `client_order_id` is the idempotency key. Needs the token's `orders` claim, or a gateway with allowOrders. */
  | { op: 'order'; client_order_id: string; symbol: string; side: 'buy' | 'sell'; qty: number; type: 'market' | 'limit'; limit_price?: number; time_in_force?: 'day' | 'gtc' | 'ioc' | 'fok'; user?: string; id?: string | number }
  /** Cancel an open order this user placed (ORDER_CANCELS). */
  | { op: 'cancel'; client_order_id: string; symbol: string; user?: string; id?: string | number }
  /** The newest updates (at most `limit`, 1,000) of a ticker's history, to draw a chart from. */
  | { op: 'history'; symbol: string; limit?: number; id?: string | number }
  /** Submit a backtest job for this user (its progress: subscribe `jobs`). */
  | { op: 'backtest'; symbols: string[]; patterns: string[]; start_date: string; end_date: string; parameters?: Record<string, unknown>; job_id?: string; user?: string; id?: string | number }
  | { op: 'backtest_cancel'; job_id: string; user?: string; id?: string | number };

/** One update inside a batch. `symbol` for ticker channels; `position` where the channel has history. */
export interface Update {
  channel: string;
  symbol?: string;
  position?: string;
  /** True when it comes from history (a resume), not live. */
  replayed?: true;
  data: unknown;
}

/** What the server sends. */
export type ServerMessage =
  | { type: 'welcome'; session: string; batchMs: number; batchTiming: 'adaptive' | 'interval'; conflate: boolean; limits: { maxSubscriptions: number; ratePerSecond: number; maxFrameBytes: number }; channels: string[] }
  | { type: 'batch'; updates: Update[] }
  | {
      type: 'subscribed';
      /** The symbol or channel. */
      key: string;
      channel: string;
      /** `replayed`: what was missed since `since`, from history; `snapshot`: the last value instead (gap too old, or no `since`); `live`: nothing to send before live updates. */
      resume: 'replayed' | 'snapshot' | 'live';
      replayed?: number;
      /** With `since`: history did not hold that position, so updates may be missing before what was sent. */
      gap?: true;
      id?: string | number;
    }
  | { type: 'snapshot'; key: string; channel: string; position?: string; data: unknown }
  | { type: 'unsubscribed'; key: string; id?: string | number }
  /** The one reply to a subscribe or unsubscribe with an id, after its per-key messages: the keys it holds (or left) and those refused. */
  | { type: 'ok'; op: 'subscribe' | 'unsubscribe'; keys: string[]; failed: string[]; id: string | number }
  /** The reply to `alerts` and `ack`, with or without an id. */
  | { type: 'ok'; op: 'alerts' | 'ack'; id?: string | number }
  /**
   * The reply to the desk's requests, with or without an id: `order` and `cancel` with
   * `client_order_id` and `symbol` (`duplicate: true`: placed before, not again); `history`
   * with `symbol` and `updates` (oldest first, as in a batch); `backtest` and
   * `backtest_cancel` with `job_id` and `status`.
   */
  | { type: 'ok'; op: 'order' | 'cancel' | 'history' | 'backtest' | 'backtest_cancel'; id?: string | number; [field: string]: unknown }
  /** One entry of the user's inbox: an alert (a pattern event) or a job result. Acknowledge by its id. */
  | { type: 'inbox'; id: string; kind: string; data: unknown }
  /**
   * Something this connection should know: updates dropped for a slow reader (`dropped`), or
   * updates of a room (`key`) that the gateway itself missed (its Redis link was lost and
   * history could not fill it: resubscribe with `since`, or take the next update as the state).
   */
  | { type: 'notice'; code: string; message: string; dropped?: number; key?: string }
  | { type: 'error'; code: string; message: string; key?: string; id?: string | number }
  | { type: 'pong'; t?: number; id?: string | number };
