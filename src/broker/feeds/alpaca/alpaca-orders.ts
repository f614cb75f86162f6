// Alpaca's REST order client: POST /v2/orders with a timeout. A refused order, or one that
// never got an answer, comes back as the `rejected` order event the feed reports.
import { preview } from '../../../core/errors.ts';
import type { CancelRequest, OrderEvent, OrderRequest } from '../feed.ts';
import type { AlpacaConfig } from './alpaca-config.ts';
import { isRecord, parseJson } from './frames.ts';

/** What came of one order request: accepted (its updates come on the trading stream), or refused. */
export type OrderOutcome = { readonly accepted: true; readonly status: number } | { readonly accepted: false; readonly rejected: OrderEvent };

export class AlpacaOrderClient {
  readonly #config: AlpacaConfig;
  readonly #timeoutMs: number;

  constructor(config: AlpacaConfig, timeoutMs: number) {
    this.#config = config;
    this.#timeoutMs = timeoutMs;
  }

  /** POSTs the order; never rejects: a failure is the outcome `accepted: false`. */
  async place(request: OrderRequest): Promise<OrderOutcome> {
    const body = orderBody(request);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await fetch(`${this.#config.baseUrl}/v2/orders`, {
        method: 'POST',
        headers: {
          'APCA-API-KEY-ID': this.#config.keyId,
          'APCA-API-SECRET-KEY': this.#config.secretKey,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      // The request may have reached Alpaca before the answer was lost: say so.
      const why = abort.signal.aborted ? `no answer within ${this.#timeoutMs} ms` : errorMessage(error);
      return refused(request, body, `The order request to Alpaca failed (${why}); it may still have been placed, check the open orders.`);
    } finally {
      clearTimeout(timer);
    }
    if (status >= 200 && status < 300) return { accepted: true, status };
    const parsed = parseJson(text);
    const message = isRecord(parsed) && typeof parsed.message === 'string' ? parsed.message : `HTTP ${status}: ${preview(text)}`;
    return refused(request, body, message);
  }

  /**
   * Cancels an order by its client_order_id: Alpaca's DELETE /v2/orders/{id} needs its own
   * id, looked up first (GET /v2/orders:by_client_order_id). Accepted (204): the `canceled`
   * update comes on the trading stream. Never rejects: a refusal (422: not cancelable, 404:
   * unknown) or a failure is the `order_cancel_rejected` event to report.
   */
  async cancel(request: CancelRequest): Promise<{ readonly accepted: true } | { readonly accepted: false; readonly rejected: OrderEvent }> {
    const refuse = (reason: string) => ({
      accepted: false as const,
      rejected: { event: 'order_cancel_rejected', symbol: request.symbol, timestamp: new Date().toISOString(), order: { client_order_id: request.client_order_id, symbol: request.symbol }, reason },
    });
    try {
      const found = await this.#call('GET', `/v2/orders:by_client_order_id?client_order_id=${encodeURIComponent(request.client_order_id)}`);
      const order = parseJson(found.text);
      if (found.status !== 200 || !isRecord(order) || typeof order.id !== 'string') return refuse(alpacaMessage(found.status, found.text, 'no such order at Alpaca'));
      const deleted = await this.#call('DELETE', `/v2/orders/${encodeURIComponent(order.id)}`);
      if (deleted.status >= 200 && deleted.status < 300) return { accepted: true };
      return refuse(alpacaMessage(deleted.status, deleted.text, 'Alpaca refused the cancel'));
    } catch (error) {
      return refuse(`The cancel request to Alpaca failed (${errorMessage(error)}); the order may still be open.`);
    }
  }

  async #call(method: 'GET' | 'DELETE', path: string): Promise<{ status: number; text: string }> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    try {
      const response = await fetch(`${this.#config.baseUrl}${path}`, {
        method,
        headers: { 'APCA-API-KEY-ID': this.#config.keyId, 'APCA-API-SECRET-KEY': this.#config.secretKey, Accept: 'application/json' },
        signal: abort.signal,
      });
      return { status: response.status, text: await response.text() };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Alpaca's `message` of an error answer, or what the status says. */
function alpacaMessage(status: number, text: string, fallback: string): string {
  const parsed = parseJson(text);
  return isRecord(parsed) && typeof parsed.message === 'string' ? parsed.message : `${fallback} (HTTP ${status}${text ? `: ${preview(text)}` : ''})`;
}

/** The order as Alpaca's API takes it: amounts as strings. */
function orderBody(request: OrderRequest): Record<string, string> {
  const body: Record<string, string> = {
    symbol: request.symbol,
    qty: String(request.qty),
    side: request.side,
    type: request.type,
    time_in_force: request.time_in_force,
    client_order_id: request.client_order_id,
  };
  if (request.type === 'limit' && request.limit_price !== undefined) body.limit_price = String(request.limit_price);
  return body;
}

function refused(request: OrderRequest, body: Record<string, string>, reason: string): OrderOutcome {
  const rejected: OrderEvent = {
    event: 'rejected',
    symbol: request.symbol,
    timestamp: new Date().toISOString(),
    order: { ...body, status: 'rejected' },
    reason,
  };
  return { accepted: false, rejected };
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
