// The live dashboard: a watch-list with last price and change, a lightweight-charts chart of
// the selected symbol, order updates, and the connection's state and latency. Everything
// arrives through the gateway (tickbus-client.js). The watch-list is kept in the URL
// (?symbols=AAPL,MSFT) and in localStorage, so a reload or a shared link shows the same.
import { TickbusClient } from '/tickbus-client.js';
import { createChart, LineSeries } from '/vendor/lightweight-charts.mjs';

const params = new URLSearchParams(location.search);
const DEFAULT = ['AAPL', 'MSFT', 'GOOG'];
const stored = localStorage.getItem('tickbus.symbols');
const initial = params.get('symbols') ? params.get('symbols').split(',') : stored ? JSON.parse(stored) : DEFAULT;
const SYMBOL = /^[A-Z0-9][A-Z0-9./-]{0,14}$/;

const $ = (id) => document.getElementById(id);
const rows = new Map(); // symbol -> { tr, first, last }
const series = new Map(); // symbol -> [{ time, value }]
let selected;
let updatesThisSecond = 0;
const MAX_POINTS = 5000;
const MAX_ORDERS = 50;

// State for tests and for the curious: window.dashboard.
const dashboard = { prices: {}, points: 0, orders: 0, state: 'connecting', resumes: [] };
window.dashboard = dashboard;

const chart = createChart($('chart'), {
  layout: { background: { color: '#161c24' }, textColor: '#d6dde6' },
  grid: { vertLines: { color: '#263040' }, horzLines: { color: '#263040' } },
  timeScale: { timeVisible: true, secondsVisible: true },
  autoSize: true,
});
const line = chart.addSeries(LineSeries, { color: '#2962ff', lineWidth: 2 });

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new TickbusClient(wsUrl, { token: params.get('token') ?? undefined, pingMs: 2000 });

client.on('state', (state) => {
  dashboard.state = state;
  $('state').textContent = state;
  $('state').dataset.state = state;
});
client.on('update', (u) => {
  updatesThisSecond++;
  if (u.data.type === 'price') onPrice(u.symbol, u.data);
  else if (u.data.type === 'order') onOrder(u.symbol, u.data);
});
client.on('snapshot', (s) => {
  if (s.data && s.data.type === 'price') onPrice(s.key, s.data);
});
client.on('subscribed', (m) => dashboard.resumes.push({ key: m.key, resume: m.resume, replayed: m.replayed ?? 0 }));
client.on('error', (e) => ($('form-error').textContent = e.message));
client.on('notice', (n) => ($('form-error').textContent = n.message));

function save() {
  const list = [...rows.keys()];
  localStorage.setItem('tickbus.symbols', JSON.stringify(list));
  const url = new URL(location.href);
  url.searchParams.set('symbols', list.join(','));
  history.replaceState(null, '', url);
}

function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

function addSymbol(raw) {
  const symbol = raw.trim().toUpperCase();
  if (!SYMBOL.test(symbol)) {
    $('form-error').textContent = `"${raw}" is not a ticker symbol (letters, digits, ".", "-", "/").`;
    return;
  }
  $('form-error').textContent = '';
  if (rows.has(symbol)) return select(symbol);
  const tr = document.createElement('tr');
  tr.dataset.symbol = symbol;
  tr.innerHTML = `<td>${symbol}</td><td class="last">–</td><td class="chg">–</td><td class="pct">–</td><td><button class="remove" title="Remove ${symbol}" aria-label="Remove ${symbol}">×</button></td>`;
  tr.addEventListener('click', () => select(symbol));
  tr.querySelector('button').addEventListener('click', (e) => {
    e.stopPropagation();
    removeSymbol(symbol);
  });
  $('watchlist').tBodies[0].append(tr);
  rows.set(symbol, { tr, first: undefined, last: undefined });
  series.set(symbol, []);
  client.subscribe([symbol]);
  save();
  if (!selected) select(symbol);
}

function removeSymbol(symbol) {
  rows.get(symbol)?.tr.remove();
  rows.delete(symbol);
  series.delete(symbol);
  delete dashboard.prices[symbol];
  client.unsubscribe([symbol]);
  save();
  if (selected === symbol) select(rows.keys().next().value);
}

function select(symbol) {
  selected = symbol;
  for (const [s, r] of rows) r.tr.classList.toggle('selected', s === symbol);
  $('chart-title').textContent = symbol ? `${symbol} · last trades` : 'Select a symbol';
  line.setData(symbol ? series.get(symbol) ?? [] : []);
  dashboard.points = symbol ? (series.get(symbol)?.length ?? 0) : 0;
}

function onPrice(symbol, p) {
  const row = rows.get(symbol);
  if (!row || typeof p.price !== 'number') return;
  row.first ??= p.price;
  const prev = row.last;
  row.last = p.price;
  dashboard.prices[symbol] = p.price;
  const change = p.price - row.first;
  const cells = row.tr.cells;
  cells[1].textContent = fmt(p.price);
  cells[1].className = `last ${prev === undefined || p.price === prev ? '' : p.price > prev ? 'up' : 'down'}`;
  cells[2].textContent = `${change >= 0 ? '+' : ''}${fmt(change)}`;
  cells[3].textContent = `${change >= 0 ? '+' : ''}${fmt((change / row.first) * 100)}%`;
  cells[2].className = cells[3].className = change >= 0 ? 'up' : 'down';
  const ts = Date.parse(p.timestamp);
  if (Number.isFinite(ts)) {
    const lag = Date.now() - ts;
    if (lag >= 0 && lag < 60_000) $('latency').textContent = `${lag} ms`;
  }
  // One point per second per symbol: a newer trade in the same second replaces it.
  const points = series.get(symbol);
  const time = Math.floor((Number.isFinite(ts) ? ts : Date.now()) / 1000);
  const last = points[points.length - 1];
  if (last && time < last.time) return; // older than the chart (a replay): already drawn
  const point = { time, value: p.price };
  if (last && last.time === time) points[points.length - 1] = point;
  else points.push(point);
  if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
  if (symbol === selected) {
    line.update(point);
    dashboard.points = points.length;
  }
}

function onOrder(symbol, o) {
  const d = o.order_data ?? {};
  const tr = document.createElement('tr');
  const cell = (v) => {
    const td = document.createElement('td');
    td.textContent = v === undefined || v === null ? '–' : String(v);
    return td;
  };
  tr.append(cell(new Date(o.timestamp).toLocaleTimeString()), cell(symbol), cell(d.client_order_id ?? d.id), cell(d.side), cell(d.filled_qty ?? d.qty), cell(d.status ?? d.event), cell(d.filled_avg_price ?? d.limit_price));
  const body = $('orders').tBodies[0];
  body.prepend(tr);
  while (body.rows.length > MAX_ORDERS) body.deleteRow(body.rows.length - 1);
  dashboard.orders++;
}

$('add').addEventListener('submit', (e) => {
  e.preventDefault();
  addSymbol($('symbol').value);
  $('symbol').value = '';
});

setInterval(() => {
  $('rate').textContent = String(updatesThisSecond);
  updatesThisSecond = 0;
  $('rtt').textContent = client.rttMs === undefined ? '–' : `${client.rttMs} ms`;
}, 1000);

// Not awaited: subscriptions made before the welcome are sent with it (and after every reconnection).
client.connect().catch(() => undefined);
for (const s of initial) addSymbol(s);
