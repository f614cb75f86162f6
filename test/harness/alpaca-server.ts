// A local stand-in for Alpaca that speaks its documented protocols (market-data stream, trading
// stream, POST /v2/orders) on 127.0.0.1, records what clients sent, and misbehaves on request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export interface AlpacaServerOptions {
  /** The key pair clients must present. @default { keyId: 'test-key', secretKey: 'test-secret' } */
  keyId?: string;
  secretKey?: string;
  /** Most distinct symbols one data connection may subscribe to (405 beyond). @default Infinity */
  symbolLimit?: number;
  /** How long a data client may take to authenticate before 404 and a close. @default 10000 */
  authTimeoutMs?: number;
  /** Frame type of the trading stream: paper sends binary. @default 'binary' */
  tradingFrames?: 'binary' | 'text';
}

export type OrderOutcome = 'accept' | 'insufficient-buying-power' | 'invalid';

export type Trade = {
  T: 't';
  S: string;
  i: number;
  x: string;
  p: number;
  s: number;
  c: string[];
  z: string;
  t: string;
};

export interface ReceivedOrder {
  readonly headers: IncomingMessage['headers'];
  readonly body: unknown;
}

interface DataClient {
  readonly id: number;
  readonly ws: WebSocket;
  authenticated: boolean;
  readonly subscription: Record<'trades' | 'quotes' | 'bars', Set<string>>;
  authTimer: NodeJS.Timeout | undefined;
}

interface TradingClient {
  readonly ws: WebSocket;
  authorized: boolean;
  listening: boolean;
}

/** Symbols the server accepts: what Alpaca lists, plus its `*` wildcard. Anything else is 400. */
const SYMBOL = /^(\*|[A-Z][A-Z0-9.\-/]{0,20})$/;
const FEEDS = new Set(['iex', 'sip', 'test', 'delayed_sip']);

export class AlpacaServer {
  readonly keyId: string;
  readonly secretKey: string;
  /** Every JSON message data clients sent, in order, with the connection it came on. */
  readonly dataMessages: { connection: number; message: unknown }[] = [];
  /** Every JSON message trading clients sent, in order. */
  readonly tradingMessages: unknown[] = [];
  /** Every order POSTed, valid or not. */
  readonly orders: ReceivedOrder[] = [];
  /** Frame types of the trading-stream messages the server sent. */
  readonly tradingFramesSent: ('binary' | 'text')[] = [];
  /** Data-stream and trading-stream connections accepted so far. */
  dataConnections = 0;
  tradingConnections = 0;
  /** When false, pings go unanswered (a half-dead server). */
  answerPings = true;
  /** What POST /v2/orders answers. */
  orderOutcome: OrderOutcome = 'accept';
  symbolLimit: number;
  /** Price of the fills the server reports for market orders. */
  fillPrice = 100;
  /** When false, accepted limit orders rest (stay `new`) until cancelled, instead of filling. */
  fillLimitOrders = true;
  /** Orders accepted, by their id, with their current status (for GET by client_order_id and DELETE). */
  readonly placed = new Map<string, Record<string, unknown>>();
  /** Every DELETE /v2/orders/{id} received, by order id. */
  readonly cancels: string[] = [];

  readonly #http: Server;
  readonly #dataWss = new WebSocketServer({ noServer: true, perMessageDeflate: false, autoPong: false });
  readonly #tradingWss = new WebSocketServer({ noServer: true, perMessageDeflate: false, autoPong: false });
  readonly #data = new Set<DataClient>();
  readonly #trading = new Set<TradingClient>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #authTimeoutMs: number;
  readonly #tradingFrames: 'binary' | 'text';
  #port = 0;

  private constructor(options: AlpacaServerOptions) {
    this.keyId = options.keyId ?? 'test-key';
    this.secretKey = options.secretKey ?? 'test-secret';
    this.symbolLimit = options.symbolLimit ?? Number.POSITIVE_INFINITY;
    this.#authTimeoutMs = options.authTimeoutMs ?? 10_000;
    this.#tradingFrames = options.tradingFrames ?? 'binary';
    this.#http = createServer((req, res) => this.#onRequest(req, res));
    this.#http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  static async start(options: AlpacaServerOptions = {}): Promise<AlpacaServer> {
    const server = new AlpacaServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#http.once('error', reject);
      server.#http.listen(0, '127.0.0.1', () => resolve());
    });
    server.#port = (server.#http.address() as AddressInfo).port;
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  dataUrl(feed = 'iex'): string {
    return `ws://127.0.0.1:${this.#port}/v2/${feed}`;
  }

  get tradingUrl(): string {
    return `ws://127.0.0.1:${this.#port}/stream`;
  }

  /** An environment for alpacaConfigFromEnv() that points every endpoint here. */
  env(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      APCA_API_KEY_ID: this.keyId,
      APCA_API_SECRET_KEY: this.secretKey,
      ALPACA_FEED: 'iex',
      ALPACA_DATA_STREAM_URL: `ws://127.0.0.1:${this.#port}/v2/{feed}`,
      ALPACA_TRADING_STREAM_URL: this.tradingUrl,
      APCA_API_BASE_URL: this.baseUrl,
      ...overrides,
    };
  }

  /** Open data connections that have authenticated. */
  get authenticatedDataClients(): number {
    return [...this.#data].filter((c) => c.authenticated).length;
  }

  /** The trade subscription of the newest authenticated data connection. */
  subscription(): Record<'trades' | 'quotes' | 'bars', string[]> | undefined {
    const client = [...this.#data].filter((c) => c.authenticated).at(-1);
    return client && { trades: [...client.subscription.trades], quotes: [...client.subscription.quotes], bars: [...client.subscription.bars] };
  }

  /** Data-stream messages of one action (auth, subscribe, unsubscribe), in order. */
  dataActions(action: string): Record<string, unknown>[] {
    return this.dataMessages.map((m) => m.message).filter((m): m is Record<string, unknown> => isRecord(m) && m.action === action);
  }

  /** Builds a trade message with the documented fields. */
  static trade(symbol: string, price: number, size: number, time = new Date().toISOString()): Trade {
    return { T: 't', S: symbol, i: Math.floor(Math.random() * 1e9), x: 'V', p: price, s: size, c: ['@'], z: 'C', t: time };
  }

  /**
   * Sends messages (trades, quotes, bars) as ONE array frame to every authenticated data client,
   * each getting only what it subscribed to, as Alpaca filters (unless `filter` is false, to
   * imitate prints already in flight). Returns how many messages went out.
   */
  push(messages: readonly Record<string, unknown>[], { filter = true }: { filter?: boolean } = {}): number {
    let sent = 0;
    for (const client of this.#data) {
      if (!client.authenticated) continue;
      const batch = messages.filter((m) => {
        if (!filter) return true;
        const channel = m.T === 't' ? 'trades' : m.T === 'q' ? 'quotes' : m.T === 'b' ? 'bars' : undefined;
        if (!channel) return true;
        const set = client.subscription[channel];
        return set.has('*') || (typeof m.S === 'string' && set.has(m.S));
      });
      if (batch.length === 0) continue;
      client.ws.send(JSON.stringify(batch));
      sent += batch.length;
    }
    return sent;
  }

  /** Sends `[{"T":"error","code":code,"msg":msg}]` to every data client; optionally closes them after. */
  sendError(code: number, msg = ERROR_TEXT[code] ?? 'error', close = false): void {
    for (const client of this.#data) {
      client.ws.send(JSON.stringify([{ T: 'error', code, msg }]));
      if (close) client.ws.close(1000);
    }
  }

  /** Kills every data and trading connection without a closing handshake, as a network drop would. */
  dropAll(): void {
    for (const client of this.#data) client.ws.terminate();
    for (const client of this.#trading) client.ws.terminate();
  }

  /** Sends one trade_updates event to every listening trading client. */
  pushTradeUpdate(event: string, order: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
    for (const client of this.#trading) {
      if (client.listening) this.#sendTrading(client, { stream: 'trade_updates', data: { event, order, ...extra } });
    }
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const client of this.#data) {
      clearTimeout(client.authTimer);
      client.ws.terminate();
    }
    for (const client of this.#trading) client.ws.terminate();
    this.#dataWss.close();
    this.#tradingWss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }

  // ---- upgrades ------------------------------------------------------------------------

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const feed = /^\/v2\/([a-z_]+)$/.exec(path)?.[1];
    if (feed !== undefined && FEEDS.has(feed)) {
      this.#dataWss.handleUpgrade(req, socket, head, (ws) => this.#onDataConnection(ws));
    } else if (path === '/stream') {
      this.#tradingWss.handleUpgrade(req, socket, head, (ws) => this.#onTradingConnection(ws));
    } else {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  }

  #answerPings(ws: WebSocket): void {
    ws.on('ping', (data: Buffer) => {
      if (this.answerPings) ws.pong(data);
    });
  }

  // ---- market-data stream --------------------------------------------------------------

  #onDataConnection(ws: WebSocket): void {
    const client: DataClient = {
      id: ++this.dataConnections,
      ws,
      authenticated: false,
      subscription: { trades: new Set(), quotes: new Set(), bars: new Set() },
      authTimer: undefined,
    };
    this.#data.add(client);
    this.#answerPings(ws);
    client.authTimer = setTimeout(() => {
      this.#sendData(client, [{ T: 'error', code: 404, msg: 'auth timeout' }]);
      ws.close(1008);
    }, this.#authTimeoutMs);
    ws.on('close', () => {
      clearTimeout(client.authTimer);
      this.#data.delete(client);
    });
    ws.on('message', (data: RawData) => this.#onDataMessage(client, text(data)));
    this.#sendData(client, [{ T: 'success', msg: 'connected' }]);
  }

  #sendData(client: DataClient, messages: unknown[]): void {
    if (client.ws.readyState === client.ws.OPEN) client.ws.send(JSON.stringify(messages));
  }

  #onDataMessage(client: DataClient, raw: string): void {
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      this.#sendData(client, [{ T: 'error', code: 400, msg: 'invalid syntax' }]);
      return;
    }
    this.dataMessages.push({ connection: client.id, message });
    if (!isRecord(message)) {
      this.#sendData(client, [{ T: 'error', code: 400, msg: 'invalid syntax' }]);
      return;
    }
    if (message.action === 'auth') {
      if (client.authenticated) {
        this.#sendData(client, [{ T: 'error', code: 403, msg: 'already authenticated' }]);
      } else if (message.key === this.keyId && message.secret === this.secretKey) {
        clearTimeout(client.authTimer);
        client.authenticated = true;
        this.#sendData(client, [{ T: 'success', msg: 'authenticated' }]);
      } else {
        this.#sendData(client, [{ T: 'error', code: 402, msg: 'auth failed' }]);
        client.ws.close(1008);
      }
      return;
    }
    if (message.action !== 'subscribe' && message.action !== 'unsubscribe') {
      this.#sendData(client, [{ T: 'error', code: 400, msg: 'invalid syntax' }]);
      return;
    }
    if (!client.authenticated) {
      this.#sendData(client, [{ T: 'error', code: 401, msg: 'not authenticated' }]);
      return;
    }
    const lists: Partial<Record<'trades' | 'quotes' | 'bars', string[]>> = {};
    for (const channel of ['trades', 'quotes', 'bars'] as const) {
      const list = message[channel];
      if (list === undefined) continue;
      if (!Array.isArray(list) || !list.every((s): s is string => typeof s === 'string' && SYMBOL.test(s))) {
        // Alpaca refuses the whole message when one symbol is malformed.
        this.#sendData(client, [{ T: 'error', code: 400, msg: 'invalid syntax' }]);
        return;
      }
      lists[channel] = list;
    }
    const next = {
      trades: new Set(client.subscription.trades),
      quotes: new Set(client.subscription.quotes),
      bars: new Set(client.subscription.bars),
    };
    for (const [channel, list] of Object.entries(lists) as ['trades' | 'quotes' | 'bars', string[]][]) {
      for (const s of list) {
        if (message.action === 'subscribe') next[channel].add(s);
        else next[channel].delete(s);
      }
    }
    const distinct = new Set([...next.trades, ...next.quotes, ...next.bars]);
    if (distinct.size > this.symbolLimit) {
      // Documented: the subscription stays as it was before the failed request.
      this.#sendData(client, [{ T: 'error', code: 405, msg: 'symbol limit exceeded' }]);
      return;
    }
    for (const channel of ['trades', 'quotes', 'bars'] as const) {
      client.subscription[channel].clear();
      for (const s of next[channel]) client.subscription[channel].add(s);
    }
    this.#sendData(client, [
      {
        T: 'subscription',
        trades: [...next.trades],
        quotes: [...next.quotes],
        bars: [...next.bars],
        updatedBars: [],
        dailyBars: [],
        statuses: [],
        lulds: [],
        corrections: [...next.trades],
        cancelErrors: [...next.trades],
      },
    ]);
  }

  // ---- trading stream ------------------------------------------------------------------

  #onTradingConnection(ws: WebSocket): void {
    this.tradingConnections++;
    const client: TradingClient = { ws, authorized: false, listening: false };
    this.#trading.add(client);
    this.#answerPings(ws);
    ws.on('close', () => this.#trading.delete(client));
    ws.on('message', (data: RawData) => this.#onTradingMessage(client, text(data)));
  }

  #sendTrading(client: TradingClient, message: unknown): void {
    if (client.ws.readyState !== client.ws.OPEN) return;
    const payload = JSON.stringify(message);
    if (this.#tradingFrames === 'binary') client.ws.send(Buffer.from(payload, 'utf8'), { binary: true });
    else client.ws.send(payload);
    this.tradingFramesSent.push(this.#tradingFrames);
  }

  #onTradingMessage(client: TradingClient, raw: string): void {
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      this.#sendTrading(client, { stream: 'error', data: { error_message: 'invalid syntax' } });
      return;
    }
    this.tradingMessages.push(message);
    if (!isRecord(message)) return;
    const data = isRecord(message.data) ? message.data : {};
    if (message.action === 'authenticate' || message.action === 'auth') {
      // Both documented forms: {action:"authenticate",data:{key_id,secret_key}} and {action:"auth",key,secret}.
      const key = message.action === 'auth' ? message.key : data.key_id;
      const secret = message.action === 'auth' ? message.secret : data.secret_key;
      client.authorized = key === this.keyId && secret === this.secretKey;
      this.#sendTrading(client, { stream: 'authorization', data: { status: client.authorized ? 'authorized' : 'unauthorized', action: 'authenticate' } });
      if (!client.authorized) client.ws.close(1008);
    } else if (message.action === 'listen') {
      if (!client.authorized) {
        this.#sendTrading(client, { stream: 'authorization', data: { status: 'unauthorized', action: 'listen' } });
        return;
      }
      const streams = Array.isArray(data.streams) ? data.streams.filter((s) => s === 'trade_updates') : [];
      client.listening = streams.length > 0;
      this.#sendTrading(client, { stream: 'listening', data: { streams } });
    }
  }

  // ---- REST ----------------------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'GET' || req.method === 'DELETE') {
        this.#onOrderLookup(req, res);
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v2/orders') {
        reply(res, 404, { code: 40410000, message: 'endpoint not found' });
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
      this.orders.push({ headers: req.headers, body });
      if (req.headers['apca-api-key-id'] !== this.keyId || req.headers['apca-api-secret-key'] !== this.secretKey) {
        reply(res, 401, { code: 40110000, message: 'request is not authorized' });
        return;
      }
      const problem = orderProblem(body, req.headers['content-type']);
      if (problem !== undefined || this.orderOutcome === 'invalid') {
        reply(res, 422, { code: 40010000, message: problem ?? 'request body format is invalid' });
        return;
      }
      if (this.orderOutcome === 'insufficient-buying-power') {
        reply(res, 403, { code: 40310000, message: 'insufficient buying power' });
        return;
      }
      const order = newOrder(body as Record<string, string>);
      this.placed.set(String(order.id), order);
      reply(res, 200, order);
      this.#later(() => {
        this.pushTradeUpdate('new', { ...order, status: 'new', updated_at: new Date().toISOString() });
        if (this.fillLimitOrders || order.type !== 'limit') this.#later(() => this.#fill(order));
      });
    });
  }

  /** GET /v2/orders:by_client_order_id and DELETE /v2/orders/{id}, as Alpaca documents them. */
  #onOrderLookup(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers['apca-api-key-id'] !== this.keyId || req.headers['apca-api-secret-key'] !== this.secretKey) {
      reply(res, 401, { code: 40110000, message: 'request is not authorized' });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/v2/orders:by_client_order_id') {
      const wanted = url.searchParams.get('client_order_id');
      const order = [...this.placed.values()].find((o) => o.client_order_id === wanted);
      if (order) reply(res, 200, order);
      else reply(res, 404, { code: 40410000, message: 'order not found' });
      return;
    }
    const id = req.method === 'DELETE' ? /^\/v2\/orders\/([^/]+)$/.exec(url.pathname)?.[1] : undefined;
    if (id === undefined) {
      reply(res, 404, { code: 40410000, message: 'endpoint not found' });
      return;
    }
    this.cancels.push(id);
    const order = this.placed.get(id);
    if (!order) {
      reply(res, 404, { code: 40410000, message: 'order not found' });
      return;
    }
    if (order.status !== 'accepted' && order.status !== 'new') {
      reply(res, 422, { code: 42210000, message: `order is ${String(order.status)}: not cancelable` });
      return;
    }
    const now = new Date().toISOString();
    const canceled = { ...order, status: 'canceled', canceled_at: now, updated_at: now };
    this.placed.set(id, canceled);
    res.writeHead(204).end();
    this.#later(() => this.pushTradeUpdate('canceled', canceled));
  }

  #fill(order: Record<string, unknown>): void {
    const price = typeof order.limit_price === 'string' ? order.limit_price : String(this.fillPrice);
    const now = new Date().toISOString();
    const filled = { ...order, status: 'filled', filled_qty: order.qty, filled_avg_price: price, filled_at: now, updated_at: now };
    this.placed.set(String(order.id), filled);
    this.pushTradeUpdate('fill', filled, { execution_id: randomUUID(), price, qty: order.qty, position_qty: order.qty, timestamp: now });
  }

  #later(fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, 5);
    this.#timers.add(timer);
  }
}

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid syntax',
  401: 'not authenticated',
  402: 'auth failed',
  403: 'already authenticated',
  404: 'auth timeout',
  405: 'symbol limit exceeded',
  406: 'connection limit exceeded',
  407: 'slow client',
  409: 'insufficient subscription',
  410: 'invalid subscribe action for this feed',
  500: 'internal error',
};

/** What is wrong with an order body, checked the way Alpaca documents it; undefined when it is valid. */
function orderProblem(body: unknown, contentType: string | undefined): string | undefined {
  if (!contentType?.startsWith('application/json')) return 'content type must be application/json';
  if (!isRecord(body)) return 'request body format is invalid';
  const { symbol, qty, side, type, time_in_force: tif, limit_price: limit, client_order_id: id } = body;
  if (typeof symbol !== 'string' || !SYMBOL.test(symbol) || symbol === '*') return 'symbol is required';
  if (typeof qty !== 'string' || !(Number(qty) > 0)) return 'qty must be a positive number written as a string';
  if (side !== 'buy' && side !== 'sell') return 'side must be buy or sell';
  if (!['market', 'limit', 'stop', 'stop_limit', 'trailing_stop'].includes(String(type))) return 'invalid order type';
  if (!['day', 'gtc', 'opg', 'cls', 'ioc', 'fok'].includes(String(tif))) return 'invalid time_in_force';
  if (type === 'limit' && (typeof limit !== 'string' || !(Number(limit) > 0))) return 'limit_price is required for limit orders';
  if (type === 'market' && limit !== undefined) return 'limit_price must not be set for market orders';
  if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 128)) return 'client_order_id must be 1 to 128 characters';
  return undefined;
}

function newOrder(body: Record<string, string>): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    id: randomUUID(),
    client_order_id: body.client_order_id ?? randomUUID(),
    created_at: now,
    updated_at: now,
    submitted_at: now,
    filled_at: null,
    expired_at: null,
    canceled_at: null,
    failed_at: null,
    asset_id: randomUUID(),
    symbol: body.symbol,
    asset_class: 'us_equity',
    notional: null,
    qty: body.qty,
    filled_qty: '0',
    filled_avg_price: null,
    order_class: '',
    order_type: body.type,
    type: body.type,
    side: body.side,
    time_in_force: body.time_in_force,
    limit_price: body.limit_price ?? null,
    stop_price: null,
    status: 'accepted',
    extended_hours: false,
    legs: null,
    trail_percent: null,
    trail_price: null,
    hwm: null,
  };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
