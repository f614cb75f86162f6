// What the gateway benchmark's parent (bench/gateway.ts) and its workers share: the two
// servers under test, the symbols and which client watches which, the price messages (the
// send time rides in `timestamp`, to the microsecond), and the IPC protocol of the server,
// client and publisher workers.

/**
 * tickbus: the gateway (src/gateway), clients on `ws`. socketio: a Socket.IO 4 server that
 * PSUBSCRIBEs to TICKER_UPDATES_* with node-redis and emits each message to the symbol's
 * room (the seeds' pattern), clients on socket.io-client over WebSocket only.
 */
/** ws: the floor, a bare `ws` server doing only the fan-out (see gateway-server.ts); run when asked for. */
export const IMPLS = ['tickbus', 'socketio', 'ws'] as const;
export type Impl = (typeof IMPLS)[number];
/** What `--impl all` runs: tickbus and its peer. */
export const PEERS: readonly Impl[] = ['tickbus', 'socketio'];

export const IMPL_NAMES: Record<Impl, string> = { tickbus: 'tickbus gateway', socketio: 'Socket.IO', ws: 'bare ws' };

/** The channel prefix tickbus publishes ticker updates on (TickerUpdates: TICKER_UPDATES_{ticker}). */
export const CHANNEL_PREFIX = 'TICKER_UPDATES_';

/** The symbols of a run: S000, S001, ... (valid tickers). */
export function symbolNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `S${String(i).padStart(3, '0')}`);
}

/**
 * The symbols client `index` watches: `perClient` consecutive ones, the next client
 * starting where this one ended. With clients a multiple of symbols/perClient every
 * symbol has the same number of watchers: clients x perClient / symbols.
 */
export function clientSymbols(index: number, perClient: number, symbols: readonly string[]): string[] {
  return Array.from({ length: perClient }, (_, j) => symbols[(index * perClient + j) % symbols.length] as string);
}

/** How many clients of 0..clients-1 watch each symbol, by symbol index. */
export function watchersPerSymbol(clients: number, perClient: number, symbolCount: number): number[] {
  const counts = new Array<number>(symbolCount).fill(0);
  for (let i = 0; i < clients; i++) for (let j = 0; j < perClient; j++) counts[(i * perClient + j) % symbolCount]! += 1;
  return counts;
}

// ---- the messages --------------------------------------------------------------------

/**
 * An epoch time in ms (sub-millisecond) as ISO-8601 with microseconds
 * (`2026-11-22T02:57:05.123456Z`): TickerUpdates' `timestamp` accepts any number of
 * fractional digits and both servers pass it on unchanged, while a `sent_at` field would be
 * stripped by the schema.
 */
export function microIso(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.floor((ms - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(micros).padStart(3, '0')}Z`;
}

/** Reads microIso back (epoch ms); caches the whole-second part, which rarely changes. */
export function makeMicroIsoReader(): (iso: string) => number {
  let prefix = '';
  let base = 0;
  return (iso) => {
    const head = iso.slice(0, 19);
    if (head !== prefix) {
      prefix = head;
      base = Date.parse(`${head}Z`);
    }
    // ".123456Z": the fraction of the second, in ms.
    return base + Number(iso.slice(20, iso.length - 1).padEnd(6, '0')) / 1000;
  };
}

/** The i-th price of a run: the symbols in turn; `volume` is i, so a client can spot a gap. */
export function priceMessage(i: number, symbols: readonly string[], now: number): { type: 'price'; timestamp: string; price: number; volume: number; symbol: string } {
  return { type: 'price', timestamp: microIso(now), price: 100 + (i % 1000) / 100, volume: i, symbol: symbols[i % symbols.length] as string };
}

// ---- IPC -----------------------------------------------------------------------------

/** The server worker's state at a moment: CPU since it started, memory, connections. */
export interface ServerMark {
  type: 'marked';
  at: number;
  /** process.cpuUsage() user + system since the process started, µs. */
  cpuMicros: number;
  rss: number;
  heapUsed: number;
  /** Peak RSS of the process so far (resourceUsage().maxRSS), bytes. */
  maxRss: number;
  connections: number;
}

/** The server's memory right after a full garbage collection, bytes. */
export interface ServerMemory {
  rss: number;
  heapUsed: number;
  /** Memory outside the JS heap that V8 knows of (Buffers and such). */
  external: number;
}

/** `mark`: the figures now (the window's ends); `memory`: collect garbage, then measure (after the window). */
export type ServerCommand = { type: 'mark' } | { type: 'memory' };
export type ServerEvent = ({ type: 'ready'; port: number } & ServerMemory) | ServerMark | ({ type: 'memory' } & ServerMemory);

/** The publisher worker's messages (bench/lib/paced-publisher.ts). */
export type { PacedCommand as PublisherCommand, PacedEvent as PublisherEvent } from './lib/paced-publisher.ts';

export type ClientsCommand =
  /** Start counting (and keep every `sampleEvery`-th latency). */
  | { type: 'begin'; sampleEvery: number }
  /** Stop counting and report. */
  | { type: 'end' };

export interface ClientsResult {
  type: 'result';
  /** Updates received between begin and end. */
  deliveries: number;
  /** WebSocket frames (tickbus batches, Socket.IO packets) carrying them. */
  frames: number;
  /** begin to end on this process's clock, ms. */
  windowMs: number;
  /** Updates a client never got: gaps in a symbol's sequence (volume), in the window. */
  lost: number;
  /** Updates older than one already received (never expected). */
  outOfOrder: number;
  /** Connections that closed after the clients were ready. */
  disconnects: number;
  /** Error messages, notices (a slow-consumer notice) and socket errors. */
  errors: number;
  firstError: string | undefined;
  /** This process's CPU over the window, µs. */
  cpuMicros: number;
  /** Every sampleEvery-th update's latency (receive time minus the publisher's send time), ms. */
  samples: Float64Array;
}

export type ClientsEvent =
  | {
      type: 'ready';
      /** Clients connected and subscribed. */
      connected: number;
      /** First connect to the last subscription confirmed, ms. */
      connectMs: number;
      rss: number;
    }
  | { type: 'begun' }
  | ClientsResult;
