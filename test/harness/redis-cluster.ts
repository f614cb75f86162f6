// A private Redis Cluster for tests: masters and replicas as local redis-server processes,
// each on free ports in its own temporary directory, created with redis-cli --cluster
// create and only handed over once every node agrees on a healthy topology. It can kill a
// master (to measure fail-over), restart a node, and move a slot. A missing redis-server
// or redis-cli is a hard failure, never a skip.
import calculateSlot from 'cluster-key-slot';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answersPing, freePort } from '../../src/runtime/backend.ts';

export interface ClusterNode {
  readonly port: number;
  /** CLUSTER MYID: kept across restarts, since it lives in the node's nodes.conf. */
  readonly id: string;
  readonly dir: string;
  readonly url: string;
  readonly alive: boolean;
  role(): Promise<'master' | 'replica'>;
  /** Runs one command through redis-cli (no -c: redirections come back as text). */
  cli(...args: string[]): string;
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[];
  /** 'redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...': the masters at start. */
  readonly url: string;
  /** ['redis://127.0.0.1:p1', ...]: the masters at start, as seed nodes. */
  readonly rootNodes: readonly string[];
  masters(): Promise<ClusterNode[]>;
  slotOf(keyOrChannel: string): number;
  masterOf(keyOrChannel: string): Promise<ClusterNode>;
  /** SIGKILLs a master and resolves once a replica took over and the cluster is healthy again. */
  killMaster(node: ClusterNode): Promise<{ recoveredMs: number; promoted: ClusterNode }>;
  /** Restarts a killed node on its port and directory; it rejoins from its nodes.conf. */
  restart(node: ClusterNode): Promise<void>;
  /** Moves one slot and its keys to another master, as redis-cli --cluster reshard does. */
  migrateSlot(slot: number, to: ClusterNode): Promise<void>;
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every process (SIGTERM, then SIGKILL after 3 s) and removes the directories. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes', '--appendfsync', 'always']. */
  args?: string[];
}

const HOST = '127.0.0.1';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let binariesChecked = false;

function requireBinaries(): void {
  if (binariesChecked) return;
  for (const binary of ['redis-server', 'redis-cli']) {
    const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(
        `${binary} was not found on PATH. The cluster tests need it: install it (Debian: apt-get install redis-server), or run .ci/run, which installs it.`,
      );
    }
  }
  binariesChecked = true;
}

// --- A minimal RESP client: the health checks poll every node many times a second, and a
// socket is far cheaper than spawning redis-cli for each question.

type Reply = string | number | null | Error | Reply[];

function parseReply(buf: Buffer, at: number): [Reply, number] | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (buf[at]) {
    case 0x2b /* + */:
      return [line, next];
    case 0x2d /* - */:
      return [new Error(line), next];
    case 0x3a /* : */:
      return [Number(line), next];
    case 0x24 /* $ */: {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (buf.length < next + length + 2) return undefined;
      return [buf.toString('utf8', next, next + length), next + length + 2];
    }
    case 0x2a /* * */: {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return undefined;
        items.push(item[0]);
        pos = item[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`Unexpected RESP reply: ${buf.toString('utf8', at, eol)}`);
  }
}

/** Sends commands pipelined on one connection; error replies come back as Error values. */
function pipeline(port: number, commands: string[][], timeoutMs = 5000): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: HOST, port });
    let buf = Buffer.alloc(0);
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`Redis on port ${port} did not answer within ${timeoutMs} ms`)));
    sock.on('error', reject);
    sock.on('connect', () => {
      const parts = commands.map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
      sock.write(parts.join(''));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const replies: Reply[] = [];
      let pos = 0;
      while (replies.length < commands.length) {
        const parsed = parseReply(buf, pos);
        if (!parsed) return;
        replies.push(parsed[0]);
        pos = parsed[1];
      }
      sock.end();
      resolve(replies);
    });
  });
}

async function call(port: number, ...args: string[]): Promise<Reply> {
  const [reply] = await pipeline(port, [args]);
  if (reply instanceof Error) throw new Error(`${args.join(' ')} on port ${port}: ${reply.message}`);
  return reply ?? null;
}

/** Runs a program without blocking the event loop; kills it if it overruns. */
function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// --- Nodes

class Node implements ClusterNode {
  id = '';
  child: ChildProcess | undefined;
  private log = '';

  readonly port: number;
  readonly busPort: number;
  readonly dir: string;
  private readonly nodeTimeoutMs: number;
  private readonly args: string[];

  constructor(
    port: number,
    busPort: number,
    dir: string,
    nodeTimeoutMs: number,
    args: string[],
  ) {
    this.port = port;
    this.busPort = busPort;
    this.dir = dir;
    this.nodeTimeoutMs = nodeTimeoutMs;
    this.args = args;
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async role(): Promise<'master' | 'replica'> {
    const reply = await call(this.port, 'ROLE');
    return Array.isArray(reply) && reply[0] === 'master' ? 'master' : 'replica';
  }

  cli(...args: string[]): string {
    const out = spawnSync('redis-cli', ['-p', String(this.port), ...args], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${out.stderr}`);
    return out.stdout.trim();
  }

  async start(): Promise<void> {
    // An explicit cluster-port, because port + 10000 can be above 65535 or taken.
    const child = spawn(
      'redis-server',
      [
        '--port', String(this.port), '--cluster-port', String(this.busPort), '--bind', HOST, '--dir', this.dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(this.nodeTimeoutMs),
        // Any replica may fail over however long it was cut off; tests kill masters at will.
        '--cluster-replica-validity-factor', '0',
        // Diskless sync otherwise waits 5 s for more replicas before the first full sync.
        '--repl-diskless-sync-delay', '0',
        '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
        ...this.args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.log = '';
    // Only the tail is kept, to explain a node that would not start.
    const keep = (d: Buffer) => (this.log = (this.log + d.toString()).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await answersPing(HOST, this.port, 500))) {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with code ${child.exitCode} during start-up:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not answer PING within 10 s.`);
      await sleep(25);
    }
    // Another server that took the port meanwhile would answer PING just as well.
    if (!String(await call(this.port, 'INFO', 'server')).includes(`process_id:${child.pid}\r`)) {
      child.kill('SIGKILL');
      throw new Error(`Port ${this.port} is served by another process.`);
    }
    this.id = String(await call(this.port, 'CLUSTER', 'MYID'));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited(child);
    clearTimeout(timer);
  }
}

/** Starts a node on fresh ports, retrying when a port picked was taken before we bound it. */
async function launchNode(args: string[], nodeTimeoutMs: number, started: Node[]): Promise<Node> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let busPort = await freePort();
    while (busPort === port) busPort = await freePort();
    const node = new Node(port, busPort, mkdtempSync(join(tmpdir(), 'tickbus-cluster-')), nodeTimeoutMs, args);
    started.push(node);
    try {
      await node.start();
      return node;
    } catch (error) {
      node.child?.kill('SIGKILL');
      started.splice(started.indexOf(node), 1);
      rmSync(node.dir, { recursive: true, force: true });
      if (attempt >= 3) throw error;
    }
  }
}

// --- Topology

interface NodeLine {
  id: string;
  port: number;
  flags: Set<string>;
  masterId: string | undefined;
  link: string;
  slots: string[];
}

function parseNodes(text: string): NodeLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [id = '', addr = '', flags = '', master = '-', , , , link = '', ...slots] = l.trim().split(' ');
      return { id, port: Number(addr.split('@')[0]?.split(':').pop()), flags: new Set(flags.split(',')), masterId: master === '-' ? undefined : master, link, slots };
    });
}

const DOWN = ['fail', 'fail?', 'handshake', 'noaddr'];
const isDown = (line: NodeLine) => DOWN.some((f) => line.flags.has(f));

function ownsSlot(line: NodeLine, slot: number): boolean {
  return line.slots.some((range) => {
    if (range.startsWith('[')) return false;
    const [from, to = from] = range.split('-').map(Number);
    return from !== undefined && to !== undefined && slot >= from && slot <= to;
  });
}

/** Redis's key hash slot (hash tags included): the same function the transport routes by. */
export function keySlot(key: string): number {
  return calculateSlot(key);
}

export async function startCluster(options: ClusterOptions = {}): Promise<RedisCluster> {
  requireBinaries();
  const masterCount = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  if (masterCount < 3) throw new Error('redis-cli --cluster create needs at least 3 masters.');
  const nodes: Node[] = [];
  const killAll = () => nodes.forEach((n) => n.child?.kill('SIGKILL'));
  // Never leave a cluster behind if the test process dies first.
  process.once('exit', killAll);

  const live = () => nodes.filter((n) => n.alive);
  const byId = (id: string | undefined) => nodes.find((n) => n.id === id);
  const view = async (): Promise<NodeLine[]> => {
    const asker = live()[0];
    if (!asker) throw new Error('No cluster node is running.');
    return parseNodes(String(await call(asker.port, 'CLUSTER', 'NODES')));
  };
  const masters = async (): Promise<Node[]> => {
    const lines = await view();
    return nodes.filter((n) => n.alive && lines.some((l) => l.id === n.id && l.flags.has('master') && !isDown(l)));
  };
  const ownerOf = async (slot: number): Promise<Node> => {
    const line = (await view()).find((l) => l.flags.has('master') && ownsSlot(l, slot));
    const node = byId(line?.id);
    if (!node) throw new Error(`No known master serves slot ${slot}.`);
    return node;
  };

  let lastInfo = '';
  /** What keeps the cluster from being healthy, or undefined when nothing does. */
  const problem = async (replicasEach?: number): Promise<string | undefined> => {
    const up = live();
    let agreed: string | undefined;
    for (const node of up) {
      let replies: Reply[];
      try {
        replies = await pipeline(node.port, [['CLUSTER', 'INFO'], ['CLUSTER', 'NODES'], ['INFO', 'replication']], 2000);
      } catch (error) {
        return `port ${node.port}: ${(error as Error).message}`;
      }
      const [info, nodesText, replication] = replies.map(String) as [string, string, string];
      lastInfo = `port ${node.port}:\n${info}`;
      if (!info.includes('cluster_state:ok')) return `port ${node.port} is not cluster_state:ok`;
      if (!info.includes('cluster_slots_assigned:16384') || !info.includes('cluster_slots_ok:16384')) return `port ${node.port} does not see all slots served`;
      const lines = parseNodes(nodesText);
      if (lines.some((l) => l.slots.some((s) => s.startsWith('[')))) return `port ${node.port} has a slot migration open`;
      for (const other of up) {
        const line = lines.find((l) => l.id === other.id);
        if (!line) return `port ${node.port} does not know port ${other.port}`;
        if (isDown(line) || line.link !== 'connected') return `port ${node.port} sees port ${other.port} as ${[...line.flags].join(',')} ${line.link}`;
      }
      if (lines.find((l) => l.flags.has('myself'))?.flags.has('slave') && !replication.includes('master_link_status:up')) {
        return `replica on port ${node.port} has no link to its master`;
      }
      // Every node must describe the same slot owners and the same replica links.
      const picture = lines
        .filter((l) => l.slots.length > 0 || (!isDown(l) && byId(l.id)?.alive))
        .map((l) => `${l.id} ${l.flags.has('master') ? 'master' : `of ${l.masterId}`} ${l.slots.join(' ')}`)
        .sort()
        .join('\n');
      if (agreed !== undefined && picture !== agreed) return `port ${node.port} disagrees about the topology`;
      agreed = picture;
      if (replicasEach !== undefined) {
        for (const master of lines.filter((l) => l.flags.has('master') && l.slots.length > 0)) {
          const count = lines.filter((l) => l.masterId === master.id && !isDown(l)).length;
          if (count < replicasEach) return `master on port ${master.port} has ${count} of ${replicasEach} replicas`;
        }
      }
    }
    const first = up[0];
    if (!first) return 'no node is running';
    // A second opinion from redis-cli's own checker, once our checks pass.
    const check = await run('redis-cli', ['--cluster', 'check', `${HOST}:${first.port}`], 10_000);
    if (check.code !== 0 || !check.output.includes('[OK] All 16384 slots covered')) return `redis-cli --cluster check failed:\n${check.output}`;
    return undefined;
  };

  const waitHealthy = async (timeoutMs = 30_000, replicasEach?: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reason = await problem(replicasEach);
      if (reason === undefined) return;
      if (Date.now() > deadline) throw new Error(`The Redis cluster was not healthy within ${timeoutMs} ms: ${reason}.\nLast CLUSTER INFO from ${lastInfo}`);
      await sleep(50);
    }
  };

  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const node of nodes) rmSync(node.dir, { recursive: true, force: true });
    process.off('exit', killAll);
  };

  try {
    const args = options.args ?? [];
    const started = await Promise.all(Array.from({ length: masterCount * (1 + replicas) }, () => launchNode(args, nodeTimeoutMs, nodes)));
    const created = await run(
      'redis-cli',
      ['--cluster', 'create', ...started.map((n) => `${HOST}:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      30_000,
    );
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed (exit ${created.code}):\n${created.output}`);
    await waitHealthy(30_000, replicas);
    const seeds = (await view())
      .filter((l) => l.flags.has('master') && l.slots.length > 0)
      .map((l) => byId(l.id))
      .filter((n): n is Node => n !== undefined)
      .sort((a, b) => started.indexOf(a) - started.indexOf(b));

    return {
      nodes: started,
      url: `redis-cluster://${seeds.map((n) => `${HOST}:${n.port}`).join(',')}`,
      rootNodes: seeds.map((n) => n.url),
      masters,
      slotOf: keySlot,
      masterOf: (key) => ownerOf(keySlot(key)),
      async killMaster(node) {
        const target = node as Node;
        if (!target.alive || (await target.role()) !== 'master') throw new Error(`Port ${node.port} is not a live master.`);
        const candidates = (await view()).filter((l) => l.masterId === node.id && !isDown(l)).map((l) => byId(l.id));
        if (candidates.length === 0) throw new Error(`Master on port ${node.port} has no replica to promote.`);
        const killedAt = performance.now();
        target.child?.kill('SIGKILL');
        if (target.child) await exited(target.child);
        await waitHealthy();
        const recoveredMs = Math.round(performance.now() - killedAt);
        for (const candidate of candidates) {
          if (candidate?.alive && (await candidate.role()) === 'master') return { recoveredMs, promoted: candidate };
        }
        throw new Error(`No replica of port ${node.port} was promoted.`);
      },
      async restart(node) {
        const target = node as Node;
        if (target.alive) throw new Error(`Port ${node.port} is still running.`);
        await target.start();
        await waitHealthy();
      },
      async migrateSlot(slot, to) {
        const target = to as Node;
        const source = await ownerOf(slot);
        if (source === target) return;
        if (!target.alive || (await target.role()) !== 'master') throw new Error(`Port ${to.port} is not a live master.`);
        await call(target.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id);
        await call(source.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
        for (;;) {
          const keys = (await call(source.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100')) as string[];
          if (keys.length === 0) break;
          await call(source.port, 'MIGRATE', HOST, String(target.port), '', '0', '5000', 'KEYS', ...keys);
        }
        // The new owner first: it bumps its config epoch, so its claim wins over stale gossip.
        const others = (await masters()).filter((m) => m !== target && m !== source);
        for (const master of [target, source, ...others]) await call(master.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
        await waitHealthy();
      },
      waitHealthy: (timeoutMs) => waitHealthy(timeoutMs),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
