// What a client may send, as schemas (zod, like every other input of tickbus): a frame is
// parsed into one of these or refused with a typed error, never cast. The `id` is read
// first, on its own, so that even a malformed request is answered with its id.
import { z } from 'zod';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { ErrorCode, describeValue, preview } from '../core/errors.ts';

/** A request id: echoed in the reply, so bounded (a 60 KB id would be echoed in every reply). */
const RequestId = z.union([z.string().max(128), z.number().finite()]);

const Names = z.array(z.string());

/** Something to subscribe to (or leave): a non-empty list of symbols or channels, or the user's jobs or inbox. */
function namesSomething(r: { symbols?: string[] | undefined; channels?: string[] | undefined; jobs?: boolean | undefined; inbox?: boolean | undefined }): boolean {
  return (r.symbols?.length ?? 0) > 0 || (r.channels?.length ?? 0) > 0 || r.jobs === true || r.inbox === true;
}
const NOTHING = { message: 'Name what: "symbols" or "channels" (non-empty arrays of strings), or "jobs": true, or "inbox": true.' };

/** Of the messages of the symbol-keyed channels subscribed, only those about these symbols. */
const Filter = z.strictObject({ symbols: z.array(z.string()).min(1).max(GATEWAY_DEFAULTS.maxFilterSymbols) });

const Subscribe = z
  .object({
    op: z.literal('subscribe'),
    symbols: Names.optional(),
    channels: Names.optional(),
    since: z.record(z.string(), z.string()).optional(),
    jobs: z.boolean().optional(),
    inbox: z.boolean().optional(),
    filter: Filter.optional(),
    user: z.string().optional(),
    id: RequestId.optional(),
  })
  .refine(namesSomething, NOTHING);

const Unsubscribe = z
  .object({
    op: z.literal('unsubscribe'),
    symbols: Names.optional(),
    channels: Names.optional(),
    jobs: z.boolean().optional(),
    inbox: z.boolean().optional(),
    id: RequestId.optional(),
  })
  .refine(namesSomething, NOTHING);

const Ping = z.object({ op: z.literal('ping'), t: z.number().finite().optional(), id: RequestId.optional() });

/** The user's alert preferences (seed 003's tickstock.jobs.alerts, published by the gateway). */
const Alerts = z.object({
  op: z.literal('alerts'),
  action: z.enum(['subscribe', 'unsubscribe']).optional(),
  symbols: z.array(z.string()).max(1000).optional(),
  patterns: z.array(z.string().min(1).max(64)).max(256).optional(),
  min_confidence: z.number().min(0).max(1).optional(),
  user: z.string().max(128).optional(),
  id: RequestId.optional(),
});

/** The inbox entries up to and including this id are read: remove them. */
const Ack = z.object({ op: z.literal('ack'), inbox: z.string().max(48), user: z.string().max(128).optional(), id: RequestId.optional() });

/** An order id as the broker takes it (catalogs/broker.ts): the page's idempotency key. */
const ClientOrderId = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, "_", ".", ":" and "-"');

/** An order to place through the broker (ORDER_REQUESTS): whole shares, as seed 004's positions count them. */
const Order = z
  .object({
    op: z.literal('order'),
    client_order_id: ClientOrderId,
    symbol: z.string().max(64),
    side: z.enum(['buy', 'sell']),
    qty: z.number().int().positive().max(GATEWAY_DEFAULTS.maxOrderQty),
    type: z.enum(['market', 'limit']),
    limit_price: z.number().positive().finite().optional(),
    time_in_force: z.enum(['day', 'gtc', 'ioc', 'fok']).optional(),
    user: z.string().max(128).optional(),
    id: RequestId.optional(),
  })
  .refine((o) => o.type !== 'limit' || o.limit_price !== undefined, { message: 'a limit order needs limit_price', path: ['limit_price'] })
  .refine((o) => o.type !== 'market' || o.limit_price === undefined, { message: 'a market order takes no limit_price', path: ['limit_price'] });

/** Cancel an open order this user placed. */
const Cancel = z.object({ op: z.literal('cancel'), client_order_id: ClientOrderId, symbol: z.string().max(64), user: z.string().max(128).optional(), id: RequestId.optional() });

/** The newest updates of a ticker's history (to draw a chart from). */
const History = z.object({ op: z.literal('history'), symbol: z.string().max(64), limit: z.number().int().min(1).max(GATEWAY_DEFAULTS.maxHistory).optional(), id: RequestId.optional() });

/** A backtest job for this user (seed 003's request; job_id optional). */
const Backtest = z.object({
  op: z.literal('backtest'),
  symbols: z.array(z.string().max(64)).min(1).max(GATEWAY_DEFAULTS.maxBacktestSymbols),
  patterns: z.array(z.string().min(1).max(64)).min(1).max(64),
  start_date: z.iso.date(),
  end_date: z.iso.date(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  job_id: z.string().min(1).max(128).optional(),
  user: z.string().max(128).optional(),
  id: RequestId.optional(),
});

/** Cancel one of this user's backtest jobs. */
const BacktestCancel = z.object({ op: z.literal('backtest_cancel'), job_id: z.string().min(1).max(128), user: z.string().max(128).optional(), id: RequestId.optional() });

const BY_OP = { subscribe: Subscribe, unsubscribe: Unsubscribe, ping: Ping, alerts: Alerts, ack: Ack, order: Order, cancel: Cancel, history: History, backtest: Backtest, backtest_cancel: BacktestCancel } as const;

export type SubscribeRequest = z.output<typeof Subscribe>;
export type UnsubscribeRequest = z.output<typeof Unsubscribe>;
export type AlertsRequest = z.output<typeof Alerts>;
export type AckRequest = z.output<typeof Ack>;
export type OrderRequest = z.output<typeof Order>;
export type CancelRequest = z.output<typeof Cancel>;
export type HistoryRequest = z.output<typeof History>;
export type BacktestRequest = z.output<typeof Backtest>;
export type BacktestCancelRequest = z.output<typeof BacktestCancel>;
export type DeskRequest = OrderRequest | CancelRequest | HistoryRequest | BacktestRequest | BacktestCancelRequest;
export type ClientRequest = SubscribeRequest | UnsubscribeRequest | z.output<typeof Ping> | AlertsRequest | AckRequest | DeskRequest;

export type RequestId = z.output<typeof RequestId>;

export type ParsedRequest =
  | { ok: true; id: RequestId | undefined; request: ClientRequest }
  | { ok: false; id: RequestId | undefined; code: typeof ErrorCode.BadRequest; message: string };

/** One text frame, parsed and checked. Never throws. */
export function parseRequest(text: string): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad(undefined, `Not JSON: ${preview(text, 60)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return bad(undefined, 'A request is a JSON object with an "op".');
  const fields = value as Record<string, unknown>;
  const idRead = RequestId.safeParse(fields.id);
  const id = idRead.success ? idRead.data : undefined;
  if (fields.id !== undefined && !idRead.success) return bad(undefined, '"id" must be a number or a string of at most 128 characters.');
  const op = fields.op;
  const schema = typeof op === 'string' && Object.hasOwn(BY_OP, op) ? BY_OP[op as keyof typeof BY_OP] : undefined;
  if (!schema) return bad(id, `Unknown op "${preview(describeValue(op))}": use subscribe, unsubscribe, ping, alerts, ack, order, cancel, history, backtest or backtest_cancel.`);
  const read = schema.safeParse(value);
  if (!read.success) {
    const issues = read.error.issues.slice(0, 3).map((i) => (i.path.length > 0 ? `"${i.path.join('.')}": ${i.message}` : i.message));
    return bad(id, `Bad ${describeValue(op)} request: ${preview(issues.join('; '), 200)}`);
  }
  return { ok: true, id, request: read.data };
}

function bad(id: RequestId | undefined, message: string): ParsedRequest {
  return { ok: false, id, code: ErrorCode.BadRequest, message };
}
