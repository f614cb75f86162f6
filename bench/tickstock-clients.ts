// A client worker of bench/tickstock.ts: browser-like `ws` connections to the gateway, each
// a user with its seeded preferences (tickstock-common.ts), opened a few at a time; ready once
// every request is answered. Between `begin` and `end` it counts what arrives and, in the
// latency mode, keeps every pattern message's bar end and receive time.
//
// - --streams N: users subscribed to tickstock:patterns:streaming filtered by their symbols
//   (`{"op":"subscribe","channels":[…],"filter":{"symbols":[…]}}`), reading `batch` frames.
// - --inbox N: users who set alert preferences (`{"op":"alerts","user","symbols","patterns",
//   "min_confidence"}`) and follow their inbox (`{"op":"subscribe","inbox":true,"user"}`),
//   reading `inbox` frames (the pattern events routed to them).
// - --variant filtered|unfiltered|rooms --streams N: the fan-out users: the channel filtered,
//   the channel whole, or the ticker rooms of the same symbols; counted, not timed.
import { WebSocket } from 'ws';
import { choiceOption, intOption, parseCli } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { PATTERN_CHANNEL, VARIANTS, preferencesOf, symbolNames, type ClientsCommand, type ClientsEvent, type Samples } from './tickstock-common.ts';

const v = parseCli('node --import tsx bench/tickstock-clients.ts [options]', 'A client worker of bench/tickstock.ts (started by it).', {
  port: { type: 'string', value: 'port', description: 'The gateway on 127.0.0.1.' },
  streams: { type: 'string', value: 'N', default: '0', description: 'Pattern-channel users in this process.' },
  inbox: { type: 'string', value: 'N', default: '0', description: 'Alert (inbox) users in this process.' },
  variant: { type: 'string', value: 'which', default: 'filtered', description: 'How the pattern-channel users subscribe: filtered, unfiltered or rooms.' },
  latency: { type: 'boolean', description: 'Keep every message\'s bar end and receive time.' },
  first: { type: 'string', value: 'N', default: '0', description: 'Index of the first user (its preferences).' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols in the run.' },
  seed: { type: 'string', value: 'N', default: '42', description: 'Seed of the preferences.' },
  concurrency: { type: 'string', value: 'N', default: '50', description: 'Connections being opened at once.' },
});
if (v.port === undefined) throw new Error('--port is required.');
const port = intOption(v.port, 'port');
const streams = intOption(v.streams, 'streams', 0);
const inboxUsers = intOption(v.inbox, 'inbox', 0);
const variant = choiceOption(v.variant, 'variant', VARIANTS);
const first = intOption(v.first, 'first', 0);
const symbols = symbolNames(intOption(v.symbols, 'symbols'));
const symbolIndex = new Map(symbols.map((s, i) => [s, i]));
const seed = intOption(v.seed, 'seed', 0);
const concurrency = intOption(v.concurrency, 'concurrency');

// ---- counting ------------------------------------------------------------------------

class SampleLog {
  symbol = new Int32Array(1024);
  barEnd = new Float64Array(1024);
  received = new Float64Array(1024);
  length = 0;
  add(symbol: number, barEnd: number, received: number): void {
    if (this.length === this.symbol.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.symbol = grow(this.symbol, (n) => new Int32Array(n));
      this.barEnd = grow(this.barEnd, (n) => new Float64Array(n));
      this.received = grow(this.received, (n) => new Float64Array(n));
    }
    this.symbol[this.length] = symbol;
    this.barEnd[this.length] = barEnd;
    this.received[this.length++] = received;
  }
  take(): Samples {
    return { symbol: this.symbol.slice(0, this.length), barEnd: this.barEnd.slice(0, this.length), received: this.received.slice(0, this.length) };
  }
}

let counting = false;
let ready = false;
let deliveries = 0;
let inboxDeliveries = 0;
let frames = 0;
let disconnects = 0;
let errors = 0;
let firstError: string | undefined;
let stream = new SampleLog();
let inbox = new SampleLog();

function error(message: string): void {
  errors++;
  firstError ??= message;
}

interface Frame {
  type: string;
  id?: number;
  code?: string;
  message?: string;
  updates?: Array<{ channel?: string; data?: { symbol?: string; detected_at?: number } }>;
  data?: { symbol?: string; timestamp?: number };
}

/** Opens one user's connection, sends its requests, resolves (with its closer) once each is answered `ok`. */
function connect(requests: object[]): Promise<() => void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    let answered = 0;
    ws.on('open', () => requests.forEach((r, i) => ws.send(JSON.stringify({ ...r, id: i + 1 }))));
    ws.on('message', (raw: Buffer) => {
      const now = epochMs();
      const m = JSON.parse(raw.toString('utf8')) as Frame;
      if (m.type === 'batch') {
        if (!counting) return;
        frames++;
        for (const u of m.updates ?? []) {
          deliveries++;
          if (v.latency && u.channel === PATTERN_CHANNEL && u.data?.detected_at !== undefined) stream.add(symbolIndex.get(u.data.symbol ?? '') ?? -1, Math.round(u.data.detected_at * 1000), now);
        }
      } else if (m.type === 'inbox') {
        if (!counting) return;
        frames++;
        inboxDeliveries++;
        if (v.latency && m.data?.timestamp !== undefined) inbox.add(symbolIndex.get(m.data.symbol ?? '') ?? -1, Math.round(m.data.timestamp * 1000), now);
      } else if (m.type === 'ok') {
        if (++answered === requests.length) resolve(() => ws.terminate());
      } else if (m.type === 'error' || m.type === 'notice') {
        error(`${m.type} ${m.code ?? ''}: ${m.message ?? ''}`);
        if (!ready) reject(new Error(`${m.type} ${m.code ?? ''}: ${m.message ?? ''}`));
      }
    });
    ws.on('error', (e) => {
      error(`socket error: ${e.message}`);
      reject(e);
    });
    ws.on('close', (code, reason) => {
      if (ready) {
        disconnects++;
        error(`closed ${code} ${String(reason)}`);
      }
      reject(new Error(`closed ${code} before its requests were answered`));
    });
  });
}

/** What user `index` asks for. */
function requestsOf(index: number, alerts: boolean): object[] {
  const p = preferencesOf(index, symbols.length, seed);
  const mine = p.symbols.map((s) => symbols[s] as string);
  if (alerts) {
    const user = `bench_user_${index}`;
    return [
      { op: 'alerts', user, symbols: mine, ...(p.patterns.length > 0 ? { patterns: p.patterns } : {}), min_confidence: p.minConfidence },
      { op: 'subscribe', inbox: true, user },
    ];
  }
  if (variant === 'rooms') return [{ op: 'subscribe', symbols: mine }];
  if (variant === 'unfiltered') return [{ op: 'subscribe', channels: [PATTERN_CHANNEL] }];
  return [{ op: 'subscribe', channels: [PATTERN_CHANNEL], filter: { symbols: mine } }];
}

const closers: Array<() => void> = [];

async function connectAll(): Promise<number> {
  const started = epochMs();
  const users = [...Array.from({ length: streams }, (_, i) => ({ index: first + i, alerts: false })), ...Array.from({ length: inboxUsers }, (_, i) => ({ index: first + streams + i, alerts: true }))];
  let next = 0;
  const lane = async () => {
    while (next < users.length) {
      const u = users[next++] as { index: number; alerts: boolean };
      closers.push(await connect(requestsOf(u.index, u.alerts)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, lane));
  return epochMs() - started;
}

// ---- IPC -----------------------------------------------------------------------------

let begunAt = 0;
const send = serveParent<ClientsCommand, ClientsEvent>(
  (command) => {
    if (command.type === 'begin') {
      deliveries = inboxDeliveries = frames = 0;
      stream = new SampleLog();
      inbox = new SampleLog();
      counting = true;
      begunAt = epochMs();
      send({ type: 'begun' });
      return;
    }
    counting = false;
    send({ type: 'result', deliveries, inboxDeliveries, frames, windowMs: epochMs() - begunAt, disconnects, errors, firstError, stream: stream.take(), inbox: inbox.take() });
  },
  async () => {
    ready = false;
    for (const close of closers) close();
    await new Promise((resolve) => setTimeout(resolve, 100));
  },
);
const connectMs = await connectAll();
ready = true;
send({ type: 'ready', connected: closers.length, connectMs });
