// Alpaca's trading stream protocol on one AlpacaSocket: authenticate, listen to trade_updates,
// and turn each update into the feed's OrderEvent.
import { preview } from '../../../core/errors.ts';
import type { Logger } from '../../../core/logger.ts';
import type { FeedSink, OrderEvent } from '../feed.ts';
import type { AlpacaConfig, SocketTiming } from './alpaca-config.ts';
import { AlpacaSocket, type DropReason } from './alpaca-socket.ts';
import { frameItems, isRecord } from './frames.ts';

export interface TradingHooks {
  /** An order update; a returned promise pauses reading until it settles. */
  order(event: OrderEvent): Promise<void> | undefined;
  /** Listening to trade_updates, or given up on: start() may resolve. */
  ready(): void;
  problem(message: string, details: Parameters<FeedSink['problem']>[1]): void;
  /** A message the feed cannot read, as text. */
  malformed(text: string): void;
  /** The connection went down and is retried after `delayMs`. */
  retrying(attempt: number, delayMs: number, why: DropReason): void;
}

export class TradingStream {
  readonly #config: AlpacaConfig;
  readonly #hooks: TradingHooks;
  readonly #logger: Logger;
  readonly #socket: AlpacaSocket;
  /** Stopped by the feed: the frames still arriving are not read. */
  #stopped = false;

  constructor(config: AlpacaConfig, timing: SocketTiming, logger: Logger, hooks: TradingHooks) {
    this.#config = config;
    this.#hooks = hooks;
    this.#logger = logger;
    this.#socket = new AlpacaSocket('trading stream', config.tradingStreamUrl, timing, {
      opened: () => this.#onOpen(),
      message: (text) => this.#onFrame(text),
      retrying: (attempt, delayMs, why) => this.#hooks.retrying(attempt, delayMs, why),
    });
  }

  connect(): void {
    this.#socket.connect();
  }

  /** Closes for good; resolves once the socket is closed. */
  end(): Promise<void> {
    this.#stopped = true;
    return this.#socket.end();
  }

  #onOpen(): void {
    this.#socket.send({ action: 'authenticate', data: { key_id: this.#config.keyId, secret_key: this.#config.secretKey } });
    this.#socket.deadline(this.#socket.timing.handshakeTimeoutMs, 'authorization reply');
  }

  #onFrame(text: string): Promise<void> | undefined {
    const items = frameItems(text);
    if (!items) {
      this.#hooks.malformed(text);
      return undefined;
    }
    let waits: Promise<void>[] | undefined;
    for (const item of items) {
      if (!isRecord(item) || this.#stopped) continue;
      const data = isRecord(item.data) ? item.data : {};
      if (item.stream === 'authorization') {
        this.#onAuthorization(data);
      } else if (item.stream === 'listening') {
        this.#socket.clearDeadline();
        if (Array.isArray(data.streams) && data.streams.includes('trade_updates')) {
          this.#socket.healthy();
          this.#hooks.ready();
        } else {
          this.#hooks.problem('Alpaca did not grant the trade_updates stream; order updates will not arrive.', { code: 'listen', final: false });
        }
      } else if (item.stream === 'trade_updates') {
        const wait = this.#onTradeUpdate(data);
        if (wait) (waits ??= []).push(wait);
      }
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  #onAuthorization(data: Record<string, unknown>): void {
    if (data.status === 'authorized') {
      this.#socket.send({ action: 'listen', data: { streams: ['trade_updates'] } });
      this.#socket.deadline(this.#socket.timing.handshakeTimeoutMs, 'listening reply');
      return;
    }
    this.#hooks.problem(
      `Alpaca refused the trading stream's credentials (${preview(String(data.status))}); order updates have stopped. Check APCA_API_KEY_ID and APCA_API_SECRET_KEY, and that the keys belong to ${this.#config.tradingStreamUrl}.`,
      { code: 'unauthorized', final: true },
    );
    this.#socket.end().catch((error: unknown) => this.#logger.warn({ err: error }, 'could not close an Alpaca socket'));
    this.#hooks.ready();
  }

  #onTradeUpdate(data: Record<string, unknown>): Promise<void> | undefined {
    const { event, order } = data;
    if (typeof event !== 'string' || !isRecord(order)) {
      this.#hooks.malformed(JSON.stringify(data));
      return undefined;
    }
    // `new` and `accepted` events carry no timestamp of their own.
    const timestamp = typeof data.timestamp === 'string' ? data.timestamp : typeof order.updated_at === 'string' ? order.updated_at : new Date().toISOString();
    const symbol = typeof order.symbol === 'string' ? order.symbol : '';
    // Fills carry their own execution (price, qty) beside the order's running totals.
    const execution: Record<string, string> = {};
    for (const key of ['price', 'qty', 'position_qty', 'execution_id'] as const) {
      if (typeof data[key] === 'string') execution[key] = data[key];
    }
    return this.#hooks.order(Object.keys(execution).length > 0 ? { event, symbol, timestamp, order, execution } : { event, symbol, timestamp, order });
  }
}
