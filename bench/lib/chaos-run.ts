// The chaos run: the system as users run it, with its processes killed under it.
//
// One redis-server with AOF; two brokers and two gateways (`tickbus broker` / `tickbus
// gateway`, as processes); bots with leases placing orders on the simulated venue; browser-
// like WebSocket clients on both gateways that resume with `since`; a durable consumer group
// of two; a fallback-buffered publisher feeding it. Every few seconds one of Redis, a broker,
// a gateway or a consumer is killed with SIGKILL and started again. Meanwhile a recorder
// reads every ticker's stream (the ground truth of what was published), and at the end the
// evidence is compared: the publisher's receipts against what the consumers handled, each
// client's positions against the streams, the orders' events at their stream positions.
// Any process that exits without the loop having killed it is a crash.
//
// Everything is bounded (run time, kills, restarts, every wait), on loopback, and stopped
// on the way out, on failure, on SIGINT/SIGTERM, and by a watchdog should this process be
// killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { compareStreamIds } from '../../src/core/stream-id.ts';
import { freePort } from '../../src/runtime/backend.ts';
import { TICKBUS_BIN } from '../../test/harness/cli.ts';
import { startRedis, type RedisServer } from '../../test/harness/redis-server.ts';
import { CHAOS_GROUP, CHAOS_QUEUE, CHAOS_TICKERS, GOT_LINE, PUB_LINE, seededRandom, type BotsResult, type ClientsResult } from '../chaos-common.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const CONSUMER_SCRIPT = here('../../test/fixtures/durable-consumer.ts');
const PUBLISHER_SCRIPT = here('../chaos-publisher.ts');
const BOTS_SCRIPT = here('../chaos-bots.ts');
const CLIENTS_SCRIPT = here('../chaos-clients.ts');

export interface ChaosOptions {
  /** How long processes are killed (then everything settles, drains and is checked). */
  seconds: number;
  /** Seeds the choice of victims and the pauses: the same seed, the same kills. */
  seed: number;
  /** Pause between kills, ms, drawn in [min, max]. @default [3000, 6000] */
  killEveryMs?: [number, number];
  /** How long a victim stays down, ms, drawn in [min, max]. @default [200, 1500] */
  downMs?: [number, number];
  /** How likely a kill is Redis's; the rest is shared evenly by brokers, gateways and consumers. @default 0.25 */
  redisShare?: number;
  /** Browser-like clients. @default 4 */
  clients?: number;
  /** Durable messages a second. @default 100 */
  publishPerSecond?: number;
  /** Simulated trades a second per ticker (each broker's --rate). @default 5 */
  tradesPerSecond?: number;
  /** One order every so many ms (over all bots). @default 1500 */
  orderEveryMs?: number;
  /** Where each process's log goes (one file per role). @default a temporary directory, removed when the run is clean */
  logDir?: string;
  /** Progress lines. @default none */
  log?: (line: string) => void;
}

export type Role = 'redis' | 'broker-a' | 'broker-b' | 'gateway-a' | 'gateway-b' | 'consumer-1' | 'consumer-2' | 'publisher' | 'bots' | 'clients';
/** What the loop kills: Redis (redisShare), or a kind at random, then one of its processes. */
const OTHER_VICTIMS: ReadonlyArray<readonly Role[]> = [['broker-a', 'broker-b'], ['gateway-a', 'gateway-b'], ['consumer-1', 'consumer-2']];

export interface Crash {
  role: Role;
  atS: number;
  code: number | null;
  signal: string | null;
  /** The last lines it wrote on stderr. */
  stderr: string[];
}

export interface ChaosReport {
  settings: Required<Omit<ChaosOptions, 'log' | 'logDir'>> & { logDir: string };
  durationS: number;
  kills: Array<{ role: Role; atS: number; downMs: number; readyMs: number | null }>;
  killsByRole: Partial<Record<Role, number>>;
  /** Processes that exited without being killed by the loop (or failed to stop cleanly when asked). */
  crashes: Crash[];
  /** Processes asked to stop (SIGTERM) at the end that exited with a code other than 0, or had to be killed. */
  uncleanStops: Array<{ role: Role; code: number | null; signal: string | null; stderr: string[] }>;
  /** Victims that did not come back within the restart deadline. */
  restartFailures: Array<{ role: Role; atS: number; error: string }>;
  /**
   * Starts a service refused as documented because Redis was down at that moment (exit 4,
   * one line): a supervisor starts it again, and so does the run. Not crashes.
   */
  refusedStarts: Array<{ role: Role; atS: number }>;
  durable: {
    /** Messages the publisher got a receipt for (sent or buffered). */
    accepted: number;
    dropped: number;
    /** Publishes that failed (the message never entered the buffer). */
    refused: number;
    handled: number;
    /** Accepted and never handled by either consumer. */
    lost: number;
    /** Of those, not even in the stream. */
    lostNotInStream: number;
    /** Handlings beyond the first of a message. */
    redone: number;
    /**
     * Each redone handling put down to the last kill before it (within 10 s): `redis`, the
     * consumer that redid it (its own restart: the documented bound is its batch, 100), the
     * other consumer (a claim), or `none`.
     */
    redoneAfter: Record<string, number>;
    /** Messages the stream holds more than once (the fallback buffer resent them). */
    streamDuplicates: number;
    pendingAtEnd: number;
    lostSample: number[];
  };
  history: {
    clients: number;
    /** Updates received by clients, over all symbols. */
    received: number;
    /** Entries the recorder read from the ticker streams. */
    published: number;
    gapsReported: number;
    gapsUnreported: number;
    /** Stream entries the clients missed, inside reported and unreported gaps. */
    missedReported: number;
    missedUnreported: number;
    duplicates: number;
    reorders: number;
    /** Positions a client got that the streams do not hold (history rewound, or forged). */
    unknownPositions: number;
    /** Times the recorder found the stream not continuing from the entry it last read. */
    recorderBreaks: number;
    /** A few unreported gaps, as evidence. */
    unreportedSample: Array<{ client: string; symbol: string; after: string; next: string | null; missed: number; markers: string[] }>;
  };
  orders: {
    placed: number;
    refused: number;
    filled: number;
    rejected: number;
    /** No final update by the end. */
    unanswered: number;
    /** With the broker that streamed the ticker just before the order was placed, and just after. */
    unansweredSample: Array<{ id: string; symbol: string; atS: number; events: string[]; streamedBy: string; thenBy: string }>;
    /** Orders the venue took more than once (two `new` or more fills than ordered, at distinct stream positions). */
    duplicated: number;
    /** The same venue event at two stream positions (published twice). */
    repeatedUpdates: number;
    duplicatedSample: string[];
  };
  /** Peak resident memory (VmHWM) per role, MiB, over all its incarnations. */
  peakRssMiB: Partial<Record<Role | 'harness', number>>;
  logDir: string;
}

/** A process of the run: started, watched, killed and started again. */
class Managed {
  readonly role: Role;
  child: ChildProcess | undefined;
  starts = 0;
  /** Set just before the loop (or the shutdown) signals it. */
  expectingExit = false;
  readonly tail: string[] = [];
  readonly #log: WriteStream;
  readonly #onLine: (line: string) => void;
  exited: Promise<void> = Promise.resolve();

  constructor(role: Role, logDir: string, onLine: (line: string) => void = () => undefined) {
    this.role = role;
    this.#log = createWriteStream(join(logDir, `${role}.log`), { flags: 'a' });
    this.#onLine = onLine;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Takes over a child (spawned here, or by the Redis harness) and watches it. */
  adopt(child: ChildProcess, onExit: (code: number | null, signal: string | null) => void): void {
    this.child = child;
    this.starts++;
    this.expectingExit = false;
    this.#log.write(`--- start #${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        this.#onLine(line);
      }
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      this.#log.write(d);
      err += d.toString();
      const lines = err.split('\n');
      err = lines.pop() ?? '';
      for (const l of lines) {
        this.tail.push(l.slice(0, 600));
        if (this.tail.length > 12) this.tail.shift();
      }
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#log.write(`--- exit code ${code} signal ${signal} at ${new Date().toISOString()}\n`);
        onExit(code, signal);
        resolve();
      });
    });
  }

  async signal(signal: NodeJS.Signals, graceMs = 5000): Promise<void> {
    if (!this.alive) return;
    this.expectingExit = true;
    this.child?.kill(signal);
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  close(): void {
    this.#log.end();
  }
}

/**
 * Kills the run's processes and removes its directories if this process dies first (even by
 * SIGKILL): a tiny child that acts when its IPC channel to us closes. `listFile` holds one
 * `pid <n>` or `dir <path>` a line.
 */
function startWatchdog(listFile: string): ChildProcess {
  const script = `const fs = require('node:fs'); const [listFile] = process.argv.slice(1);
process.on('disconnect', () => {
  let lines = [];
  try { lines = fs.readFileSync(listFile, 'utf8').split('\\n'); } catch {}
  for (const l of lines) if (l.startsWith('pid ')) try { process.kill(Number(l.slice(4)), 'SIGKILL'); } catch {}
  for (const l of lines) if (l.startsWith('dir ')) try { fs.rmSync(l.slice(4), { recursive: true, force: true }); } catch {}
  process.exit(0);
});`;
  const child = spawn(process.execPath, ['-e', script, listFile], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.unref();
  child.channel?.unref();
  return child;
}

function vmHwmKiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function httpAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(50);
  }
}

/** One ticker stream entry, as the recorder read it. */
export interface Entry {
  id: string;
  ms: number;
  /** The envelope's sender: which broker streamed it. */
  sender: string;
  /** An order update: the bot's client_order_id and the venue's own order id (one per order the venue took). */
  order?: { id: string; venueId: string; event: string; qty: number; filledQty: number };
}

/** Runs the chaos run and returns what it found. Never throws for an invariant: the report says. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const settings = {
    seconds: options.seconds,
    seed: options.seed,
    killEveryMs: options.killEveryMs ?? [3000, 6000],
    downMs: options.downMs ?? [200, 1500],
    redisShare: options.redisShare ?? 0.25,
    clients: options.clients ?? 4,
    publishPerSecond: options.publishPerSecond ?? 100,
    tradesPerSecond: options.tradesPerSecond ?? 5,
    orderEveryMs: options.orderEveryMs ?? 1500,
  } satisfies Required<Omit<ChaosOptions, 'log' | 'logDir'>>;
  const log = options.log ?? (() => undefined);
  const random = seededRandom(settings.seed);
  const between = ([lo, hi]: [number, number]) => Math.round(lo + random() * (hi - lo));

  const work = mkdtempSync(join(tmpdir(), 'tickbus-chaos-'));
  const logDir = options.logDir ?? join(work, 'logs');
  mkdirSync(logDir, { recursive: true });
  // The watchdog's list lives beside the work directory (which it removes).
  const listFile = `${work}.watch`;
  const dirs = [work];
  writeFileSync(listFile, `dir ${work}\n`);
  const watchdog = startWatchdog(listFile);
  const t0 = Date.now();
  const atS = () => Math.round((Date.now() - t0) / 100) / 10;

  const managed = new Map<Role, Managed>();
  const crashes: Crash[] = [];
  const restartFailures: ChaosReport['restartFailures'] = [];
  const refusedStarts: ChaosReport['refusedStarts'] = [];
  const uncleanStops: ChaosReport['uncleanStops'] = [];
  const kills: ChaosReport['kills'] = [];
  const peak: Partial<Record<Role | 'harness', number>> = {};
  let running = true; // false once the shutdown starts: exits after that are expected
  let redis: RedisServer | undefined;
  const pids = new Set<number>();
  const writeList = () => writeFileSync(listFile, [...[...pids].map((p) => `pid ${p}`), ...dirs.map((d) => `dir ${d}`), `dir ${listFile}`].join('\n'));
  const notePid = (pid: number | undefined) => {
    if (pid === undefined) return;
    pids.add(pid);
    writeList();
  };

  // Evidence gathered as the run goes.
  const receipts = new Map<number, string>();
  const handled = new Map<number, number>();
  const redoneAt: Array<{ role: Role; at: number }> = [];
  const consumerReady = new Map<Role, boolean>();

  // --- the processes -------------------------------------------------------------------
  const ports = {
    brokerA: await freePort(),
    brokerB: await freePort(),
    gatewayA: await freePort(),
    gatewayB: await freePort(),
  };
  let redisUrl = '';
  const env = { ...process.env, TICKBUS_LOG_LEVEL: 'warn' };

  const starters = new Map<Role, () => Promise<void>>();
  const onExit = (role: Role) => (code: number | null, signal: string | null) => {
    const m = managed.get(role);
    if (!m || m.expectingExit || !running) return;
    // Exit code 4 is a start refused because Redis is unreachable (a running service rides
    // a Redis outage out instead): what a supervisor restarts, not a crash.
    if (code === 4 && m.tail.some((line) => line.includes('is unreachable'))) {
      refusedStarts.push({ role, atS: atS() });
      log(`${atS()} s: ${role} refused to start (Redis unreachable); starting it again`);
    } else {
      crashes.push({ role, atS: atS(), code, signal, stderr: [...m.tail] });
      log(`${atS()} s: CRASH ${role} (code ${code}, signal ${signal}): ${m.tail.at(-1) ?? ''}`);
    }
    // Start it again after a second so the run goes on (bounded: 10 incarnations a role).
    if (m.starts < 10) {
      void sleep(1000).then(async () => {
        if (!running || m.alive) return;
        await restart(role).catch((error: unknown) => restartFailures.push({ role, atS: atS(), error: String(error) }));
      });
    }
  };
  const add = (role: Role, onLine?: (line: string) => void) => managed.set(role, new Managed(role, logDir, onLine));

  const spawnNode = (role: Role, args: string[]): void => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    notePid(child.pid);
    managed.get(role)?.adopt(child, onExit(role));
  };

  add('redis');
  starters.set('redis', async () => {
    if (!redis) {
      redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec'] });
      redisUrl = redis.url;
      dirs.push(redis.dir);
    } else {
      await redis.restart();
    }
    notePid(redis.process.pid);
    managed.get('redis')?.adopt(redis.process, onExit('redis'));
  });

  const broker = (role: Role, name: string, port: number) => {
    add(role);
    starters.set(role, async () => {
      spawnNode(role, [TICKBUS_BIN, 'broker', '--redis-url', redisUrl, '--feed', 'sim', '--rate', String(settings.tradesPerSecond), '--port', String(port), '--name', name, '--sender', name, '--failover-ms', '3000']);
      await until(() => httpAnswers(`http://127.0.0.1:${port}/health`), 30_000, `${role} health`);
    });
  };
  broker('broker-a', 'chaos-broker-a', ports.brokerA);
  broker('broker-b', 'chaos-broker-b', ports.brokerB);

  const gateway = (role: Role, port: number) => {
    add(role);
    starters.set(role, async () => {
      spawnNode(role, [TICKBUS_BIN, 'gateway', '--redis-url', redisUrl, '--port', String(port), '--batch-ms', '100']);
      await until(() => httpAnswers(`http://127.0.0.1:${port}/health`), 30_000, `${role} health`);
    });
  };
  gateway('gateway-a', ports.gatewayA);
  gateway('gateway-b', ports.gatewayB);

  for (const role of ['consumer-1', 'consumer-2'] as const) {
    add(role, (line) => {
      const m = GOT_LINE.exec(line);
      if (m) {
        const n = Number(m[1]);
        const copies = (handled.get(n) ?? 0) + 1;
        handled.set(n, copies);
        if (copies > 1) redoneAt.push({ role, at: Date.now() });
      }
      else if (line === 'ready') consumerReady.set(role, true);
    });
    starters.set(role, async () => {
      consumerReady.set(role, false);
      spawnNode(role, ['--import', 'tsx', CONSUMER_SCRIPT, redisUrl, CHAOS_QUEUE, CHAOS_GROUP, `chaos-${role}`]);
      await until(() => consumerReady.get(role) === true, 30_000, `${role} ready`);
    });
  }

  let publisherReady = false;
  add('publisher', (line) => {
    const m = PUB_LINE.exec(line);
    if (m) receipts.set(Number(m[1]), m[2] as string);
    else if (line === 'ready') publisherReady = true;
  });
  starters.set('publisher', async () => {
    spawnNode('publisher', ['--import', 'tsx', PUBLISHER_SCRIPT, redisUrl, join(work, 'publisher.journal'), String(settings.publishPerSecond)]);
    await until(() => publisherReady, 30_000, 'publisher ready');
  });

  const botsFile = join(work, 'bots.json');
  let botsReady = false;
  add('bots', (line) => void (line === 'ready' && (botsReady = true)));
  starters.set('bots', async () => {
    const bots = [
      { id: 'chaos-bot-1', tickers: [CHAOS_TICKERS[0], CHAOS_TICKERS[1]] },
      { id: 'chaos-bot-2', tickers: [CHAOS_TICKERS[2], CHAOS_TICKERS[3]] },
    ];
    spawnNode('bots', ['--import', 'tsx', BOTS_SCRIPT, redisUrl, botsFile, JSON.stringify(bots), String(settings.orderEveryMs)]);
    await until(() => botsReady, 30_000, 'bots ready');
  });

  const clientsFile = join(work, 'clients.json');
  let clientsReady = false;
  add('clients', (line) => void (line === 'ready' && (clientsReady = true)));
  starters.set('clients', async () => {
    const urls = [`ws://127.0.0.1:${ports.gatewayA}/ws`, `ws://127.0.0.1:${ports.gatewayB}/ws`];
    spawnNode('clients', ['--import', 'tsx', CLIENTS_SCRIPT, clientsFile, JSON.stringify(urls), String(settings.clients), JSON.stringify(CHAOS_TICKERS)]);
    await until(() => clientsReady, 30_000, 'clients ready');
  });

  /** Asks a process to stop and notes it when it does not stop cleanly. */
  async function stopRole(role: Role, graceMs: number): Promise<void> {
    const m = managed.get(role) as Managed;
    if (!m.alive) return;
    await m.signal('SIGTERM', graceMs);
    const code = m.child?.exitCode ?? null;
    // A process without a SIGTERM handler (the consumer fixture) dies of it: that is a clean stop.
    if (code !== 0 && m.child?.signalCode !== 'SIGTERM') uncleanStops.push({ role, code, signal: m.child?.signalCode ?? null, stderr: [...m.tail] });
  }

  const restarting = new Set<Role>();
  async function restart(role: Role): Promise<void> {
    if (restarting.has(role)) return;
    restarting.add(role);
    try {
      await starters.get(role)?.();
    } finally {
      restarting.delete(role);
    }
  }

  // --- the recorder: every ticker stream entry, in order ---------------------------------
  const entries = new Map<string, Entry[]>(CHAOS_TICKERS.map((t) => [t, []]));
  let recorderBreaks = 0;
  let recorder: ReturnType<typeof createClient> | undefined;
  let recording: Promise<void> | undefined;
  let recorderOn = true;
  async function recordOnce(): Promise<void> {
    if (!recorder) return;
    for (const ticker of CHAOS_TICKERS) {
      const list = entries.get(ticker) as Entry[];
      const last = list.at(-1)?.id;
      const reply = await recorder.sendCommand<Array<[string, string[]]>>(['XRANGE', `tickbus:{TICKER_UPDATES_${ticker}}:stream`, last ?? '-', '+', 'COUNT', '5000']);
      let fresh = reply;
      if (last !== undefined) {
        // Inclusive from the last entry read: it must still be there, first.
        if (reply[0]?.[0] === last) fresh = reply.slice(1);
        else {
          recorderBreaks++;
          log(`${atS()} s: recorder: ${ticker}'s stream no longer starts at ${last} (first now ${reply[0]?.[0] ?? 'none'})`);
          fresh = reply.filter(([id]) => compareStreamIds(id, last) > 0);
        }
      }
      for (const [id, fields] of fresh) {
        const entry: Entry = { id, ms: Number(id.slice(0, id.indexOf('-'))), sender: '?' };
        const payload = fields[fields.indexOf('payload') + 1];
        try {
          const envelope = JSON.parse(payload ?? '{}') as { sender?: string; data?: { type?: string; order_data?: Record<string, unknown> } };
          entry.sender = String(envelope.sender);
          const data = envelope.data;
          if (data?.type === 'order' && data.order_data) {
            const o = data.order_data;
            entry.order = { id: String(o.client_order_id), venueId: String(o.id), event: String(o.event), qty: Number(o.qty), filledQty: Number(o.filled_qty) };
          }
        } catch {
          // not ours to judge here: the clients' view counts
        }
        list.push(entry);
      }
    }
  }
  async function recordLoop(): Promise<void> {
    while (recorderOn) {
      try {
        await recordOnce();
      } catch {
        // Redis is down: the streams come back with it (AOF)
      }
      await sleep(250);
    }
  }

  // --- memory ------------------------------------------------------------------------------
  const sampleMemory = () => {
    for (const [role, m] of managed) {
      if (!m.alive) continue;
      const kib = vmHwmKiB(m.child?.pid);
      peak[role] = Math.max(peak[role] ?? 0, Math.round(kib / 1024));
    }
    peak.harness = Math.max(peak.harness ?? 0, Math.round(process.memoryUsage().rss / 1048576));
  };
  const memoryTimer = setInterval(sampleMemory, 1000);

  // --- clean-up, also on SIGINT/SIGTERM ------------------------------------------------------
  const killEverything = () => {
    running = false;
    for (const m of managed.values()) {
      m.expectingExit = true;
      if (m.alive) m.child?.kill('SIGKILL');
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log(`\n${signal}: killing the chaos run's processes.`);
    killEverything();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    rmSync(listFile, { force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const onExitHook = () => killEverything();
  process.once('exit', onExitHook);

  const readJson = <T>(file: string, fallback: T): T => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch {
      return fallback;
    }
  };

  let botsResult: BotsResult = { orders: [], refused: {}, prices: {}, errors: {} };
  let clientsResult: ClientsResult = { clients: [] };
  let streamCounts = new Map<number, number>();
  let pendingAtEnd = -1;
  let cutoffMs = 0;
  let clientsFrom = 0;
  try {
    // --- start-up, in the order users start things ------------------------------------------
    await restart('redis');
    log(`Redis (AOF) on ${redisUrl}; logs in ${logDir}`);
    recorder = createClient({ url: redisUrl, socket: { reconnectStrategy: () => 100, connectTimeout: 1000 } });
    recorder.on('error', () => undefined);
    await recorder.connect();
    await Promise.all([restart('broker-a'), restart('broker-b'), restart('gateway-a'), restart('gateway-b'), restart('consumer-1'), restart('consumer-2')]);
    await restart('publisher');
    await restart('bots');
    await restart('clients');
    clientsFrom = Date.now() + 3000;
    recording = recordLoop();
    log(`${atS()} s: all up; killing for ${settings.seconds} s (seed ${settings.seed})`);

    // --- the kills ------------------------------------------------------------------------------
    const runEnd = Date.now() + settings.seconds * 1000;
    for (let round = 0; round < 1000; round++) {
      const pause = between(settings.killEveryMs);
      if (Date.now() + pause >= runEnd) break;
      await sleep(pause);
      const kind = random() < settings.redisShare ? ['redis' as const] : (OTHER_VICTIMS[Math.floor(random() * OTHER_VICTIMS.length)] as readonly Role[]);
      const role = kind[Math.floor(random() * kind.length)] as Role;
      const downMs = between(settings.downMs);
      const m = managed.get(role) as Managed;
      if (restarting.has(role) || !m.alive) continue; // a crashed one being restarted
      const at = atS();
      if (role === 'redis') {
        m.expectingExit = true;
        await redis?.kill();
      } else {
        await m.signal('SIGKILL');
      }
      await sleep(downMs);
      const began = Date.now();
      let readyMs: number | null = null;
      try {
        await restart(role);
        readyMs = Date.now() - began;
      } catch (error) {
        restartFailures.push({ role, atS: atS(), error: String(error) });
      }
      kills.push({ role, atS: at, downMs, readyMs });
      log(`${at} s: killed ${role}, down ${downMs} ms, back in ${readyMs ?? '-'} ms`);
    }
    const remaining = runEnd - Date.now();
    if (remaining > 0) await sleep(remaining);

    // --- settle, drain, collect -----------------------------------------------------------------
    // Whatever crashed is started again before the settling begins.
    for (const [role, m] of managed) if (!m.alive && !restarting.has(role)) await restart(role).catch(() => undefined);
    await until(() => restarting.size === 0, 40_000, 'restarts to finish').catch(() => undefined);
    cutoffMs = Date.now();
    log(`${atS()} s: no more kills; settling`);
    await sleep(8000);

    running = false;
    // The publisher closes its bus: what is still buffered goes out first.
    await stopRole('publisher', 15_000);
    const accepted = [...receipts].filter(([, s]) => s === 'sent' || s === 'buffered').map(([n]) => n);
    await until(() => accepted.every((n) => handled.has(n)), 20_000, 'the consumers to drain').catch(() => undefined);
    await stopRole('bots', 15_000);
    await stopRole('clients', 10_000);
    botsResult = readJson(botsFile, botsResult);
    clientsResult = readJson(clientsFile, clientsResult);

    recorderOn = false;
    await recording;
    await recordOnce().catch(() => undefined);
    const stream = await recorder.sendCommand<Array<[string, string[]]>>(['XRANGE', `tickbus:{TEST_WORK_${CHAOS_QUEUE}}:stream`, '-', '+']);
    streamCounts = new Map();
    for (const [, fields] of stream) {
      const n = (JSON.parse(fields[fields.indexOf('payload') + 1] ?? '{}') as { data?: { n?: number } }).data?.n;
      if (typeof n === 'number') streamCounts.set(n, (streamCounts.get(n) ?? 0) + 1);
    }
    const pending = await recorder.sendCommand<[number, ...unknown[]]>(['XPENDING', `tickbus:{TEST_WORK_${CHAOS_QUEUE}}:stream`, CHAOS_GROUP]);
    pendingAtEnd = Number(pending[0]);
  } finally {
    running = false;
    recorderOn = false;
    clearInterval(memoryTimer);
    sampleMemory();
    // Stop what still runs: SIGTERM, and note any that does not stop cleanly.
    await Promise.all((['consumer-1', 'consumer-2', 'gateway-a', 'gateway-b', 'broker-a', 'broker-b', 'publisher', 'bots', 'clients'] as const).map((role) => stopRole(role, 5000)));
    await recorder?.close().catch(() => undefined);
    await redis?.stop();
    for (const m of managed.values()) m.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExitHook);
    watchdog.kill('SIGKILL');
    rmSync(listFile, { force: true });
  }

  // --- the verdict, from the evidence --------------------------------------------------------
  const report = analyse();
  const failed = report.durable.lost > 0 || report.crashes.length > 0 || report.history.gapsUnreported > 0 || report.orders.duplicated > 0 || report.restartFailures.length > 0;
  // Logs are kept when something failed (or when asked for a directory); otherwise removed.
  if (failed && options.logDir === undefined) {
    const kept = join(tmpdir(), `tickbus-chaos-logs-${settings.seed}-${Date.now()}`);
    rmSync(kept, { recursive: true, force: true });
    mkdirSync(kept, { recursive: true });
    for (const role of managed.keys()) {
      try {
        writeFileSync(join(kept, `${role}.log`), readFileSync(join(logDir, `${role}.log`)));
      } catch {
        // no log
      }
    }
    report.logDir = kept;
  }
  rmSync(work, { recursive: true, force: true });
  if (!failed && options.logDir === undefined) report.logDir = '(removed: nothing failed)';
  return report;

  function redoCauses(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of redoneAt) {
      const atSec = (r.at - t0) / 1000;
      const last = kills.filter((k) => k.atS <= atSec && atSec - k.atS <= 10 && (k.role === 'redis' || k.role.startsWith('consumer'))).at(-1);
      const cause = last === undefined ? 'none' : last.role === 'redis' ? 'redis' : last.role === r.role ? 'own restart' : 'other consumer';
      out[cause] = (out[cause] ?? 0) + 1;
    }
    return out;
  }

  function analyse(): ChaosReport {
    // Durable: every accepted message handled; copies beyond the first are redone work.
    const accepted = [...receipts].filter(([, s]) => s === 'sent' || s === 'buffered').map(([n]) => n);
    const lost = accepted.filter((n) => !handled.has(n)).sort((a, b) => a - b);
    let redone = 0;
    for (const c of handled.values()) redone += c - 1;
    let streamDuplicates = 0;
    for (const c of streamCounts.values()) streamDuplicates += c - 1;
    const durable: ChaosReport['durable'] = {
      accepted: accepted.length,
      dropped: [...receipts.values()].filter((s) => s === 'dropped').length,
      refused: [...receipts.values()].filter((s) => s.startsWith('failed')).length,
      handled: handled.size,
      lost: lost.length,
      lostNotInStream: lost.filter((n) => !streamCounts.has(n)).length,
      redone,
      redoneAfter: redoCauses(),
      streamDuplicates,
      pendingAtEnd,
      lostSample: lost.slice(0, 10),
    };

    // History: each client's positions against the streams.
    const history = analyseHistory(entries, clientsResult, { clientsFrom, cutoffMs, recorderBreaks });

    // Orders: the bots' view, and the venue's own events in the streams.
    // An order the venue took twice has two venue order ids (a broker each); the same event
    // published twice (a resent batch) has one id at two positions: repeated, not duplicated.
    const venueIds = new Map<string, Set<string>>();
    let repeatedUpdates = 0;
    const seenEvents = new Set<string>();
    for (const list of entries.values()) {
      for (const e of list) {
        if (!e.order) continue;
        const set = venueIds.get(e.order.id) ?? new Set<string>();
        set.add(e.order.venueId);
        venueIds.set(e.order.id, set);
        const key = `${e.order.venueId}|${e.order.event}|${e.order.filledQty}`;
        if (seenEvents.has(key)) repeatedUpdates++;
        seenEvents.add(key);
      }
    }
    const duplicated = new Set<string>();
    for (const [id, set] of venueIds) if (set.size > 1) duplicated.add(id);
    for (const o of botsResult.orders) {
      if (new Set(o.events.filter((e) => e.event === 'new').map((e) => e.orderId)).size > 1) duplicated.add(o.clientOrderId);
    }
    const orders: ChaosReport['orders'] = {
      placed: botsResult.orders.length,
      refused: Object.values(botsResult.refused).reduce((a, b) => a + b, 0),
      filled: botsResult.orders.filter((o) => o.final === 'filled').length,
      rejected: botsResult.orders.filter((o) => o.final === 'rejected').length,
      unanswered: botsResult.orders.filter((o) => o.final === undefined).length,
      unansweredSample: botsResult.orders
        .filter((o) => o.final === undefined)
        .slice(0, 8)
        .map((o) => {
          const list = entries.get(o.symbol) ?? [];
          const after = list.findIndex((e) => e.ms >= o.placedAt);
          const before = after < 0 ? list.at(-1) : list[after - 1];
          return { id: o.clientOrderId, symbol: o.symbol, atS: Math.round((o.placedAt - t0) / 100) / 10, events: o.events.map((e) => e.event), streamedBy: before?.sender ?? '-', thenBy: list[after]?.sender ?? '-' };
        }),
      duplicated: duplicated.size,
      repeatedUpdates,
      duplicatedSample: [...duplicated].slice(0, 8).map((id) => `${id}: venue orders ${[...(venueIds.get(id) ?? [])].join(', ')}`),
    };

    const killsByRole: Partial<Record<Role, number>> = {};
    for (const k of kills) killsByRole[k.role] = (killsByRole[k.role] ?? 0) + 1;
    return {
      settings: { ...settings, logDir },
      durationS: atS(),
      kills,
      killsByRole,
      crashes,
      uncleanStops,
      restartFailures,
      refusedStarts,
      durable,
      history,
      orders,
      peakRssMiB: peak,
      logDir,
    };
  }
}

/**
 * Judges what the browser-like clients saw against the streams (`entries`, as the recorder
 * read them): a client that got position b after a, with entries between them it never got,
 * had a gap; the gap was reported if the gateway told it so in between (a snapshot, a resume
 * answered `snapshot` or with `gap`, a notice of dropped updates or of a room it missed). A position seen twice is a duplicate,
 * one below the highest seen a reorder. Whatever was published before `cutoffMs` must have
 * arrived by the end; a client with no update at all missed what came after `clientsFrom`.
 */
export function analyseHistory(
  entries: ReadonlyMap<string, readonly Entry[]>,
  clientsResult: ClientsResult,
  { clientsFrom, cutoffMs, recorderBreaks }: { clientsFrom: number; cutoffMs: number; recorderBreaks: number },
): ChaosReport['history'] {
  const history: ChaosReport['history'] = {
    clients: clientsResult.clients.length,
    received: 0,
    published: [...entries.values()].reduce((s, l) => s + l.length, 0),
    gapsReported: 0,
    gapsUnreported: 0,
    missedReported: 0,
    missedUnreported: 0,
    duplicates: 0,
    reorders: 0,
    unknownPositions: 0,
    recorderBreaks,
    unreportedSample: [],
  };
  const ids = new Map<string, string[]>([...entries].map(([t, l]) => [t, l.map((e) => e.id)]));
  const known = new Map<string, Set<string>>([...ids].map(([t, l]) => [t, new Set(l)]));
  /** Entries strictly after `a` and strictly before `b` (or up to the cut-off when b is null). */
  const missedBetween = (symbol: string, a: string | undefined, b: string | null): number => {
    const list = ids.get(symbol) ?? [];
    // No update yet: what was published once the clients had settled in counts.
    const from = a === undefined ? list.findIndex((id) => Number(id.split('-')[0]) >= clientsFrom) : upperBound(list, a);
    if (from < 0) return 0;
    let to: number;
    if (b !== null) to = lowerBound(list, b);
    else {
      to = from;
      while (to < list.length && Number((list[to] as string).split('-')[0]) < cutoffMs) to++;
    }
    return Math.max(0, to - from);
  };
  for (const client of clientsResult.clients) {
    for (const [symbol, logEntries] of Object.entries(client.symbols)) {
      const seen = new Set<string>();
      let high: string | undefined;
      let markers: string[] = [];
      const gap = (next: string | null) => {
        if (high === undefined && next !== null) return;
        const missed = missedBetween(symbol, high, next);
        if (missed === 0) return;
        // Told: a snapshot, a resume that says `gap`, a notice of dropped updates or of a room the gateway itself missed.
        const reported = markers.some((m) => m === '!snapshot' || m.startsWith('!sub:snapshot') || m.endsWith(':gap') || m.startsWith('!notice:TB_ERR_STREAM_TRIMMED:') || (m.startsWith('!notice:') && !m.endsWith(':0')));
        if (reported) {
          history.gapsReported++;
          history.missedReported += missed;
        } else {
          history.gapsUnreported++;
          history.missedUnreported += missed;
          if (history.unreportedSample.length < 8) history.unreportedSample.push({ client: client.id, symbol, after: high ?? '(none)', next, missed, markers: markers.slice(-6) });
        }
      };
      for (const item of logEntries) {
        if (item.startsWith('!') || item.startsWith('~')) {
          markers.push(item);
          continue;
        }
        history.received++;
        if (seen.has(item)) {
          history.duplicates++;
          continue;
        }
        seen.add(item);
        if (!known.get(symbol)?.has(item)) history.unknownPositions++;
        if (high !== undefined && compareStreamIds(item, high) < 0) {
          history.reorders++;
          continue;
        }
        gap(item);
        high = item;
        markers = [];
      }
      // Everything published before the cut-off must have reached the client by the end.
      gap(null);
    }
  }
  return history;
}

function lowerBound(list: readonly string[], id: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareStreamIds(list[mid] as string, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(list: readonly string[], id: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareStreamIds(list[mid] as string, id) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The report as the table the CLI prints (and docs/benchmarks.md shows). */
export function chaosTable(r: ChaosReport): string {
  const rows: Array<[string, string, string]> = [
    ['run', `${r.settings.seconds} s of kills, seed ${r.settings.seed}, ${r.kills.length} kills (Redis share ${r.settings.redisShare})`, ''],
    ['kills by target', Object.entries(r.killsByRole).map(([k, v]) => `${k} ${v}`).join(', ') || '-', ''],
    ['durable: accepted / handled', `${r.durable.accepted} / ${r.durable.handled}`, ''],
    ['durable: lost', `${r.durable.lost}${r.durable.lost ? ` (${r.durable.lostNotInStream} not in the stream)` : ''}`, '= 0'],
    ['durable: redone (handled again)', `${r.durable.redone} (after: ${Object.entries(r.durable.redoneAfter).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}; stream copies ${r.durable.streamDuplicates})`, ''],
    ['durable: pending at the end', String(r.durable.pendingAtEnd), ''],
    ['history: updates received', `${r.history.received} by ${r.history.clients} clients (${r.history.published} published)`, ''],
    ['history: gaps reported (missed)', `${r.history.gapsReported} (${r.history.missedReported})`, ''],
    ['history: gaps unreported (missed)', `${r.history.gapsUnreported} (${r.history.missedUnreported})`, '= 0'],
    ['history: duplicates / reorders', `${r.history.duplicates} / ${r.history.reorders}`, ''],
    ['history: unknown positions / recorder breaks', `${r.history.unknownPositions} / ${r.history.recorderBreaks}`, ''],
    ['orders: placed / filled / unanswered', `${r.orders.placed} / ${r.orders.filled} / ${r.orders.unanswered} (refused at publish ${r.orders.refused}, rejected ${r.orders.rejected})`, ''],
    ['orders: duplicated (updates repeated)', `${r.orders.duplicated} (${r.orders.repeatedUpdates})`, '= 0'],
    ['process crashes', `${r.crashes.length}${r.crashes.length ? ` (${r.crashes.map((c) => c.role).join(', ')})` : ''}`, '= 0'],
    ['restarts that failed', String(r.restartFailures.length), '= 0'],
    ['starts refused (Redis down), started again', String(r.refusedStarts.length), ''],
    ['unclean stops at the end', `${r.uncleanStops.length}${r.uncleanStops.length ? ` (${r.uncleanStops.map((c) => `${c.role} ${c.code ?? c.signal}`).join(', ')})` : ''}`, ''],
  ];
  const roles = Object.entries(r.peakRssMiB);
  for (let i = 0; i < roles.length; i += 4) {
    rows.push([i === 0 ? 'peak RSS, MiB' : '', roles.slice(i, i + 4).map(([k, v]) => `${k} ${v}`).join(', '), '']);
  }
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd()).join('\n');
}
