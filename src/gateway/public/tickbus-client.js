// The gateway's client library, for browsers and Node (docs/gateway.md). Plain JavaScript,
// no build step: the dashboard loads it as it is, and Node imports it with a WebSocket
// implementation passed in (`ws`). It connects, subscribes, remembers the last position of
// every symbol and channel, and after a lost connection reconnects with back-off and
// resubscribes with those positions, so the gateway fills the gap from history (or says it
// sent a snapshot instead). It also follows the user's inbox (alerts and job results kept
// until acknowledged): after a lost connection it resubscribes from the last inbox id, on
// whichever gateway, and acknowledges what its `inbox` handlers have seen.

/**
 * @typedef {{ channel: string, symbol?: string, position?: string, replayed?: true, data: any }} Update
 * @typedef {'connecting' | 'open' | 'reconnecting' | 'closed'} State
 * @typedef {{ token?: string, WebSocket?: any, reconnect?: { baseMs?: number, maxMs?: number }, pingMs?: number }} ClientOptions
 * @typedef {{ id: string, kind: 'alert' | 'job_result', data: any }} InboxEntry
 * @typedef {{ symbols?: string[], patterns?: string[], min_confidence?: number, action?: 'subscribe' | 'unsubscribe', user?: string }} AlertPrefs
 */

/** Acknowledgements are cumulative: what the handlers saw within this many ms goes in one `ack`. */
const ACK_DELAY_MS = 20;

/** A stream position as the gateway sends them (`<ms>-<seq>`); anything else is never sent back as `since`. */
function isPosition(value) {
  return typeof value === 'string' && /^\d{1,20}-\d{1,20}$/.test(value);
}

export class TickbusClient {
  /**
   * @param {string | string[]} url ws:// or wss:// URL of the gateway's /ws, or of several
   *   gateways: after a lost connection the client tries the next one, and resumes there.
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.urls = Array.isArray(url) ? [...url] : [url];
    if (this.urls.length === 0) throw new Error('TickbusClient needs at least one gateway URL.');
    /** The gateway connected to, or tried, now. */
    this.url = this.urls[0];
    this._urlIndex = 0;
    this.options = options;
    /** @type {State} */
    this.state = 'closed';
    /** Round-trip time of the last ping, in ms. */
    this.rttMs = undefined;
    /** @type {Set<string>} */ this.symbols = new Set();
    /** @type {Set<string>} */ this.channels = new Set();
    /** Channels subscribed for some symbols only (their `filter`). */
    /** @type {Map<string, string[]>} */ this.filters = new Map();
    /** The inbox followed, if any: whose (without JWT), and whether entries are acknowledged after the handlers ran. */
    /** @type {{ user?: string, autoAck: boolean } | undefined} */ this.inbox = undefined;
    /** The id of the last inbox entry received: where a new connection resumes. */
    /** @type {string | undefined} */ this.lastInboxId = undefined;
    /** True once the gateway confirmed the inbox subscription on this connection. */
    this.inboxSubscribed = false;
    /** The user's jobs followed, if any (whose, without JWT). */
    /** @type {{ user?: string } | undefined} */ this.jobs = undefined;
    this._requests = new Map();
    this._nextRequest = 1;
    this._ackTimer = undefined;
    this._ackPending = undefined;
    /** Last position seen per symbol or channel: sent as `since` when resubscribing. */
    /** @type {Map<string, string>} */ this.positions = new Map();
    this._listeners = new Map();
    this._attempt = 0;
    this._closing = false;
    this._ws = undefined;
    this._timer = undefined;
    this._pinger = undefined;
    this._welcome = undefined;
  }

  /** @param {'update'|'snapshot'|'subscribed'|'unsubscribed'|'error'|'notice'|'state'|'welcome'|'inbox'|'ok'} event @param {(arg: any) => void} listener */
  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return this;
  }

  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
    return this;
  }

  _emit(event, arg) {
    for (const l of this._listeners.get(event) ?? []) {
      try {
        l(arg);
      } catch (error) {
        // A listener's failure must not stop the others, nor the connection.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  /** Connects; resolves on the gateway's welcome. */
  connect() {
    this._closing = false;
    this._open();
    return new Promise((resolve, reject) => {
      const onWelcome = (w) => {
        this.off('welcome', onWelcome);
        this.off('state', onState);
        resolve(w);
      };
      const onState = (s) => {
        if (s === 'closed') {
          this.off('welcome', onWelcome);
          this.off('state', onState);
          reject(new Error(`could not connect to ${this.url}`));
        }
      };
      this.on('welcome', onWelcome);
      this.on('state', onState);
    });
  }

  /** @param {string[]} symbols  @param {Record<string, string>} [since] last positions to resume from */
  subscribe(symbols, since) {
    const fresh = symbols.map((s) => s.trim().toUpperCase()).filter((s) => s && !this.symbols.has(s));
    for (const s of fresh) this.symbols.add(s);
    for (const [k, v] of Object.entries(since ?? {})) this.positions.set(k, v);
    if (fresh.length > 0) this._send({ op: 'subscribe', symbols: fresh, since: this._since(fresh) });
  }

  /**
   * @param {string[]} channels exposed catalog channels (e.g. tickstock.events.patterns)
   * @param {{ symbols: string[] }} [filter] of symbol-keyed channels, only the messages about these symbols (a new filter replaces the old)
   */
  subscribeChannels(channels, filter) {
    const symbols = filter?.symbols?.map((s) => s.trim().toUpperCase());
    const fresh = channels.filter((c) => {
      const known = this.channels.has(c);
      const same = known && JSON.stringify(this.filters.get(c)) === JSON.stringify(symbols);
      return !same;
    });
    for (const c of fresh) {
      this.channels.add(c);
      if (symbols) this.filters.set(c, symbols);
      else this.filters.delete(c);
    }
    if (fresh.length > 0) this._send({ op: 'subscribe', channels: fresh, since: this._since(fresh), ...(symbols ? { filter: { symbols } } : {}) });
  }

  /** @param {string[]} channels */
  unsubscribeChannels(channels) {
    const gone = channels.filter((c) => this.channels.delete(c));
    for (const c of gone) {
      this.positions.delete(c);
      this.filters.delete(c);
    }
    if (gone.length > 0) this._send({ op: 'unsubscribe', channels: gone });
  }

  /**
   * Sets the user's alert preferences (the JWT's user, or `user` without JWT). Resolves on the
   * gateway's `ok`; rejects with its error.
   * @param {AlertPrefs} prefs
   */
  setAlerts(prefs) {
    return this._request({ op: 'alerts', ...prefs });
  }

  /**
   * Follows the user's inbox: what was not acknowledged, then live entries, as `inbox` events.
   * After a lost connection it resumes after the last entry received. Unless `autoAck: false`,
   * entries are acknowledged once the `inbox` handlers have run (call `ack(id)` yourself otherwise).
   * @param {{ user?: string, autoAck?: boolean, since?: string }} [options]
   */
  subscribeInbox(options = {}) {
    this.inbox = { ...(options.user === undefined ? {} : { user: options.user }), autoAck: options.autoAck !== false };
    if (options.since !== undefined) this.lastInboxId = options.since;
    this._sendInbox();
  }

  unsubscribeInbox() {
    this.inbox = undefined;
    this.inboxSubscribed = false;
    this._send({ op: 'unsubscribe', inbox: true });
  }

  /**
   * Follows the user's backtest jobs (progress and results arrive as `update` events on
   * their channels); resubscribed after a lost connection.
   * @param {{ user?: string }} [options]
   */
  subscribeJobs(options = {}) {
    this.jobs = { ...(options.user === undefined ? {} : { user: options.user }) };
    this._send({ op: 'subscribe', jobs: true, ...this.jobs });
  }

  /**
   * Places an order through the gateway (needs the token's "orders" claim, or a gateway
   * started with --allow-orders). `client_order_id` is the idempotency key: send the same
   * one again after a lost connection and the gateway answers `duplicate: true` instead of
   * placing it twice. Resolves with the `ok` (`client_order_id`, `symbol`, `duplicate?`).
   * @param {{ client_order_id: string, symbol: string, side: 'buy' | 'sell', qty: number, type: 'market' | 'limit', limit_price?: number, time_in_force?: string, user?: string }} order
   */
  placeOrder(order) {
    return this._request({ op: 'order', ...order });
  }

  /** Cancels an open order this user placed. @param {{ client_order_id: string, symbol: string, user?: string }} order */
  cancelOrder(order) {
    return this._request({ op: 'cancel', ...order });
  }

  /**
   * The newest updates of a ticker's history (oldest first, as in a batch), to draw a chart from.
   * @param {string} symbol @param {number} [limit] at most 1,000
   * @returns {Promise<{ symbol: string, updates: Update[] }>}
   */
  history(symbol, limit) {
    return this._request({ op: 'history', symbol, ...(limit === undefined ? {} : { limit }) });
  }

  /**
   * Submits a backtest for this user; resolves with `job_id` and `status`.
   * @param {{ symbols: string[], patterns: string[], start_date: string, end_date: string, parameters?: object, job_id?: string, user?: string }} request
   */
  submitBacktest(request) {
    return this._request({ op: 'backtest', ...request });
  }

  /** Cancels one of this user's backtests; resolves with `status`. @param {string} jobId @param {string} [user] */
  cancelBacktest(jobId, user) {
    return this._request({ op: 'backtest_cancel', job_id: jobId, ...(user === undefined ? {} : { user }) });
  }

  /** Removes the inbox entries up to and including `id` (cumulative). @param {string} id */
  ack(id) {
    this._send({ op: 'ack', inbox: id, ...(this.inbox?.user === undefined ? {} : { user: this.inbox.user }) });
  }

  _sendInbox() {
    if (!this.inbox) return;
    this._send({ op: 'subscribe', inbox: true, ...(this.inbox.user === undefined ? {} : { user: this.inbox.user }), ...(isPosition(this.lastInboxId) ? { since: { inbox: this.lastInboxId } } : {}) });
  }

  /** Sends a request with an id; resolves with its `ok`, rejects with its error. */
  _request(message) {
    const id = `c${this._nextRequest++}`;
    return new Promise((resolve, reject) => {
      if (!(this._ws && this._ws.readyState === 1 && this._welcome)) {
        reject(new Error('not connected'));
        return;
      }
      this._requests.set(id, { resolve, reject });
      this._send({ ...message, id });
    });
  }

  _scheduleAck(id) {
    this._ackPending = id;
    if (this._ackTimer !== undefined) return;
    this._ackTimer = setTimeout(() => {
      this._ackTimer = undefined;
      const pending = this._ackPending;
      this._ackPending = undefined;
      if (pending !== undefined) this.ack(pending);
    }, ACK_DELAY_MS);
  }

  /** @param {string[]} symbols */
  unsubscribe(symbols) {
    const gone = symbols.map((s) => s.trim().toUpperCase()).filter((s) => this.symbols.delete(s));
    for (const s of gone) this.positions.delete(s);
    if (gone.length > 0) this._send({ op: 'unsubscribe', symbols: gone });
  }

  close() {
    this._closing = true;
    clearTimeout(this._timer);
    clearInterval(this._pinger);
    clearTimeout(this._ackTimer);
    this._ws?.close(1000, 'client closed');
    this._setState('closed');
  }

  _since(keys) {
    const since = {};
    for (const k of keys) if (this.positions.has(k)) since[k] = this.positions.get(k);
    return since;
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  }

  _send(message) {
    if (this._ws && this._ws.readyState === 1 && this._welcome) this._ws.send(JSON.stringify(message));
  }

  _open() {
    const Impl = this.options.WebSocket ?? globalThis.WebSocket;
    if (!Impl) throw new Error('No WebSocket implementation: pass { WebSocket } (in Node: import { WebSocket } from "ws").');
    const url = this.options.token ? `${this.url}${this.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.options.token)}` : this.url;
    this._setState(this._attempt === 0 ? 'connecting' : 'reconnecting');
    this._welcome = undefined;
    this.inboxSubscribed = false;
    for (const { reject } of this._requests.values()) reject(new Error('connection lost'));
    this._requests.clear();
    const ws = new Impl(url);
    this._ws = ws;
    ws.onmessage = (event) => this._onMessage(typeof event.data === 'string' ? event.data : String(event.data));
    ws.onclose = (event) => {
      clearInterval(this._pinger);
      if (this._ws !== ws) return;
      // Refused for good (bad token, slow consumer kept too long): say so; otherwise retry.
      if (this._closing || event.code === 4001) {
        this._setState('closed');
        return;
      }
      this._retry();
    };
    ws.onerror = () => {
      /* onclose follows and decides */
    };
  }

  _retry() {
    const base = this.options.reconnect?.baseMs ?? 250;
    const max = this.options.reconnect?.maxMs ?? 10000;
    const ceiling = Math.min(max, base * 2 ** Math.min(this._attempt, 16));
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this._attempt++;
    // The gateway just lost is the likeliest to be down: try the next one (positions are
    // kept in Redis-backed history, so any gateway can resume this client).
    this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    this.url = this.urls[this._urlIndex];
    this._setState('reconnecting');
    this._timer = setTimeout(() => this._open(), delay);
  }

  _onMessage(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    switch (m.type) {
      case 'welcome': {
        this._welcome = m;
        this._attempt = 0;
        this._setState('open');
        // Resubscribe everything, each with the last position seen: the gateway replays the gap.
        const symbols = [...this.symbols];
        if (symbols.length > 0) this._send({ op: 'subscribe', symbols, since: this._since(symbols) });
        // Channels with the same filter (or none) go together.
        const groups = new Map();
        for (const c of this.channels) {
          const f = this.filters.get(c);
          const key = f ? JSON.stringify(f) : '';
          if (!groups.has(key)) groups.set(key, { filter: f, channels: [] });
          groups.get(key).channels.push(c);
        }
        for (const { filter, channels } of groups.values()) this._send({ op: 'subscribe', channels, since: this._since(channels), ...(filter ? { filter: { symbols: filter } } : {}) });
        this._sendInbox();
        if (this.jobs) this._send({ op: 'subscribe', jobs: true, ...this.jobs });
        clearInterval(this._pinger);
        const ping = () => this._send({ op: 'ping', t: Date.now() });
        ping();
        this._pinger = setInterval(ping, this.options.pingMs ?? 5000);
        this._emit('welcome', m);
        break;
      }
      case 'batch':
        for (const u of m.updates) {
          const key = u.symbol ?? u.channel;
          // The last position received, not the largest: the gateway sends only positions
          // history vouches for, and one kept as a maximum could never come down again.
          if (isPosition(u.position)) this.positions.set(key, u.position);
          this._emit('update', u);
        }
        break;
      case 'snapshot':
        if (isPosition(m.position)) this.positions.set(m.key, m.position);
        this._emit('snapshot', m);
        break;
      case 'pong':
        if (typeof m.t === 'number') this.rttMs = Date.now() - m.t;
        break;
      case 'inbox':
        this._emit('inbox', m);
        // After the handlers: what they saw is acknowledged (cumulatively, a few at a time).
        if (isPosition(m.id)) {
          this.lastInboxId = m.id;
          if (this.inbox?.autoAck) this._scheduleAck(m.id);
        }
        break;
      case 'subscribed':
        if (m.key === 'inbox') this.inboxSubscribed = true;
        this._emit('subscribed', m);
        break;
      case 'ok':
      case 'error': {
        const pending = m.id === undefined || m.key !== undefined ? undefined : this._requests.get(m.id);
        if (pending) {
          this._requests.delete(m.id);
          if (m.type === 'ok') pending.resolve(m);
          else pending.reject(Object.assign(new Error(m.message), { code: m.code }));
        }
        this._emit(m.type, m);
        break;
      }
      default:
        this._emit(m.type, m);
    }
  }
}
