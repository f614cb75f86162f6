// The trading desk's requests: placing and cancelling orders through the broker
// (ORDER_REQUESTS, ORDER_CANCELS), a ticker's recent history for a chart, and backtest jobs
// submitted and cancelled for the user. Orders from browsers need the token's `orders`
// claim with JWT, or a gateway told to take them (`allowOrders`) without. The page's
// client_order_id is the idempotency key: the first request claims it for its user (in
// Redis, so on every gateway); a resend is answered `duplicate: true` and never placed again.
import { checkParam, TICKER } from '../core/channel-param.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { ErrorCode, preview } from '../core/errors.ts';
import { streamKey, webOrderClaimKey } from '../core/keys.ts';
import type { TickBus } from '../bus/tick-bus.ts';
import { OrderCancels, OrderRequests, TickerUpdates, TickerUpdateSchema } from '../catalogs/broker.ts';
import type { JobService } from '../jobs/job-service.ts';
import type { CommandLink } from '../transports/commands.ts';
import type { BacktestCancelRequest, BacktestRequest, CancelRequest, DeskRequest, HistoryRequest, OrderRequest } from './requests.ts';
import type { Grants } from './session.ts';
import { visibleTo, webClientId, type Viewer } from './order-privacy.ts';

/** What a desk request ends in: its `ok` reply's fields, or a refusal. */
export type DeskOutcome = { readonly type: 'reply'; readonly op: DeskRequest['op']; readonly fields: Record<string, unknown> } | { readonly type: 'error'; readonly code: ErrorCode; readonly message: string };

export interface DeskOptions {
  readonly bus: TickBus;
  /** Redis commands (the gateway's alerts link): order claims across gateways, ticker history. Undefined: claims in memory, no history. */
  readonly redis: CommandLink | undefined;
  /** A Redis Cluster: a PUBLISH counts only the receivers on its own node, so 0 does not mean no broker heard it. */
  readonly cluster: boolean;
  /** Connections carry a verified JWT: orders need its `orders` claim. */
  readonly authenticated: boolean;
  /** Without JWT: take orders from clients at all (trusted networks only). */
  readonly allowOrders: boolean;
  /** Submitting and cancelling backtests; undefined when the gateway has no job records. */
  readonly jobs: { readonly service: JobService; readonly ownerOf: (jobId: string) => Promise<string | undefined> } | undefined;
}

const refuse = (code: ErrorCode, message: string): DeskOutcome => ({ type: 'error', code, message });

/**
 * Who owns a client_order_id placed from a browser: SET NX in Redis (every gateway sees the
 * same claims), or a bounded map for a gateway without Redis (the in-memory system).
 */
class OrderClaims {
  readonly #redis: CommandLink | undefined;
  readonly #memory = new Map<string, string>();

  constructor(redis: CommandLink | undefined) {
    this.#redis = redis;
  }

  /** Claims the id for the user; resolves with the owner (the user itself when it won, or when it claimed it before). */
  async claim(id: string, user: string): Promise<{ owner: string; fresh: boolean }> {
    if (!this.#redis) {
      const owner = this.#memory.get(id);
      if (owner !== undefined) return { owner, fresh: false };
      if (this.#memory.size >= GATEWAY_DEFAULTS.memoryOrderClaims) this.#memory.delete(this.#memory.keys().next().value as string);
      this.#memory.set(id, user);
      return { owner: user, fresh: true };
    }
    const key = webOrderClaimKey(id);
    if ((await this.#redis.send<string | null>(['SET', key, user, 'NX', 'EX', String(GATEWAY_DEFAULTS.webOrderClaimTtlSeconds)], key)) !== null) return { owner: user, fresh: true };
    return { owner: (await this.#redis.send<string | null>(['GET', key], key)) ?? user, fresh: false };
  }

  async ownerOf(id: string): Promise<string | undefined> {
    if (!this.#redis) return this.#memory.get(id);
    const key = webOrderClaimKey(id);
    return (await this.#redis.send<string | null>(['GET', key], key)) ?? undefined;
  }

  /** An order that could not be sent: its id may be tried again. */
  async release(id: string, user: string): Promise<void> {
    if (!this.#redis) {
      if (this.#memory.get(id) === user) this.#memory.delete(id);
      return;
    }
    const key = webOrderClaimKey(id);
    await this.#redis.send(['EVAL', "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", '1', key, user], key);
  }
}

export class DeskRequests {
  readonly #options: DeskOptions;
  readonly #claims: OrderClaims;

  constructor(options: DeskOptions) {
    this.#options = options;
    this.#claims = new OrderClaims(options.redis);
  }

  /** `user` is who the request acts for (already checked against the token); undefined only for `history`, which is anyone's. */
  handle(grants: Grants, request: DeskRequest, user: string | undefined, viewer: Viewer): Promise<DeskOutcome> {
    switch (request.op) {
      case 'history':
        return this.#history(grants, request, viewer);
      case 'order':
        return this.#order(grants, request, user as string);
      case 'cancel':
        return this.#cancel(grants, request, user as string);
      case 'backtest':
        return this.#backtest(grants, request, user as string);
      case 'backtest_cancel':
        return this.#backtestCancel(request, user as string);
    }
  }

  /** The symbol, by the ticker rule and the token's grants; or why not. */
  #symbol(grants: Grants, raw: string): string | DeskOutcome {
    let symbol: string;
    try {
      symbol = checkParam(TICKER, 'symbol', raw);
    } catch (error) {
      return refuse(ErrorCode.InvalidChannelParam, (error as Error).message);
    }
    if (grants.symbols && !grants.symbols.has(symbol) && !grants.symbols.has('*')) return refuse(ErrorCode.Forbidden, `Your token does not allow ${symbol}.`);
    return symbol;
  }

  /** May this connection trade the symbol: the token's `orders` claim with JWT, the gateway's flag without. */
  #mayTrade(grants: Grants, symbol: string): DeskOutcome | undefined {
    if (this.#options.authenticated) {
      const orders = grants.orders;
      if (!orders) return refuse(ErrorCode.Forbidden, 'Your token does not allow orders (it has no "orders" claim).');
      if (!orders.has('*') && !orders.has(symbol)) return refuse(ErrorCode.Forbidden, `Your token does not allow orders for ${symbol}.`);
      return undefined;
    }
    if (!this.#options.allowOrders) return refuse(ErrorCode.Forbidden, 'This gateway takes no orders: without JWT it must be started with --allow-orders (trusted networks only), or with JWT and an "orders" claim.');
    return undefined;
  }

  async #order(grants: Grants, op: OrderRequest, user: string): Promise<DeskOutcome> {
    const symbol = this.#symbol(grants, op.symbol);
    if (typeof symbol !== 'string') return symbol;
    const denied = this.#mayTrade(grants, symbol);
    if (denied) return denied;
    const claim = await this.#claims.claim(op.client_order_id, user);
    if (claim.owner !== user) return refuse(ErrorCode.DuplicateOrder, `client_order_id "${op.client_order_id}" was already used by another user: make a new one.`);
    // A resend (double click, reconnection, another gateway): placed once already.
    if (!claim.fresh) return { type: 'reply', op: 'order', fields: { client_order_id: op.client_order_id, symbol, duplicate: true } };
    const order = {
      client_order_id: op.client_order_id,
      symbol,
      side: op.side,
      qty: op.qty,
      type: op.type,
      ...(op.limit_price === undefined ? {} : { limit_price: op.limit_price }),
      time_in_force: op.time_in_force ?? 'day',
      client_id: webClientId(user),
    };
    let receivers: number | undefined;
    try {
      receivers = (await this.#options.bus.publish(OrderRequests, order)).receivers;
    } catch (error) {
      // Not sent: the same id may be tried again.
      await this.#claims.release(op.client_order_id, user).catch(() => undefined);
      throw error;
    }
    if (receivers === 0 && !this.#options.cluster) {
      await this.#claims.release(op.client_order_id, user);
      return refuse(ErrorCode.NotConnected, 'No broker is listening on ORDER_REQUESTS: the order was not placed (start one: tickbus broker, or tickbus up).');
    }
    return { type: 'reply', op: 'order', fields: { client_order_id: op.client_order_id, symbol } };
  }

  async #cancel(grants: Grants, op: CancelRequest, user: string): Promise<DeskOutcome> {
    const symbol = this.#symbol(grants, op.symbol);
    if (typeof symbol !== 'string') return symbol;
    const denied = this.#mayTrade(grants, symbol);
    if (denied) return denied;
    if ((await this.#claims.ownerOf(op.client_order_id)) !== user) return refuse(ErrorCode.Forbidden, `No order "${preview(op.client_order_id, 60)}" of yours was placed through a gateway.`);
    await this.#options.bus.publish(OrderCancels, { client_order_id: op.client_order_id, symbol, client_id: webClientId(user) });
    return { type: 'reply', op: 'cancel', fields: { client_order_id: op.client_order_id, symbol } };
  }

  /** The newest `limit` updates of the ticker's history, oldest first, each with its position (as in a batch). */
  async #history(grants: Grants, op: HistoryRequest, viewer: Viewer): Promise<DeskOutcome> {
    const symbol = this.#symbol(grants, op.symbol);
    if (typeof symbol !== 'string') return symbol;
    const redis = this.#options.redis;
    if (!redis) return { type: 'reply', op: 'history', fields: { symbol, updates: [], available: false } };
    const channel = TickerUpdates.of({ ticker: symbol }).name;
    const key = streamKey(channel);
    const limit = op.limit ?? GATEWAY_DEFAULTS.maxHistory;
    const entries = await redis.send<Array<[string, string[]]>>(['XREVRANGE', key, '+', '-', 'COUNT', String(limit)], key);
    const updates: Array<{ channel: string; symbol: string; position: string; replayed: true; data: unknown }> = [];
    for (const [position, fields] of [...entries].reverse()) {
      const at = fields.indexOf('payload');
      const data = at >= 0 ? envelopeData(fields[at + 1]) : undefined;
      // Entries that are not the catalog's messages (written by hand) are left out, as a live reader would.
      // Other browser users' orders are theirs alone (order-privacy.ts).
      if (data !== undefined && TickerUpdateSchema.safeParse(data).success && visibleTo(viewer, data)) updates.push({ channel, symbol, position, replayed: true, data });
    }
    return { type: 'reply', op: 'history', fields: { symbol, updates } };
  }

  async #backtest(grants: Grants, op: BacktestRequest, user: string): Promise<DeskOutcome> {
    const jobs = this.#options.jobs;
    if (!jobs) return refuse(ErrorCode.UnknownChannel, 'This gateway runs no backtests (it has no job records in Redis).');
    const symbols: string[] = [];
    for (const raw of op.symbols) {
      const symbol = this.#symbol(grants, raw);
      if (typeof symbol !== 'string') return symbol;
      symbols.push(symbol);
    }
    const record = await jobs.service.submit({
      user_id: user,
      symbols: [...new Set(symbols)],
      patterns: op.patterns,
      start_date: op.start_date,
      end_date: op.end_date,
      ...(op.parameters === undefined ? {} : { parameters: op.parameters }),
      ...(op.job_id === undefined ? {} : { job_id: op.job_id }),
    });
    return { type: 'reply', op: 'backtest', fields: { job_id: record.job_id, status: record.status } };
  }

  async #backtestCancel(op: BacktestCancelRequest, user: string): Promise<DeskOutcome> {
    const jobs = this.#options.jobs;
    if (!jobs) return refuse(ErrorCode.UnknownChannel, 'This gateway runs no backtests (it has no job records in Redis).');
    const owner = await jobs.ownerOf(op.job_id);
    if (owner === undefined) return refuse(ErrorCode.UnknownJob, `No job "${preview(op.job_id, 60)}".`);
    if (owner !== user) return refuse(ErrorCode.Forbidden, `Job "${preview(op.job_id, 60)}" is not yours.`);
    const status = await jobs.service.cancel(op.job_id);
    return { type: 'reply', op: 'backtest_cancel', fields: { job_id: op.job_id, status } };
  }
}

/** The `data` of an envelope's JSON, or undefined. */
function envelopeData(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object' && 'data' in value ? (value).data : undefined;
  } catch {
    return undefined;
  }
}
