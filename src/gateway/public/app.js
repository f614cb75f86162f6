// The trading desk: a watch-list, OHLC candles with volume (filled from the ticker's history,
// then live), an order ticket, the blotter of this page's orders with cancel, positions and
// P&L from their fills, pattern alerts and indicators for the watched symbols with editable
// alert preferences, and backtests; all through the gateway (tickbus-client.js). It says what
// it knows and how fresh it is: prices are marked stale with their age while disconnected, and
// a resume with a gap or a snapshot, a slow-consumer notice and refusals are shown.
//
// The user is the token's subject with JWT (?token=…), else a random id kept in localStorage
// (or ?user=…). The watch-list is kept in the URL (?symbols=AAPL,MSFT) and in localStorage;
// so are the ids of this page's orders, to rebuild the blotter from history after a reload.
import { TickbusClient } from '/tickbus-client.js';
import { createChart, CandlestickSeries, HistogramSeries } from '/vendor/lightweight-charts.mjs';
import { CandleSeries, TIMEFRAMES } from '/candles.js';
import { PositionBook } from '/positions.js';

const params = new URLSearchParams(location.search);
/** What `tickbus up` streams from the start. */
const DEFAULT_SYMBOLS = ['AAPL', 'MSFT', 'NVDA'];
const SYMBOL = /^[A-Z0-9][A-Z0-9./-]{0,14}$/;
const PATTERNS = ['Doji', 'Hammer', 'Hanging Man', 'Inverted Hammer', 'Shooting Star', 'Bullish Engulfing', 'Bearish Engulfing'];
const MAX_TRADES = 20_000;
const MAX_CANDLES = 2_000;
const MAX_ORDERS = 100;
const MAX_ALERTS = 50;
const MAX_NOTICES = 6;
const OPEN_STATUSES = new Set(['new', 'accepted', 'pending_new', 'partially_filled', 'held', 'sent']);
const INDICATOR_CHANNEL = 'tickstock:indicators:streaming';
const PATTERN_CHANNEL = 'tickstock:patterns:streaming';

const $ = (id) => document.getElementById(id);
const token = params.get('token') ?? undefined;
const user = token ? undefined : (params.get('user') ?? localStorage.getItem('tickbus.user') ?? `u-${crypto.randomUUID().slice(0, 8)}`);
if (user) localStorage.setItem('tickbus.user', user);
/** `user` goes with requests only without JWT (with JWT the token says who). */
const asUser = user ? { user } : {};
const storedSymbols = JSON.parse(localStorage.getItem('tickbus.symbols') ?? 'null');
const initial = params.get('symbols') ? params.get('symbols').split(',') : Array.isArray(storedSymbols) && storedSymbols.length > 0 ? storedSymbols : DEFAULT_SYMBOLS;
/** client_order_ids this page placed (newest last): its blotter. */
const myOrders = new Set(JSON.parse(localStorage.getItem('tickbus.orders') ?? '[]'));

/**
 * Per symbol: its row, trades (oldest first, for candles of any timeframe), the reference
 * price its change is measured from (the oldest price the page holds: the session start as
 * far as history reaches), the last price and when it was received.
 */
const watched = new Map();
const positions = new PositionBook();
/** Fills already applied, by their stream position: history and live copies of one fill count once. */
const appliedFills = new Set();
const orders = new Map(); // client_order_id → { tr, order }
let selected;
let timeframe = '5s';
let candles = new CandleSeries(TIMEFRAMES[timeframe]);
let updatesThisSecond = 0;
let downSince;
let wasConnected = false;
let pendingOrder; // { order, row }: placed, not yet answered: resent with the same id after a reconnection
let ticketId = newOrderId();
let job; // { id, status }
/** Symbols resubscribed after a lost connection, until the gateway says how it resumed them. */
const resuming = new Set();

// What the page shows, for tests and the curious: window.desk.
const desk = { state: 'connecting', prices: {}, live: {}, candles: 0, historyLoaded: {}, orders: {}, positions: {}, alerts: [], notices: [], resumes: [], backtest: undefined, stale: false, user: user ?? '(token)' };
window.desk = desk;
$('user').textContent = desk.user;

// ---- chart ---------------------------------------------------------------------------

const chart = createChart($('chart'), {
  layout: { background: { color: '#161c24' }, textColor: '#d6dde6' },
  grid: { vertLines: { color: '#263040' }, horzLines: { color: '#263040' } },
  timeScale: { timeVisible: true, secondsVisible: true, barSpacing: 10, maxBarSpacing: 24, rightOffset: 3 },
  rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.25 } },
  autoSize: true,
});
const candleSeries = chart.addSeries(CandlestickSeries, { upColor: '#26a69a', downColor: '#ef5350', borderVisible: false, wickUpColor: '#26a69a', wickDownColor: '#ef5350' });
const volumeSeries = chart.addSeries(HistogramSeries, { priceFormat: { type: 'volume' }, priceScaleId: 'volume', lastValueVisible: false, priceLineVisible: false });
chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });

const volumeBar = (c) => ({ time: c.time, value: c.volume, color: c.close >= c.open ? 'rgba(38,166,154,.45)' : 'rgba(239,83,80,.45)' });

function redraw() {
  candles = new CandleSeries(TIMEFRAMES[timeframe]);
  for (const t of watched.get(selected)?.trades ?? []) candles.add(t.t, t.price, t.volume);
  candles.trim(MAX_CANDLES);
  candleSeries.setData(candles.candles.map(({ volume: _, ...ohlc }) => ohlc));
  volumeSeries.setData(candles.candles.map(volumeBar));
  desk.candles = candles.candles.length;
  // A short history fills the width (candles no wider than maxBarSpacing); a long one shows its newest end.
  if (candles.candles.length * 10 < $('chart').clientWidth) chart.timeScale().fitContent();
  else chart.timeScale().scrollToRealTime();
  const w = watched.get(selected);
  $('chart-note').textContent = w ? (w.trades.length ? `${w.trades.length} trades since ${new Date(w.trades[0].t).toLocaleTimeString()}` : 'waiting for trades') : '';
}

function chartTrade(symbol, trade) {
  if (symbol !== selected) return;
  const c = candles.add(trade.t, trade.price, trade.volume);
  if (!c) return;
  const { volume: _, ...ohlc } = c;
  candleSeries.update(ohlc);
  volumeSeries.update(volumeBar(c));
  desk.candles = candles.candles.length;
}

for (const b of document.querySelectorAll('.timeframes button')) {
  b.addEventListener('click', () => {
    timeframe = b.dataset.tf;
    for (const o of document.querySelectorAll('.timeframes button')) o.setAttribute('aria-checked', String(o === b));
    redraw();
  });
}

// ---- connection ----------------------------------------------------------------------

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new TickbusClient(wsUrl, { token, pingMs: 2000 });
let exposed = new Set();

client.on('state', (state) => {
  desk.state = state;
  $('state').textContent = state;
  $('state').dataset.state = state;
  if (state === 'open') {
    downSince = undefined;
    desk.stale = false;
    document.body.classList.remove('stale');
    $('stale').hidden = true;
    for (const w of watched.values()) w.tr.querySelector('.age')?.remove();
  } else if (wasConnected && downSince === undefined) {
    downSince = Date.now();
    desk.stale = true;
    document.body.classList.add('stale');
    $('rtt').textContent = '–';
    $('latency').textContent = '–';
    showStale();
  }
});

client.on('welcome', (w) => {
  const again = wasConnected;
  wasConnected = true;
  exposed = new Set(w.channels ?? []);
  if (again) for (const symbol of watched.keys()) resuming.add(symbol);
  else {
    client.subscribeInbox(asUser);
    client.subscribeJobs(asUser);
    followChannels();
    void applyAlertPrefs();
  }
  // An order sent while the connection went: the same id again, so it is placed at most once.
  if (pendingOrder) void sendOrder(pendingOrder);
});

client.on('update', (u) => {
  updatesThisSecond++;
  const data = u.data ?? {};
  if (u.symbol && data.type === 'price') onPrice(u.symbol, data, u.replayed === true);
  else if (u.symbol && data.type === 'order') onOrder(u.symbol, data, u.position);
  else if (u.channel === INDICATOR_CHANNEL) onIndicator(data);
  else if (u.channel === PATTERN_CHANNEL) onPattern(data);
  else if (u.channel === 'tickstock.events.backtesting.progress') onJobProgress(data);
  else if (u.channel === 'tickstock.events.backtesting.results') onJobResult(data);
});
client.on('snapshot', (s) => {
  if (s.data && s.data.type === 'price') onPrice(s.key, s.data, false, true);
});
client.on('subscribed', (m) => {
  desk.resumes.push({ key: m.key, resume: m.resume, replayed: m.replayed ?? 0, gap: m.gap === true });
  // After a lost connection: say what the page got back for each symbol it had.
  if (!resuming.delete(m.key)) return;
  if (m.gap) notice('warn', `${m.key}: resumed with a gap: history did not reach back to the last update seen, so some may be missing.`);
  else if (m.resume === 'snapshot') notice('warn', `${m.key}: away too long for history: showing the last price (a snapshot); the chart has a hole.`);
  else if (m.resume === 'replayed') notice('info', `${m.key}: back; caught up ${m.replayed ?? 0} missed update${m.replayed === 1 ? '' : 's'} from history.`);
});
client.on('inbox', (e) => {
  if (e.kind === 'alert') onAlert(e.data);
  else if (e.kind === 'job_result') onJobResult(e.data);
});
client.on('notice', (n) => notice('warn', `${n.message}${n.dropped ? ` (${n.dropped} dropped)` : ''}`, n.code));
client.on('error', (e) => {
  // Request errors with an id are answered to their caller; the rest (per symbol, or unanswered) are shown.
  if (e.key !== undefined || e.id === undefined) notice('error', `${e.key ? `${e.key}: ` : ''}${e.message}`, e.code);
});

function notice(kind, text, code) {
  const li = document.createElement('li');
  li.className = kind;
  li.innerHTML = '<span></span><button type="button" aria-label="Dismiss notice">×</button>';
  li.firstChild.textContent = text;
  li.querySelector('button').addEventListener('click', () => li.remove());
  $('notices').prepend(li);
  while ($('notices').children.length > MAX_NOTICES) $('notices').lastChild.remove();
  desk.notices.push({ kind, text, code });
}

function showStale() {
  if (downSince === undefined) return;
  const age = Math.round((Date.now() - downSince) / 1000);
  $('stale').hidden = false;
  $('stale').textContent = `Disconnected from the gateway: prices, orders and positions are stale (as of ${age} s ago). Reconnecting…`;
  for (const w of watched.values()) {
    let tag = w.tr.querySelector('.age');
    if (!tag) {
      tag = document.createElement('span');
      tag.className = 'age';
      w.tr.cells[1].append(tag);
    }
    const since = w.receivedAt ? Math.round((Date.now() - w.receivedAt) / 1000) : age;
    tag.textContent = `${since} s`;
    tag.title = `last price received ${since} s ago`;
  }
  desk.staleAge = age;
}

// ---- watch-list ----------------------------------------------------------------------

function saveSymbols() {
  const list = [...watched.keys()];
  localStorage.setItem('tickbus.symbols', JSON.stringify(list));
  const url = new URL(location.href);
  url.searchParams.set('symbols', list.join(','));
  history.replaceState(null, '', url);
}

const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const signed = (n, digits = 2) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(digits)}` : '–');
const tone = (n) => (!Number.isFinite(n) || n === 0 ? '' : n > 0 ? 'up' : 'down');

function addSymbol(raw) {
  const symbol = raw.trim().toUpperCase();
  if (!SYMBOL.test(symbol)) {
    $('form-error').textContent = `"${raw}" is not a ticker symbol (letters, digits, ".", "-", "/").`;
    return false;
  }
  $('form-error').textContent = '';
  if (watched.has(symbol)) {
    select(symbol);
    return true;
  }
  const tr = document.createElement('tr');
  tr.dataset.symbol = symbol;
  tr.tabIndex = 0;
  tr.setAttribute('aria-label', `${symbol}: select to chart and trade`);
  tr.innerHTML = `<td>${symbol}</td><td class="last">–</td><td class="chg">–</td><td class="pct">–</td><td><button type="button" class="remove" aria-label="Remove ${symbol}" title="Remove ${symbol}">×</button></td>`;
  tr.addEventListener('click', () => select(symbol));
  tr.addEventListener('keydown', (e) => {
    if (e.target !== tr) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      select(symbol);
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      (e.key === 'ArrowDown' ? tr.nextElementSibling : tr.previousElementSibling)?.focus();
    } else if (e.key === 'Delete') removeSymbol(symbol);
  });
  tr.querySelector('button').addEventListener('click', (e) => {
    e.stopPropagation();
    removeSymbol(symbol);
  });
  $('watchlist').tBodies[0].append(tr);
  watched.set(symbol, { tr, trades: [], reference: undefined, last: undefined, receivedAt: undefined });
  client.subscribe([symbol]);
  saveSymbols();
  void loadHistory(symbol);
  if (!selected) select(symbol);
  followChannels();
  void applyAlertPrefs();
  return true;
}

function removeSymbol(symbol) {
  watched.get(symbol)?.tr.remove();
  watched.delete(symbol);
  delete desk.prices[symbol];
  client.unsubscribe([symbol]);
  saveSymbols();
  if (selected === symbol) select(watched.keys().next().value);
  followChannels();
  void applyAlertPrefs();
}

function select(symbol) {
  selected = symbol;
  for (const [s, w] of watched) {
    w.tr.classList.toggle('selected', s === symbol);
    w.tr.setAttribute('aria-selected', String(s === symbol));
  }
  $('chart-title').textContent = symbol ? `${symbol} · candles` : 'Select a symbol';
  $('ticket-symbol').value = symbol ?? '';
  $('ind-symbol').textContent = symbol ?? '';
  redraw();
  renderIndicators();
}

/** Fills the symbol's trades (and this page's orders on it) from the ticker's history, before live ones. */
async function loadHistory(symbol) {
  let reply;
  try {
    await opened();
    reply = await client.history(symbol);
  } catch (error) {
    if (error.code) notice('error', `${symbol}: no history (${error.message})`, error.code);
    return;
  }
  const w = watched.get(symbol);
  if (!w) return;
  const before = [];
  const first = w.trades[0]?.t ?? Infinity;
  for (const u of reply.updates) {
    if (u.data.type === 'price' && typeof u.data.price === 'number') {
      const t = Date.parse(u.data.timestamp);
      if (Number.isFinite(t) && t < first) before.push({ t, price: u.data.price, volume: u.data.volume ?? 0 });
    } else if (u.data.type === 'order') onOrder(symbol, u.data, u.position);
  }
  // No live update yet: resume from the newest history entry after a lost connection, not from a snapshot.
  const newest = reply.updates[reply.updates.length - 1]?.position;
  if (newest && !client.positions.has(symbol)) client.positions.set(symbol, newest);
  w.trades.unshift(...before);
  if (w.trades.length > MAX_TRADES) w.trades.splice(0, w.trades.length - MAX_TRADES);
  if (before.length > 0) {
    w.reference = before[0].price;
    if (w.last === undefined) setLast(symbol, before[before.length - 1].price, undefined);
    else renderRow(symbol);
  }
  desk.historyLoaded[symbol] = before.length;
  if (symbol === selected) redraw();
}

function opened() {
  if (client.state === 'open') return Promise.resolve();
  return new Promise((resolve) => {
    const on = () => {
      client.off('welcome', on);
      resolve();
    };
    client.on('welcome', on);
  });
}

function setLast(symbol, price, timestamp) {
  const w = watched.get(symbol);
  if (!w) return;
  w.reference ??= price;
  w.last = price;
  w.receivedAt = Date.now();
  desk.prices[symbol] = price;
  renderRow(symbol);
  renderPositions();
  const ts = Date.parse(timestamp);
  if (Number.isFinite(ts)) {
    const lag = Date.now() - ts;
    if (lag >= 0 && lag < 60_000) $('latency').textContent = `${lag} ms`;
  }
}

/** The change since the reference drives both colours, the last price's and the change's. */
function renderRow(symbol) {
  const w = watched.get(symbol);
  if (!w || w.last === undefined) return;
  const change = w.last - w.reference;
  const cells = w.tr.cells;
  const age = cells[1].querySelector('.age');
  cells[1].textContent = fmt(w.last);
  if (age) cells[1].append(age);
  cells[2].textContent = signed(change);
  cells[3].textContent = `${signed((change / w.reference) * 100)}%`;
  const cls = tone(change);
  cells[1].className = `last ${cls}`;
  cells[2].className = `chg ${cls}`;
  cells[3].className = `pct ${cls}`;
}

function onPrice(symbol, p, replayed, snapshot = false) {
  const w = watched.get(symbol);
  if (!w || typeof p.price !== 'number') return;
  if (!snapshot && !replayed) desk.live[symbol] = (desk.live[symbol] ?? 0) + 1;
  const t = Date.parse(p.timestamp);
  if (!snapshot && Number.isFinite(t)) {
    const last = w.trades[w.trades.length - 1];
    if (!last || t >= last.t) {
      const trade = { t, price: p.price, volume: p.volume ?? 0 };
      w.trades.push(trade);
      if (w.trades.length > MAX_TRADES) w.trades.splice(0, w.trades.length - MAX_TRADES);
      chartTrade(symbol, trade);
    }
  }
  if (!replayed || w.last === undefined || !Number.isFinite(t) || t >= (w.lastAt ?? 0)) {
    w.lastAt = Number.isFinite(t) ? t : w.lastAt;
    setLast(symbol, p.price, p.timestamp);
  }
}

// ---- orders --------------------------------------------------------------------------

function newOrderId() {
  return `web-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
}

function saveOrders() {
  const list = [...myOrders].slice(-MAX_ORDERS * 2);
  localStorage.setItem('tickbus.orders', JSON.stringify(list));
}

const ticket = $('ticket');
function ticketSide() {
  return ticket.querySelector('input[name=side]:checked').value;
}
function renderTicket() {
  const side = ticketSide();
  const type = $('ticket-type').value;
  $('limit-row').hidden = type !== 'limit';
  $('ticket-limit').required = type === 'limit';
  const symbol = $('ticket-symbol').value.trim().toUpperCase() || '…';
  const qty = $('ticket-qty').value || '…';
  $('place').textContent = `${side === 'buy' ? 'Buy' : 'Sell'} ${qty} ${symbol}${type === 'limit' ? ` @ ${$('ticket-limit').value || '…'}` : ''}`;
  $('place').className = `place ${side}`;
}
// Any change to the ticket is a new order: a new idempotency key (a resend of the same one is never placed twice).
ticket.addEventListener('input', () => {
  if (!pendingOrder) ticketId = newOrderId();
  renderTicket();
});
ticket.addEventListener('submit', (e) => {
  e.preventDefault();
  placeFromTicket();
});

function placeFromTicket() {
  // A second click while the first is in flight sends nothing new.
  if (pendingOrder) return;
  const symbol = $('ticket-symbol').value.trim().toUpperCase();
  const qty = Number($('ticket-qty').value);
  const type = $('ticket-type').value;
  const limit = Number($('ticket-limit').value);
  if (!SYMBOL.test(symbol)) return ticketStatus(`"${symbol}" is not a ticker symbol.`, true);
  if (!(Number.isInteger(qty) && qty > 0)) return ticketStatus('Quantity: whole shares, at least 1.', true);
  if (type === 'limit' && !(limit > 0)) return ticketStatus('A limit order needs a limit price above 0.', true);
  // Its updates come on the symbol's channel: watch it.
  if (!watched.has(symbol)) addSymbol(symbol);
  const order = { client_order_id: ticketId, symbol, side: ticketSide(), qty, type, ...(type === 'limit' ? { limit_price: limit } : {}), ...asUser };
  myOrders.add(order.client_order_id);
  saveOrders();
  upsertOrder({ client_order_id: order.client_order_id, symbol, side: order.side, qty: String(qty), type, limit_price: order.limit_price, status: 'sending' }, new Date().toISOString());
  pendingOrder = order;
  $('place').disabled = true;
  void sendOrder(order);
}

async function sendOrder(order) {
  ticketStatus(`Sending ${order.side} ${order.qty} ${order.symbol}…`);
  try {
    const ok = await client.placeOrder(order);
    if (pendingOrder !== order) return;
    ticketStatus(ok.duplicate ? `${order.client_order_id}: already placed (sent again after a reconnection).` : `Placed ${order.side} ${order.qty} ${order.symbol} (${order.client_order_id}).`);
    const row = orders.get(order.client_order_id);
    if (row && row.order.status === 'sending') upsertOrder({ ...row.order, status: 'sent' });
    finishOrder();
  } catch (error) {
    if (pendingOrder !== order) return;
    if (error.code) {
      ticketStatus(`Refused: ${error.message}`, true);
      upsertOrder({ ...(orders.get(order.client_order_id)?.order ?? {}), status: 'refused', reason: error.message });
      finishOrder();
    } else {
      // Lost with the connection: kept, and sent again (same id) once connected.
      ticketStatus(`Not confirmed yet (${error.message}): will be sent again with the same id, and placed at most once.`);
    }
  }
}

function finishOrder() {
  pendingOrder = undefined;
  ticketId = newOrderId();
  $('place').disabled = false;
}

function ticketStatus(text, bad = false) {
  $('ticket-status').textContent = text;
  $('ticket-status').className = bad ? 'error' : 'dim';
}

/** An order update on a symbol's channel: this page's own orders go in the blotter; a fill moves the position once. */
function onOrder(symbol, o, position) {
  const d = o.order_data ?? {};
  const id = d.client_order_id;
  if (!id || !myOrders.has(id)) return;
  upsertOrder({ ...d, symbol }, o.timestamp);
  if ((d.event === 'fill' || d.event === 'partial_fill') && d.execution) {
    const key = position ?? `${id}:${d.execution.execution_id ?? d.filled_qty}`;
    if (!appliedFills.has(key)) {
      appliedFills.add(key);
      positions.apply(symbol, d.side, Number(d.execution.qty), Number(d.execution.price));
      renderPositions();
    }
  }
}

function upsertOrder(update, timestamp) {
  const id = update.client_order_id;
  let entry = orders.get(id);
  if (!entry) {
    const tr = document.createElement('tr');
    tr.dataset.order = id;
    for (let i = 0; i < 9; i++) tr.append(document.createElement('td'));
    $('orders').tBodies[0].prepend(tr);
    entry = { tr, order: {}, time: timestamp };
    orders.set(id, entry);
    while ($('orders').tBodies[0].rows.length > MAX_ORDERS) {
      const last = $('orders').tBodies[0].lastElementChild;
      orders.delete(last.dataset.order);
      last.remove();
    }
  }
  // A late copy must not take a final order back to an earlier state.
  const final = ['filled', 'canceled', 'rejected', 'expired'];
  const keepStatus = final.includes(entry.order.status) && !final.includes(update.status) && update.event !== undefined;
  const status = update.event === 'order_cancel_rejected' ? entry.order.status : keepStatus ? entry.order.status : (update.status ?? update.event ?? entry.order.status);
  entry.order = { ...entry.order, ...update, status, ...(update.event === 'order_cancel_rejected' ? { cancelRefused: update.reason } : {}) };
  entry.time = timestamp ?? entry.time;
  const o = entry.order;
  const cells = entry.tr.cells;
  cells[0].textContent = entry.time ? new Date(entry.time).toLocaleTimeString() : '–';
  cells[1].textContent = o.symbol ?? '–';
  cells[2].textContent = o.side ?? '–';
  cells[2].className = o.side === 'buy' ? 'up' : o.side === 'sell' ? 'down' : '';
  cells[3].textContent = o.qty ?? '–';
  cells[4].textContent = o.type === 'limit' ? `limit ${o.limit_price ?? ''}` : (o.type ?? '–');
  cells[5].textContent = o.filled_qty ?? '0';
  cells[6].textContent = o.filled_avg_price ?? '–';
  cells[7].textContent = o.status + (o.reason && (o.status === 'rejected' || o.status === 'refused') ? `: ${o.reason}` : o.cancelRefused ? ` (cancel refused: ${o.cancelRefused})` : '');
  cells[7].className = `status status-${o.status}`;
  cells[7].title = o.reason ?? '';
  cells[8].textContent = '';
  if (OPEN_STATUSES.has(o.status) && o.status !== 'sending') {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'cancel';
    b.textContent = 'Cancel';
    b.setAttribute('aria-label', `Cancel order ${o.side} ${o.qty} ${o.symbol}`);
    b.addEventListener('click', () => cancelOrder(id, b));
    cells[8].append(b);
  }
  desk.orders[id] = o.status;
}

async function cancelOrder(id, button) {
  const o = orders.get(id)?.order;
  if (!o) return;
  button.disabled = true;
  try {
    await client.cancelOrder({ client_order_id: id, symbol: o.symbol, ...asUser });
    ticketStatus(`Cancel sent for ${id}.`);
  } catch (error) {
    button.disabled = false;
    notice('error', `Cancel of ${id} failed: ${error.message}`, error.code);
  }
}

function renderPositions() {
  const body = $('positions').tBodies[0];
  body.textContent = '';
  let unrealised = 0;
  let realised = 0;
  for (const [symbol, p] of positions.bySymbol) {
    const last = watched.get(symbol)?.last;
    const u = positions.unrealised(symbol, last);
    unrealised += u;
    realised += p.realised;
    const tr = document.createElement('tr');
    tr.dataset.symbol = symbol;
    tr.innerHTML = '<td></td><td></td><td></td><td></td><td></td><td></td>';
    const c = tr.cells;
    c[0].textContent = symbol;
    c[1].textContent = String(p.qty);
    c[2].textContent = p.qty === 0 ? '–' : fmt(p.avg);
    c[3].textContent = fmt(last);
    c[4].textContent = signed(u);
    c[4].className = tone(u);
    c[5].textContent = signed(p.realised);
    c[5].className = tone(p.realised);
    body.append(tr);
    desk.positions[symbol] = { qty: p.qty, avg: p.avg, realised: p.realised, unrealised: u };
  }
  $('pnl-unrealised').textContent = signed(unrealised);
  $('pnl-unrealised').className = tone(unrealised);
  $('pnl-realised').textContent = signed(realised);
  $('pnl-realised').className = tone(realised);
}

// ---- alerts and indicators -----------------------------------------------------------

const indicators = new Map(); // symbol → Map(name@timeframe → value)

/** Patterns and indicators of the watched symbols only (a filter per channel, kept after a reconnection). */
function followChannels() {
  if (!wasConnected) return;
  const symbols = [...watched.keys()];
  const channels = [INDICATOR_CHANNEL, PATTERN_CHANNEL].filter((c) => exposed.has(c));
  if (channels.length === 0) return;
  if (symbols.length === 0) client.unsubscribeChannels(channels);
  else client.subscribeChannels(channels, { symbols });
}

function prefs() {
  const patterns = $('pref-patterns')
    .value.split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  return { symbols: [...watched.keys()], patterns, min_confidence: Number($('pref-confidence').value) };
}

/** The user's alert preferences: the watched symbols, the patterns and confidence chosen here. */
async function applyAlertPrefs() {
  if (!wasConnected || client.state !== 'open') return;
  const p = prefs();
  try {
    // No patterns named: all of them (the preference is cleared).
    await client.setAlerts({ symbols: p.symbols, ...(p.patterns.length ? { patterns: p.patterns } : { patterns: [] }), min_confidence: p.min_confidence, ...asUser });
    $('prefs-status').textContent = `Alerts: ${p.symbols.join(', ') || 'no symbols'}; ${p.patterns.length ? p.patterns.join(', ') : 'all patterns'}; confidence ≥ ${p.min_confidence.toFixed(2)}.`;
    desk.alertPrefs = p;
  } catch (error) {
    $('prefs-status').textContent = `Alerts not saved: ${error.message}`;
  }
}
$('pref-confidence').addEventListener('input', () => ($('pref-confidence-value').textContent = Number($('pref-confidence').value).toFixed(2)));
$('prefs').addEventListener('submit', (e) => {
  e.preventDefault();
  void applyAlertPrefs();
});

function onAlert(a) {
  if (!a || !watched.has(a.symbol)) return;
  const li = document.createElement('li');
  li.dataset.symbol = a.symbol;
  const when = typeof a.timestamp === 'number' ? new Date(a.timestamp * 1000).toLocaleTimeString() : '';
  li.innerHTML = '<b></b><span></span>';
  li.firstChild.textContent = `${a.symbol} ${a.pattern}`;
  li.lastChild.textContent = `${a.timeframe ?? ''} ${a.direction ?? ''} · confidence ${fmt(a.confidence)} · ${when}`;
  $('alerts').prepend(li);
  while ($('alerts').children.length > MAX_ALERTS) $('alerts').lastChild.remove();
  desk.alerts.push({ symbol: a.symbol, pattern: a.pattern, confidence: a.confidence });
}

function onPattern(p) {
  // Live detections of the watched symbols (seed 002), beside the alerts routed by preference.
  if (!p || !watched.has(p.symbol) || p.symbol !== selected) return;
  const key = `${p.pattern_name} (${p.timeframe})`;
  let m = indicators.get(p.symbol);
  if (!m) indicators.set(p.symbol, (m = new Map()));
  m.set(`pattern`, `${key} ${fmt(p.confidence, 1)}%`);
  renderIndicators();
}

function onIndicator(i) {
  if (!i || !watched.has(i.symbol)) return;
  let m = indicators.get(i.symbol);
  if (!m) indicators.set(i.symbol, (m = new Map()));
  m.set(`${i.indicator_name} ${i.timeframe}`, fmt(i.value));
  if (i.symbol === selected) renderIndicators();
}

function renderIndicators() {
  const dl = $('indicators');
  dl.textContent = '';
  const m = indicators.get(selected);
  if (!m || m.size === 0) {
    dl.innerHTML = '<dt>–</dt><dd>waiting for the first bars</dd>';
    return;
  }
  for (const [name, value] of [...m].sort()) {
    const dt = document.createElement('dt');
    dt.textContent = name === 'pattern' ? 'last pattern' : name;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dl.append(dt, dd);
  }
}

// ---- backtests -----------------------------------------------------------------------

for (const [i, name] of PATTERNS.entries()) {
  const label = document.createElement('label');
  label.innerHTML = `<input type="checkbox" value="${name}"${i < 2 ? ' checked' : ''}> ${name}`;
  $('bt-patterns').append(label);
}
{
  const end = new Date();
  const start = new Date(end.getTime() - 90 * 24 * 3600 * 1000);
  $('bt-end').value = end.toISOString().slice(0, 10);
  $('bt-start').value = start.toISOString().slice(0, 10);
}

$('bt').addEventListener('submit', async (e) => {
  e.preventDefault();
  const patterns = [...$('bt-patterns').querySelectorAll('input:checked')].map((i) => i.value);
  const symbols = [...watched.keys()];
  if (patterns.length === 0 || symbols.length === 0) return btStatus('Choose at least one pattern, and watch at least one symbol.');
  $('bt-run').disabled = true;
  $('bt-result').textContent = '';
  $('bt-progress').value = 0;
  try {
    const ok = await client.submitBacktest({ symbols, patterns, start_date: $('bt-start').value, end_date: $('bt-end').value, ...asUser });
    job = { id: ok.job_id, status: ok.status };
    desk.backtest = { job_id: ok.job_id, status: ok.status, progress: 0 };
    $('bt-cancel').disabled = false;
    btStatus(`${ok.job_id}: ${ok.status}, waiting for a worker…`);
  } catch (error) {
    $('bt-run').disabled = false;
    btStatus(`Not submitted: ${error.message}`);
  }
});
$('bt-cancel').addEventListener('click', async () => {
  if (!job) return;
  $('bt-cancel').disabled = true;
  try {
    const ok = await client.cancelBacktest(job.id, user);
    btStatus(`${job.id}: ${ok.status}`);
    if (ok.status === 'cancelled') endJob('cancelled');
  } catch (error) {
    $('bt-cancel').disabled = false;
    btStatus(`Cancel failed: ${error.message}`);
  }
});

function btStatus(text) {
  $('bt-status').textContent = text;
}

function onJobProgress(p) {
  if (!job || p.job_id !== job.id) return;
  $('bt-progress').value = p.progress;
  btStatus(`${job.id}: ${p.status} ${Math.round(p.progress * 100)}%${p.message ? ` · ${p.message}` : ''}`);
  desk.backtest = { ...desk.backtest, status: p.status, progress: p.progress };
}

function onJobResult(r) {
  if (!job || r.job_id !== job.id || desk.backtest?.done) return;
  const summary = r.results?.summary ?? {};
  $('bt-progress').value = r.status === 'completed' ? 1 : $('bt-progress').value;
  btStatus(`${job.id}: ${r.status}${r.error ? `: ${r.error}` : ''}`);
  const dl = $('bt-result');
  dl.textContent = '';
  for (const [k, v] of Object.entries(summary)) {
    if (typeof v !== 'number' && typeof v !== 'string') continue;
    const dt = document.createElement('dt');
    dt.textContent = k.replace(/_/g, ' ');
    const dd = document.createElement('dd');
    // Amounts to the cent; rates and percentages keep four digits.
    dd.textContent = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : Math.abs(v) >= 10 ? v.toFixed(2) : v.toFixed(4)) : v;
    dl.append(dt, dd);
  }
  desk.backtest = { ...desk.backtest, status: r.status, summary, done: true };
  endJob(r.status);
}

function endJob(status) {
  $('bt-run').disabled = false;
  $('bt-cancel').disabled = true;
  if (desk.backtest) desk.backtest.status = status;
}

// ---- start ---------------------------------------------------------------------------

$('add').addEventListener('submit', (e) => {
  e.preventDefault();
  if (addSymbol($('symbol').value)) $('symbol').value = '';
});

setInterval(() => {
  $('rate').textContent = String(updatesThisSecond);
  updatesThisSecond = 0;
  if (client.state === 'open') $('rtt').textContent = client.rttMs === undefined ? '–' : `${client.rttMs} ms`;
  else showStale();
}, 1000);

// Not awaited: subscriptions made before the welcome are sent with it (and after every reconnection).
client.connect().catch(() => undefined);
for (const s of initial) addSymbol(s);
renderTicket();
renderPositions();
renderIndicators();
