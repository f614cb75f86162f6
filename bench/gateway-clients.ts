// A client worker of bench/gateway.ts: opens --count connections to the server under test
// (a few at a time), each subscribing to its --per-client symbols, and says ready once
// every subscription is confirmed. Between `begin` and `end` it counts the updates, checks
// each symbol's sequence (the publisher numbers its prices in `volume`) and keeps every
// n-th latency: receive time minus the send time the publisher wrote in `timestamp`.
//
// - tickbus: `ws` clients on /ws sending {"op":"subscribe","symbols":[...]}, reading
//   {"type":"batch","updates":[...]} frames; ready on the `subscribed` replies.
// - socketio: socket.io-client (WebSocket transport only, no reconnection) emitting
//   `subscribe` with the symbols and an acknowledgement, reading `update` events.
import { io, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { choiceOption, intOption, parseCli } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { IMPLS, clientSymbols, makeMicroIsoReader, symbolNames, type ClientsCommand, type ClientsEvent } from './gateway-common.ts';

const v = parseCli('node --import tsx bench/gateway-clients.ts [options]', 'A client worker of bench/gateway.ts (started by it).', {
  impl: { type: 'string', value: 'impl', description: 'tickbus, socketio or ws (the bare ws floor, with the tickbus client).' },
  port: { type: 'string', value: 'port', description: 'The server on 127.0.0.1.' },
  count: { type: 'string', value: 'N', description: 'Clients in this process.' },
  first: { type: 'string', value: 'N', default: '0', description: 'Index of the first client (which symbols it watches).' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols in the run.' },
  'per-client': { type: 'string', value: 'N', default: '5', description: 'Symbols each client watches.' },
  concurrency: { type: 'string', value: 'N', default: '50', description: 'Connections being opened at once.' },
});
if (v.impl === undefined || v.port === undefined || v.count === undefined) throw new Error('--impl, --port and --count are required.');
const impl = choiceOption(v.impl, 'impl', IMPLS);
const port = intOption(v.port, 'port');
const count = intOption(v.count, 'count');
const first = intOption(v.first, 'first', 0);
const symbols = symbolNames(intOption(v.symbols, 'symbols'));
const perClient = intOption(v['per-client'], 'per-client');
const concurrency = intOption(v.concurrency, 'concurrency');
const symbolCount = symbols.length;

// ---- counting ------------------------------------------------------------------------

const readIso = makeMicroIsoReader();
let counting = false;
let ready = false;
let deliveries = 0;
let frames = 0;
let lost = 0;
let outOfOrder = 0;
let disconnects = 0;
let errors = 0;
let firstError: string | undefined;
let sampleEvery = 1;
let untilSample = 1;
let samples = new Float64Array(1024);
let sampled = 0;

function error(message: string): void {
  errors++;
  firstError ??= message;
}

/** Per client: the last sequence number seen of each of its symbols (by position in its list). */
class Seen {
  readonly last: Float64Array;
  constructor(n: number) {
    this.last = new Float64Array(n).fill(-1);
  }
}

/** One update, as both clients read it: the symbol's slot in the client's list, its send time and number. */
function update(seen: Seen, slot: number, timestamp: string, seq: number, now: number): void {
  const last = seen.last[slot] as number;
  seen.last[slot] = seq;
  if (!counting) return;
  deliveries++;
  if (last >= 0) {
    if (seq <= last) outOfOrder++;
    else if (seq - last > symbolCount) lost += (seq - last) / symbolCount - 1;
  }
  if (--untilSample === 0) {
    untilSample = sampleEvery;
    if (sampled === samples.length) {
      const bigger = new Float64Array(samples.length * 2);
      bigger.set(samples);
      samples = bigger;
    }
    samples[sampled++] = now - readIso(timestamp);
  }
}

/** A client's symbol slot: symbol index to position in its list (clients watch consecutive ones). */
function slotOf(index: number, symbol: string | undefined): number {
  const s = Number(symbol?.slice(1));
  return (s - ((index * perClient) % symbolCount) + symbolCount) % symbolCount;
}

// ---- clients -------------------------------------------------------------------------

interface Update {
  symbol?: string;
  data?: { timestamp?: string; volume?: number; symbol?: string };
}

function tickbusClient(index: number, mine: string[]): Promise<() => void> {
  const seen = new Seen(perClient);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    let subscribed = 0;
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', symbols: mine })));
    ws.on('message', (raw: Buffer) => {
      const now = epochMs();
      const m = JSON.parse(raw.toString('utf8')) as { type: string; updates?: Update[]; code?: string; message?: string };
      if (m.type === 'batch') {
        if (counting) frames++;
        for (const u of m.updates ?? []) update(seen, slotOf(index, u.symbol), u.data?.timestamp ?? '', u.data?.volume ?? NaN, now);
      } else if (m.type === 'subscribed') {
        if (++subscribed === mine.length) resolve(() => ws.terminate());
      } else if (m.type === 'error' || m.type === 'notice') {
        error(`${m.type} ${m.code ?? ''}: ${m.message ?? ''}`);
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
      reject(new Error(`closed ${code} before subscribing`));
    });
  });
}

function socketioClient(index: number, mine: string[]): Promise<() => void> {
  const seen = new Seen(perClient);
  const socket: Socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000 });
  return new Promise((resolve, reject) => {
    socket.on('connect', () => {
      socket.emit('subscribe', mine, () => resolve(() => socket.disconnect()));
    });
    socket.on('update', (m: Update) => {
      if (counting) frames++;
      update(seen, slotOf(index, m.data?.symbol), m.data?.timestamp ?? '', m.data?.volume ?? NaN, epochMs());
    });
    socket.on('connect_error', (e) => {
      error(`connect error: ${e.message}`);
      reject(e);
    });
    socket.on('disconnect', (reason) => {
      if (ready) {
        disconnects++;
        error(`disconnected: ${reason}`);
      }
      reject(new Error(`disconnected (${reason}) before subscribing`));
    });
  });
}

const closers: Array<() => void> = [];

async function connectAll(): Promise<number> {
  const started = epochMs();
  let next = 0;
  // The bare ws floor speaks the least of the tickbus protocol: the same client.
  const open = impl === 'socketio' ? socketioClient : tickbusClient;
  const lane = async () => {
    while (next < count) {
      const index = first + next++;
      closers.push(await open(index, clientSymbols(index, perClient, symbols)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return epochMs() - started;
}

// ---- IPC -----------------------------------------------------------------------------

let begunAt = 0;
let cpuAtBegin: NodeJS.CpuUsage = process.cpuUsage();

const send = serveParent<ClientsCommand, ClientsEvent>(
  (command) => {
    if (command.type === 'begin') {
      deliveries = frames = lost = outOfOrder = sampled = 0;
      sampleEvery = untilSample = command.sampleEvery;
      counting = true;
      begunAt = epochMs();
      cpuAtBegin = process.cpuUsage();
      send({ type: 'begun' });
      return;
    }
    counting = false;
    const cpu = process.cpuUsage(cpuAtBegin);
    send({ type: 'result', deliveries, frames, windowMs: epochMs() - begunAt, lost, outOfOrder, disconnects, errors, firstError, cpuMicros: cpu.user + cpu.system, samples: samples.slice(0, sampled) });
  },
  async () => {
    ready = false;
    for (const close of closers) close();
    await new Promise((resolve) => setTimeout(resolve, 100));
  },
);
const connectMs = await connectAll();
ready = true;
send({ type: 'ready', connected: closers.length, connectMs, rss: process.memoryUsage().rss });
