// Alpaca as a market-data feed and an execution venue: trades (optionally quotes and bars) from
// the market-data stream, order updates from the trading stream, and orders over the REST API.
import { WebSocket, type RawData } from 'ws';
import { backoffDelay, resolveReconnect, type ReconnectOptions } from '../../core/config.ts';
import { BusError, ClosedError, ConfigError, ErrorCode, NotConnectedError, preview } from '../../core/errors.ts';
import { createLogger, LogThrottle, type Logger } from '../../core/logger.ts';
import type { FeedSink, FeedState, MarketDataFeed, OrderEvent, OrderRequest } from './feed.ts';

export const ALPACA_DATA_FEEDS = ['iex', 'sip', 'test', 'delayed_sip'] as const;
export type AlpacaDataFeed = (typeof ALPACA_DATA_FEEDS)[number];

/** Every default of the Alpaca feed, named in one place. */
export const ALPACA_DEFAULTS = Object.freeze({
  feed: 'iex',
  dataStreamUrl: 'wss://stream.data.alpaca.markets/v2/{feed}',
  tradingStreamUrl: 'wss://paper-api.alpaca.markets/stream',
  baseUrl: 'https://paper-api.alpaca.markets',
  /** Alpaca's own JS SDK pings every 10 s and gives up on a pong after 5 s. */
  pingIntervalMs: 10_000,
  pongTimeoutMs: 5_000,
  /** Alpaca drops a client that has not authenticated within 10 s (404); we wait as long. */
  handshakeTimeoutMs: 10_000,
  /** Slower than the Redis default: Alpaca allows one data connection per account (406). */
  reconnectBaseMs: 500,
  reconnectMaxMs: 30_000,
  orderTimeoutMs: 10_000,
  /** How long a closing handshake may take before the socket is destroyed. */
  closeTimeoutMs: 1_000,
  maxPayloadBytes: 16 * 1024 * 1024,
});

export interface AlpacaConfig {
  readonly keyId: string;
  readonly secretKey: string;
  readonly feed: AlpacaDataFeed;
  /** The market-data stream, feed already substituted. */
  readonly dataStreamUrl: string;
  readonly tradingStreamUrl: string;
  /** The REST API, without a trailing slash or `/v2`. */
  readonly baseUrl: string;
}

/**
 * Reads the Alpaca configuration from the environment: APCA_API_KEY_ID and APCA_API_SECRET_KEY
 * (required), ALPACA_FEED, ALPACA_DATA_STREAM_URL, ALPACA_TRADING_STREAM_URL, APCA_API_BASE_URL.
 */
export function alpacaConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AlpacaConfig {
  const keyId = required(env, 'APCA_API_KEY_ID', 'your Alpaca API key id');
  const secretKey = required(env, 'APCA_API_SECRET_KEY', 'the secret of that key');
  const feedText = (env.ALPACA_FEED ?? '').trim().toLowerCase() || ALPACA_DEFAULTS.feed;
  if (!(ALPACA_DATA_FEEDS as readonly string[]).includes(feedText)) {
    throw new ConfigError(`ALPACA_FEED "${preview(feedText)}" is not one of ${ALPACA_DATA_FEEDS.join(', ')}.`);
  }
  const feed = feedText as AlpacaDataFeed;
  const dataTemplate = env.ALPACA_DATA_STREAM_URL?.trim() || ALPACA_DEFAULTS.dataStreamUrl;
  const dataStreamUrl = checkUrl(dataTemplate.replaceAll('{feed}', feed), 'ALPACA_DATA_STREAM_URL', ['ws:', 'wss:']);
  // Users of the official SDKs often write the base with /v2; orders go to {base}/v2/orders.
  const baseUrl = checkUrl(env.APCA_API_BASE_URL?.trim() || ALPACA_DEFAULTS.baseUrl, 'APCA_API_BASE_URL', ['http:', 'https:'])
    .replace(/\/+$/, '')
    .replace(/\/v2$/, '');
  // Live keys are refused by the paper stream, so the trading stream follows the REST base.
  const tradingStreamUrl = checkUrl(
    env.ALPACA_TRADING_STREAM_URL?.trim() || `${baseUrl.replace(/^http/, 'ws')}/stream`,
    'ALPACA_TRADING_STREAM_URL',
    ['ws:', 'wss:'],
  );
  return Object.freeze({ keyId, secretKey, feed, dataStreamUrl, tradingStreamUrl, baseUrl });
}

function required(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`${name} is not set: set it to ${what} (Alpaca dashboard, API keys) to use the Alpaca feed.`);
  return value;
}

function checkUrl(text: string, name: string, protocols: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${name} "${preview(text)}" is not a URL.`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, got "${preview(text)}".`);
  }
  return text;
}

export interface AlpacaFeedOptions {
  /** Also stream quotes, each as a tick at the mid price with volume 0. @default false */
  quotes?: boolean;
  /** Also stream minute bars, each as a tick at the close with the bar's volume. @default false */
  bars?: boolean;
  /** Listen to order updates on the trading stream. @default true */
  tradingStream?: boolean;
  /** @default 10000 */
  pingIntervalMs?: number;
  /** @default 5000 */
  pongTimeoutMs?: number;
  /** How long the greeting, the authentication reply and the listen reply may take. @default 10000 */
  handshakeTimeoutMs?: number;
  /** @default { baseMs: 500, maxMs: 30000 } */
  reconnect?: ReconnectOptions;
  /** How long POST /v2/orders may take before the order is reported rejected. @default 10000 */
  orderTimeoutMs?: number;
  /** @default a pino logger named "alpaca-feed" */
  logger?: Logger;
  /** The jitter source of the back-off (tests make it deterministic). @default Math.random */
  random?: () => number;
}

type Channel = 'trades' | 'quotes' | 'bars';
type Details = Parameters<FeedSink['problem']>[1];

/** Data-stream error codes that end the feed: retrying cannot fix them. */
const FINAL_CODES = new Set([402, 409, 410]);
/** Error codes that answer a subscribe or unsubscribe request. */
const REQUEST_CODES = new Set([400, 405]);

export class AlpacaFeed implements MarketDataFeed {
  readonly name = 'alpaca';
  readonly updatesInPlace = true;

  readonly #config: AlpacaConfig;
  readonly #channels: readonly Channel[];
  readonly #logger: Logger;
  readonly #orderTimeoutMs: number;
  readonly #data: AlpacaSocket;
  readonly #trading: AlpacaSocket | undefined;
  readonly #throttle = new LogThrottle(5);

  #state: FeedState = 'idle';
  #sink: FeedSink | undefined;
  #stopping: Promise<void> | undefined;
  #dataReady: (() => void) | undefined;
  #tradingReady: (() => void) | undefined;
  readonly #orders = new Set<Promise<void>>();

  /** What the user asked for; the echo (#echo) is what Alpaca actually streams. */
  readonly #desired = new Set<string>();
  #echo: Record<Channel, Set<string>> = emptyEcho();
  #authenticated = false;
  /** Subscribe/unsubscribe requests not yet answered; Alpaca answers each with an echo or an error. */
  #outstanding = 0;
  readonly #requestErrors: { code: number; msg: string }[] = [];
  /** Symbols already retried one by one after a refused request. */
  readonly #probed = new Set<string>();

  constructor(config: AlpacaConfig, options: AlpacaFeedOptions = {}) {
    this.#config = config;
    this.#channels = ['trades', ...(options.quotes ? (['quotes'] as const) : []), ...(options.bars ? (['bars'] as const) : [])];
    this.#logger = options.logger ?? createLogger('alpaca-feed');
    this.#orderTimeoutMs = positive(options.orderTimeoutMs ?? ALPACA_DEFAULTS.orderTimeoutMs, 'orderTimeoutMs');
    const timing: SocketTiming = {
      pingIntervalMs: positive(options.pingIntervalMs ?? ALPACA_DEFAULTS.pingIntervalMs, 'pingIntervalMs'),
      pongTimeoutMs: positive(options.pongTimeoutMs ?? ALPACA_DEFAULTS.pongTimeoutMs, 'pongTimeoutMs'),
      handshakeTimeoutMs: positive(options.handshakeTimeoutMs ?? ALPACA_DEFAULTS.handshakeTimeoutMs, 'handshakeTimeoutMs'),
      reconnect: resolveReconnect({
        baseMs: options.reconnect?.baseMs ?? ALPACA_DEFAULTS.reconnectBaseMs,
        maxMs: options.reconnect?.maxMs ?? ALPACA_DEFAULTS.reconnectMaxMs,
      }),
      random: options.random ?? Math.random,
    };
    this.#data = new AlpacaSocket('market-data stream', config.dataStreamUrl, timing, {
      opened: () => this.#data.deadline(timing.handshakeTimeoutMs, 'connected greeting'),
      message: (text) => this.#onDataFrame(text),
      retrying: (attempt, delayMs, why) => this.#onRetrying(this.#data, attempt, delayMs, why),
    });
    if (options.tradingStream !== false) {
      const trading: AlpacaSocket = new AlpacaSocket('trading stream', config.tradingStreamUrl, timing, {
        opened: () => this.#onTradingOpen(trading, timing.handshakeTimeoutMs),
        message: (text) => this.#onTradingFrame(trading, text),
        retrying: (attempt, delayMs, why) => this.#onRetrying(trading, attempt, delayMs, why),
      });
      this.#trading = trading;
    }
  }

  get state(): FeedState {
    return this.#state;
  }

  /** The tickers the feed is asked to stream. */
  get tickers(): readonly string[] {
    return [...this.#desired];
  }

  /** What Alpaca last confirmed (its subscription echo): the truth about what streams. */
  get subscription(): { readonly trades: readonly string[]; readonly quotes: readonly string[]; readonly bars: readonly string[] } {
    return { trades: [...this.#echo.trades], quotes: [...this.#echo.quotes], bars: [...this.#echo.bars] };
  }

  /**
   * Connects both streams. Resolves once each has settled its first attempt: subscribed (or
   * listening), failed for good, or retrying. Upstream trouble goes to sink.problem, never here.
   */
  async start(tickers: readonly string[], sink: FeedSink): Promise<void> {
    if (this.#state === 'stopped') throw new ClosedError('Alpaca feed');
    if (this.#state !== 'idle') throw new BusError(ErrorCode.Config, 'start() was already called on this Alpaca feed; call update() to change its tickers.');
    this.#sink = sink;
    this.#state = 'starting';
    for (const t of tickers) this.#desired.add(t);
    const ready = [new Promise<void>((resolve) => (this.#dataReady = resolve))];
    if (this.#trading) ready.push(new Promise<void>((resolve) => (this.#tradingReady = resolve)));
    this.#data.connect();
    this.#trading?.connect();
    await Promise.all(ready);
  }

  /** Sends unsubscribe then subscribe on the live connection; Alpaca's echo confirms them later. */
  update(add: readonly string[], remove: readonly string[]): Promise<void> {
    if (this.#stopping) return Promise.reject(new ClosedError('Alpaca feed'));
    const removed = unique(remove).filter((s) => this.#desired.delete(s));
    for (const s of removed) this.#probed.delete(s);
    const added = unique(add).filter((s) => !this.#desired.has(s));
    for (const s of added) this.#desired.add(s);
    // Without a live session the changes go out with the subscription sent after authentication.
    if (this.#authenticated) {
      // Unsubscribing first frees room under the account's symbol limit.
      if (removed.length > 0) this.#request('unsubscribe', removed);
      if (added.length > 0) this.#request('subscribe', added);
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'stopped';
    this.#authenticated = false;
    this.#dataReady?.();
    this.#tradingReady?.();
    await Promise.all([this.#data.end(), this.#trading?.end()]);
    // Orders already sent still get their outcome reported; nothing reaches the sink after that.
    await Promise.all([...this.#orders]);
    this.#sink = undefined;
  }

  /**
   * POSTs the order. Resolves once Alpaca answered: an accepted order's updates then arrive on the
   * trading stream; a refused one (or one that never got an answer) becomes a `rejected` update.
   */
  placeOrder(request: OrderRequest): Promise<void> {
    if (this.#stopping) return Promise.reject(new ClosedError('Alpaca feed'));
    if (!this.#sink) return Promise.reject(new NotConnectedError('The Alpaca feed is not started: call start() before placeOrder().'));
    const sending = this.#sendOrder(request).finally(() => this.#orders.delete(sending));
    this.#orders.add(sending);
    return sending;
  }

  async #sendOrder(request: OrderRequest): Promise<void> {
    const body: Record<string, string> = {
      symbol: request.symbol,
      qty: String(request.qty),
      side: request.side,
      type: request.type,
      time_in_force: request.time_in_force,
      client_order_id: request.client_order_id,
    };
    if (request.type === 'limit' && request.limit_price !== undefined) body.limit_price = String(request.limit_price);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#orderTimeoutMs);
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
      const why = abort.signal.aborted ? `no answer within ${this.#orderTimeoutMs} ms` : errorMessage(error);
      await this.#rejectOrder(request, body, `The order request to Alpaca failed (${why}); it may still have been placed, check the open orders.`);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (status >= 200 && status < 300) {
      this.#logger.debug({ client_order_id: request.client_order_id, status }, 'Alpaca accepted the order');
      return;
    }
    const parsed = parseJson(text);
    const message = isRecord(parsed) && typeof parsed.message === 'string' ? parsed.message : `HTTP ${status}: ${preview(text)}`;
    await this.#rejectOrder(request, body, message);
  }

  #rejectOrder(request: OrderRequest, body: Record<string, string>, reason: string): Promise<void> | undefined {
    const sink = this.#sink;
    if (!sink) return undefined;
    const event: OrderEvent = {
      event: 'rejected',
      symbol: request.symbol,
      timestamp: new Date().toISOString(),
      order: { ...body, status: 'rejected' },
      reason,
    };
    return this.#deliver(() => sink.order(event), 'order');
  }

  // ---- market-data stream -------------------------------------------------------------

  #onDataFrame(text: string): Promise<void> | undefined {
    const items = frameItems(text);
    if (!items) {
      this.#malformed('market-data stream', text);
      return undefined;
    }
    const connection = this.#data.connection;
    let waits: Promise<void>[] | undefined;
    for (const item of items) {
      // An error in this frame may have dropped the connection: the rest belongs to it.
      if (this.#data.connection !== connection || this.#stopping || this.#state === 'failed') break;
      const wait = isRecord(item) ? this.#onDataItem(item) : undefined;
      if (wait) (waits ??= []).push(wait);
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  #onDataItem(m: Record<string, unknown>): Promise<void> | undefined {
    switch (m.T) {
      case 't':
        return this.#tick(m, m.p, m.s);
      case 'q': {
        if (!this.#channels.includes('quotes')) return undefined;
        const { bp, ap } = m;
        // A one-sided quote (a price of 0) has no meaningful mid.
        if (!isNumber(bp) || !isNumber(ap) || bp <= 0 || ap <= 0) return undefined;
        return this.#tick(m, (bp + ap) / 2, 0);
      }
      case 'b':
        return this.#channels.includes('bars') ? this.#tick(m, m.c, m.v) : undefined;
      case 'success':
        this.#onSuccess(m.msg);
        return undefined;
      case 'subscription':
        this.#onEcho(m);
        return undefined;
      case 'error':
        this.#onDataError(typeof m.code === 'number' ? m.code : Number(m.code), typeof m.msg === 'string' ? m.msg : '');
        return undefined;
      default:
        // Corrections, cancel errors, statuses, LULDs and updated bars are not prices to stream.
        return undefined;
    }
  }

  #tick(m: Record<string, unknown>, price: unknown, volume: unknown): Promise<void> | undefined {
    const { S: symbol, t: timestamp } = m;
    if (typeof symbol !== 'string' || typeof timestamp !== 'string' || !isNumber(price) || price < 0 || !isNumber(volume) || volume < 0) {
      this.#malformed('market-data stream', JSON.stringify(m));
      return undefined;
    }
    // After an unsubscribe, prints already in flight must not reach a broker that dropped the ticker.
    if (!this.#desired.has(symbol) && !this.#desired.has('*')) return undefined;
    const sink = this.#sink;
    return sink && this.#deliver(() => sink.trade({ symbol, price, volume, timestamp }), 'trade');
  }

  #onSuccess(msg: unknown): void {
    if (msg === 'connected') {
      this.#data.send({ action: 'auth', key: this.#config.keyId, secret: this.#config.secretKey });
      this.#data.deadline(this.#data.timing.handshakeTimeoutMs, 'authentication reply');
    } else if (msg === 'authenticated') {
      this.#data.clearDeadline();
      this.#authenticated = true;
      this.#state = 'streaming';
      this.#echo = emptyEcho();
      this.#outstanding = 0;
      this.#requestErrors.length = 0;
      this.#probed.clear();
      if (this.#desired.size > 0) {
        this.#request('subscribe', [...this.#desired]);
      } else {
        this.#data.healthy();
        this.#settle();
      }
    }
  }

  #request(action: 'subscribe' | 'unsubscribe', symbols: readonly string[]): void {
    const message: Record<string, unknown> = { action };
    for (const channel of this.#channels) message[channel] = symbols;
    if (this.#data.send(message)) this.#outstanding++;
  }

  #onEcho(m: Record<string, unknown>): void {
    const echo = emptyEcho();
    for (const channel of ['trades', 'quotes', 'bars'] as const) {
      const list = m[channel];
      if (Array.isArray(list)) for (const s of list) if (typeof s === 'string') echo[channel].add(s);
    }
    this.#echo = echo;
    this.#outstanding = Math.max(0, this.#outstanding - 1);
    // A confirmed subscription means the session is healthy: the next failure starts from the base delay.
    this.#data.healthy();
    this.#settle();
  }

  #onDataError(code: number, msg: string): void {
    const what = `${code}${msg ? ` ${msg}` : ''}`;
    if (code === 403) {
      this.#logger.debug('Alpaca says the market-data stream is already authenticated; ignored');
    } else if (FINAL_CODES.has(code)) {
      this.#fail(code, `Alpaca refused the market-data stream (${what}); the feed has stopped. ${finalAdvice(code)}`);
    } else if (REQUEST_CODES.has(code) && this.#outstanding > 0) {
      this.#outstanding--;
      this.#requestErrors.push({ code, msg });
      this.#settle();
    } else if (code === 400) {
      this.#problem(`Alpaca answered the market-data stream with ${what}.`, { code, final: false });
    } else if (code === 401 || code === 404 || code === 406 || code === 407 || code === 500) {
      this.#data.drop(`Alpaca error ${what}`, code);
    } else {
      this.#problem(`Alpaca reported ${what} on the market-data stream.`, { code, final: false });
    }
  }

  /**
   * Runs when every request has been answered: whatever the user asked for that the echo lacks was
   * refused. A refused request is all-or-nothing at Alpaca (405 leaves the subscription as it was;
   * one malformed symbol gives 400 for the whole message), so its symbols are retried one by one
   * to keep those Alpaca accepts; what is still refused then is reported and forgotten.
   */
  #settle(): void {
    if (this.#outstanding > 0 || !this.#authenticated) return;
    const errors = this.#requestErrors.splice(0);
    const missing = [...this.#desired].filter((s) => !this.#confirmed(s));
    const untried = missing.filter((s) => !this.#probed.has(s));
    if (errors.length > 0 && untried.length > 1) {
      for (const s of untried) {
        this.#probed.add(s);
        this.#request('subscribe', [s]);
      }
      return;
    }
    // start() resolves once the first subscription is settled, refusals reported.
    this.#dataReady?.();
    this.#dataReady = undefined;
    if (missing.length === 0) return;
    if (errors.length === 0) {
      this.#problem(`Alpaca did not confirm the subscription of ${missing.join(', ')}.`, { final: false });
      return;
    }
    const codes = [...new Set(errors.map((e) => e.code))];
    const reasons = [...new Set(errors.map((e) => `${e.code}${e.msg ? ` ${e.msg}` : ''}`))].join('; ');
    for (const s of missing) {
      this.#desired.delete(s);
      this.#probed.delete(s);
    }
    this.#problem(
      `Alpaca refused ${missing.length === 1 ? 'the symbol' : `${missing.length} symbols`} ${missing.join(', ')} (${reasons}); ` +
        `the feed keeps the ${this.#echo.trades.size} it streams.`,
      { code: codes[0], final: false },
    );
  }

  #confirmed(symbol: string): boolean {
    return this.#channels.every((c) => this.#echo[c].has(symbol) || this.#echo[c].has('*'));
  }

  #fail(code: number | string, message: string): void {
    this.#state = 'failed';
    this.#authenticated = false;
    this.#problem(message, { code, final: true });
    this.#data.end().catch((error: unknown) => this.#logger.warn({ err: error }, 'could not close an Alpaca socket'));
    this.#dataReady?.();
    this.#dataReady = undefined;
  }

  // ---- trading stream -----------------------------------------------------------------

  #onTradingOpen(trading: AlpacaSocket, timeoutMs: number): void {
    trading.send({ action: 'authenticate', data: { key_id: this.#config.keyId, secret_key: this.#config.secretKey } });
    trading.deadline(timeoutMs, 'authorization reply');
  }

  #onTradingFrame(trading: AlpacaSocket, text: string): Promise<void> | undefined {
    const items = frameItems(text);
    if (!items) {
      this.#malformed('trading stream', text);
      return undefined;
    }
    let waits: Promise<void>[] | undefined;
    for (const item of items) {
      if (!isRecord(item) || this.#stopping) continue;
      const data = isRecord(item.data) ? item.data : {};
      if (item.stream === 'authorization') {
        if (data.status === 'authorized') {
          trading.send({ action: 'listen', data: { streams: ['trade_updates'] } });
          trading.deadline(trading.timing.handshakeTimeoutMs, 'listening reply');
        } else {
          this.#problem(
            `Alpaca refused the trading stream's credentials (${preview(String(data.status))}); order updates have stopped. Check APCA_API_KEY_ID and APCA_API_SECRET_KEY, and that the keys belong to ${this.#config.tradingStreamUrl}.`,
            { code: 'unauthorized', final: true },
          );
          trading.end().catch((error: unknown) => this.#logger.warn({ err: error }, 'could not close an Alpaca socket'));
          this.#tradingReady?.();
        }
      } else if (item.stream === 'listening') {
        trading.clearDeadline();
        if (Array.isArray(data.streams) && data.streams.includes('trade_updates')) {
          trading.healthy();
          this.#tradingReady?.();
        } else {
          this.#problem('Alpaca did not grant the trade_updates stream; order updates will not arrive.', { code: 'listen', final: false });
        }
      } else if (item.stream === 'trade_updates') {
        const wait = this.#onTradeUpdate(data);
        if (wait) (waits ??= []).push(wait);
      }
    }
    return waits && Promise.all(waits).then(() => undefined);
  }

  #onTradeUpdate(data: Record<string, unknown>): Promise<void> | undefined {
    const { event, order } = data;
    if (typeof event !== 'string' || !isRecord(order)) {
      this.#malformed('trading stream', JSON.stringify(data));
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
    const sink = this.#sink;
    const update = Object.keys(execution).length > 0 ? { event, symbol, timestamp, order, execution } : { event, symbol, timestamp, order };
    return sink && this.#deliver(() => sink.order(update), 'order');
  }

  // ---- both streams -------------------------------------------------------------------

  #onRetrying(socket: AlpacaSocket, attempt: number, delayMs: number, why: { reason: string; code: number | undefined }): void {
    if (socket === this.#data) {
      this.#authenticated = false;
      this.#state = 'reconnecting';
      this.#dataReady?.();
      this.#dataReady = undefined;
    } else {
      this.#tradingReady?.();
      this.#tradingReady = undefined;
    }
    // One report per outage; the attempts that follow only go to reconnecting().
    if (attempt === 1) this.#problem(`The Alpaca ${socket.label} is down (${why.reason}); reconnecting.`, { code: why.code, final: false });
    const sink = this.#sink;
    // #deliver's promise never rejects (it reports the sink's failure itself).
    if (sink?.reconnecting) this.#deliver(() => sink.reconnecting?.(attempt, delayMs), 'reconnecting')?.catch(() => undefined);
  }

  /** Calls the sink without letting it throw into the feed; returns its promise when it asks us to slow down. */
  #deliver(call: () => void | Promise<void>, what: string): Promise<void> | undefined {
    try {
      const result = call();
      if (result instanceof Promise) return result.catch((error: unknown) => this.#sinkFailed(what, error));
    } catch (error) {
      this.#sinkFailed(what, error);
    }
    return undefined;
  }

  #sinkFailed(what: string, error: unknown): void {
    if (this.#throttle.take() >= 0) this.#logger.error({ err: error }, `The feed sink's ${what}() failed`);
  }

  #problem(message: string, details: Details): void {
    this.#logger.warn({ code: details.code, final: details.final }, message);
    const sink = this.#sink;
    if (!sink || this.#state === 'stopped') return;
    try {
      sink.problem(message, details);
    } catch (error) {
      this.#sinkFailed('problem', error);
    }
  }

  #malformed(where: string, text: string): void {
    const suppressed = this.#throttle.take();
    if (suppressed < 0) return;
    this.#problem(`The Alpaca ${where} sent a message the feed cannot read: ${preview(text)}${suppressed > 0 ? ` (${suppressed} more not reported)` : ''}`, {
      code: 'malformed',
      final: false,
    });
  }
}

function finalAdvice(code: number): string {
  if (code === 402) return 'Check APCA_API_KEY_ID and APCA_API_SECRET_KEY.';
  if (code === 409) return 'The account has no subscription for this data feed: set ALPACA_FEED=iex, or upgrade the subscription.';
  return 'The data feed does not support this subscription: check ALPACA_FEED and the feed options.';
}

interface SocketTiming {
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly reconnect: Required<ReconnectOptions>;
  readonly random: () => number;
}

interface SocketHooks {
  /** The socket is open: start the protocol. */
  opened(): void;
  /** One frame, text or binary, as text; a returned promise pauses reading until it settles. */
  message(text: string): Promise<void> | undefined;
  /** The connection went down and is retried after `delayMs`. */
  retrying(attempt: number, delayMs: number, why: { reason: string; code: number | undefined }): void;
}

/**
 * One Alpaca WebSocket kept alive: pings with a pong deadline, protocol deadlines, reconnection
 * with back-off and jitter, and a close that waits until the socket is really gone. Protocol
 * logic stays with the feed; this class only knows sockets and timers.
 */
class AlpacaSocket {
  #ws: WebSocket | undefined;
  #connection = 0;
  #attempt = 0;
  #ended = false;
  #ending: Promise<void> | undefined;
  #drop: { reason: string; code: number | undefined } | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #pauses = 0;

  readonly label: string;
  readonly url: string;
  readonly timing: SocketTiming;
  private readonly hooks: SocketHooks;

  constructor(label: string, url: string, timing: SocketTiming, hooks: SocketHooks) {
    this.label = label;
    this.url = url;
    this.timing = timing;
    this.hooks = hooks;
  }

  /** Increments with each connection, so that a loop over one frame can tell it was dropped. */
  get connection(): number {
    return this.#connection;
  }

  connect(): void {
    this.#retryTimer = undefined;
    if (this.#ended) return;
    this.#connection++;
    this.#drop = undefined;
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      handshakeTimeout: this.timing.handshakeTimeoutMs,
      maxPayload: ALPACA_DEFAULTS.maxPayloadBytes,
    });
    this.#ws = ws;
    let failure: string | undefined;
    ws.on('open', () => {
      if (ws !== this.#ws) return;
      this.#pingTimer = setInterval(() => this.#ping(ws), this.timing.pingIntervalMs);
      this.hooks.opened();
    });
    ws.on('message', (data: RawData) => {
      if (ws !== this.#ws || this.#ended) return;
      // Paper sends binary frames holding JSON text, live may send text: both decode the same.
      const wait = this.hooks.message(decode(data));
      if (wait) this.#pauseUntil(ws, wait);
    });
    ws.on('pong', () => {
      if (ws !== this.#ws) return;
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    });
    // 'close' always follows 'error'; the reconnection is decided there, once.
    ws.on('error', (error: Error) => {
      failure ??= error.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.#onClose(ws, failure ?? `closed by the server, code ${code}${reason.length > 0 ? ` ${preview(reason.toString())}` : ''}`);
    });
  }

  send(message: unknown): boolean {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Drops the connection; it is retried with back-off. */
  drop(reason: string, code?: number): void {
    if (this.#ended || !this.#ws) return;
    this.#drop ??= { reason, code };
    this.#ws.terminate();
  }

  /** Drops the connection unless clearDeadline() is called within `ms`. */
  deadline(ms: number, what: string): void {
    this.clearDeadline();
    this.#deadlineTimer = setTimeout(() => this.drop(`no ${what} within ${ms} ms`), ms);
  }

  clearDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
  }

  /** The session works: the next outage starts again from the base delay. */
  healthy(): void {
    this.#attempt = 0;
  }

  /** Closes for good (no reconnection); resolves once the socket is closed. */
  end(): Promise<void> {
    this.#ending ??= this.#end();
    return this.#ending;
  }

  async #end(): Promise<void> {
    this.#ended = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const ws = this.#ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), ALPACA_DEFAULTS.closeTimeoutMs);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    });
  }

  #ping(ws: WebSocket): void {
    // While the sink holds us paused the pong cannot be read: that is not a dead server.
    if (ws.readyState !== WebSocket.OPEN || this.#pauses > 0) return;
    ws.ping();
    this.#pongTimer ??= setTimeout(() => {
      this.#pongTimer = undefined;
      this.drop(`no pong within ${this.timing.pongTimeoutMs} ms`);
    }, this.timing.pongTimeoutMs);
  }

  #pauseUntil(ws: WebSocket, wait: Promise<void>): void {
    if (this.#pauses++ === 0) {
      ws.pause();
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    }
    // Resumes whatever became of the wait: a rejected one must not leave the socket paused.
    const resume = () => {
      if (--this.#pauses === 0 && ws === this.#ws) ws.resume();
    };
    wait.then(resume, resume);
  }

  #onClose(ws: WebSocket, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#pauses = 0;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    this.#pingTimer = this.#pongTimer = undefined;
    this.clearDeadline();
    if (this.#ended) return;
    const why = this.#drop ?? { reason, code: undefined };
    this.#attempt++;
    const delay = backoffDelay(this.#attempt - 1, this.timing.reconnect, this.timing.random);
    this.#retryTimer = setTimeout(() => this.connect(), delay);
    this.hooks.retrying(this.#attempt, delay, why);
  }
}

function emptyEcho(): Record<Channel, Set<string>> {
  return { trades: new Set(), quotes: new Set(), bars: new Set() };
}

function decode(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** A frame's messages: Alpaca sends arrays (possibly batched); a lone object is read as one. */
function frameItems(text: string): unknown[] | undefined {
  const parsed = parseJson(text);
  if (Array.isArray(parsed)) return parsed as unknown[];
  return isRecord(parsed) ? [parsed] : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function unique(symbols: readonly string[]): string[] {
  return [...new Set(symbols)];
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`The Alpaca feed option ${name} must be a positive number, got ${String(value)}.`);
  return value;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
