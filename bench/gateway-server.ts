// The server-under-test worker of bench/gateway.ts, alone in its process so that its CPU
// time and memory are its own:
//
// - tickbus: the gateway (`new Gateway({ bus, logger, port: 0, batchMs })`), its bus on
//   the benchmark's redis-server; one Redis subscription per symbol a client watches.
// - socketio: a Socket.IO 4 server (WebSocket transport only) with a node-redis subscriber
//   that PSUBSCRIBEs to TICKER_UPDATES_*, parses each message and emits it to the room of
//   its symbol (`io.to(symbol).emit('update', message)`): the seeds' pattern. A client joins
//   its rooms with a `subscribe` event (a list of symbols, acknowledged).
// - ws: the floor, a bare `ws` server that only fans out (bareWs below), for what a
//   connection and a delivery cost below any protocol.
//
// Says ready with its port and memory; on `mark` reports its CPU time, memory and
// connections; on `memory`, its memory after a full garbage collection (the parent asks
// after the measured window, so that the collection is not in it). Exits when the parent
// lets go of it.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { createClient } from 'redis';
import { Server } from 'socket.io';
import { WebSocketServer, type WebSocket } from 'ws';
import { Gateway, createBus } from './lib/tickbus.ts';
import { choiceOption, intOption, parseCli } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { startCpuProfile } from './lib/profiler.ts';
import { CHANNEL_PREFIX, IMPLS, type ServerCommand, type ServerEvent, type ServerMemory } from './gateway-common.ts';

const v = parseCli('node --import tsx bench/gateway-server.ts [options]', 'The server worker of bench/gateway.ts (started by it).', {
  impl: { type: 'string', value: 'impl', description: 'tickbus, socketio or ws.' },
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  'batch-ms': { type: 'string', value: 'ms', default: '0', description: 'tickbus: the gateway batchMs.' },
  'batch-timing': { type: 'string', value: 'how', default: 'adaptive', description: 'tickbus: the gateway batch timing (adaptive or interval).' },
  profile: { type: 'string', value: 'file', description: 'Write a CPU profile from the first mark to the second to this file.' },
});
if (v.impl === undefined || v.url === undefined) throw new Error('--impl and --url are required.');
const impl = choiceOption(v.impl, 'impl', IMPLS);
const url = v.url;
const batchMs = intOption(v['batch-ms'], 'batch-ms', 0);
const batchTiming = choiceOption(v['batch-timing'], 'batch-timing', ['adaptive', 'interval'] as const);

// A full collection before each memory figure (the worker is forked without --expose-gc).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memoryAfterGc(): ServerMemory {
  gc();
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

interface Running {
  port: number;
  connections(): number;
  close(): Promise<void>;
}

async function tickbus(): Promise<Running> {
  const logger = pino({ level: 'silent' });
  const bus = createBus({ redis: { url }, logger, sender: 'gateway' });
  bus.on('error', (error) => {
    throw error;
  });
  await bus.connect();
  const gw = new Gateway({ bus, logger, port: 0, batchMs, batchTiming });
  const { port } = await gw.listen();
  return {
    port,
    connections: () => gw.stats().connections,
    close: async () => {
      await gw.close();
      await bus.close();
    },
  };
}

async function socketio(): Promise<Running> {
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
  io.on('connection', (socket) => {
    socket.on('subscribe', (symbols: unknown, ack: unknown) => {
      if (Array.isArray(symbols)) void socket.join(symbols.filter((s): s is string => typeof s === 'string'));
      if (typeof ack === 'function') (ack as (reply: unknown) => void)({ ok: true });
    });
  });
  const redis = createClient({ url });
  redis.on('error', (error: Error) => {
    throw error;
  });
  await redis.connect();
  await redis.pSubscribe(`${CHANNEL_PREFIX}*`, (message, channel) => {
    io.to(channel.slice(CHANNEL_PREFIX.length)).emit('update', JSON.parse(message) as unknown);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as AddressInfo).port,
    connections: () => io.engine.clientsCount,
    close: async () => {
      await io.close();
      await redis.close();
    },
  };
}

/**
 * The floor: a bare `ws` server doing only what any fan-out must (the tickbus client's
 * protocol, the least of it): a `subscribe` joins rooms and is answered `subscribed` a
 * symbol; each Redis message is parsed once, its frame built once and sent as the same
 * buffer to every member of the room. No validation, limits, batching, resume or metrics:
 * what a connection and a delivery cost `ws` and node-redis themselves.
 */
async function bareWs(): Promise<Running> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, path: '/ws', perMessageDeflate: false, clientTracking: false });
  const rooms = new Map<string, Set<WebSocket>>();
  let connections = 0;
  wss.on('connection', (ws) => {
    connections++;
    const mine: string[] = [];
    ws.on('message', (raw: Buffer) => {
      const request = JSON.parse(raw.toString('utf8')) as { op?: string; symbols?: unknown };
      if (request.op !== 'subscribe' || !Array.isArray(request.symbols)) return;
      for (const symbol of request.symbols) {
        if (typeof symbol !== 'string') continue;
        let room = rooms.get(symbol);
        if (!room) rooms.set(symbol, (room = new Set()));
        room.add(ws);
        mine.push(symbol);
        ws.send(JSON.stringify({ type: 'subscribed', key: symbol }));
      }
    });
    ws.on('close', () => {
      connections--;
      for (const symbol of mine) rooms.get(symbol)?.delete(ws);
    });
  });
  const redis = createClient({ url });
  redis.on('error', (error: Error) => {
    throw error;
  });
  await redis.connect();
  await redis.pSubscribe(`${CHANNEL_PREFIX}*`, (message, channel) => {
    const symbol = channel.slice(CHANNEL_PREFIX.length);
    const room = rooms.get(symbol);
    if (!room || room.size === 0) return;
    const { data } = JSON.parse(message) as { data: unknown };
    const frame = Buffer.from(`{"type":"batch","updates":[{"symbol":${JSON.stringify(symbol)},"data":${JSON.stringify(data)}}]}`);
    for (const ws of room) ws.send(frame);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as AddressInfo).port,
    connections: () => connections,
    close: async () => {
      await new Promise((resolve) => wss.close(resolve));
      http.closeAllConnections();
      await redis.close();
    },
  };
}

const starting = impl === 'tickbus' ? tickbus() : impl === 'socketio' ? socketio() : bareWs();
/** While profiling: stops the profiler and writes the profile. */
let profiling: (() => Promise<void>) | undefined;
let marks = 0;
const send: (message: ServerEvent) => void = serveParent<ServerCommand, ServerEvent>(
  async (command): Promise<void> => {
    const server = await starting;
    if (command.type === 'memory') return send({ type: 'memory', ...memoryAfterGc() });
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    send({ type: 'marked', at: epochMs(), cpuMicros: cpu.user + cpu.system, rss: mem.rss, heapUsed: mem.heapUsed, maxRss: process.resourceUsage().maxRSS * 1024, connections: server.connections() });
    // The measured window, between the first mark and the second.
    if (v.profile !== undefined && ++marks === 1) profiling = await startCpuProfile(v.profile);
    else await profiling?.();
  },
  async () => (await starting).close(),
);
const server = await starting;
send({ type: 'ready', port: server.port, ...memoryAfterGc() });
