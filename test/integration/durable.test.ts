// Durable channels on a real redis-server: consumer groups, acknowledgement after the
// handler, retries, the dead-letter stream, claiming from a consumer that died, and a
// publisher that keeps sending through a Redis crash.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { ConfigError, ErrorCode, createBus, deadLetterKey, defineChannel, streamKey, type BusError } from '../../src/index.ts';
import { startRedis } from '../harness/redis-server.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { CliProcess } from '../harness/cli.ts';
import { printFigures, useRedisBuses, type TestRedis } from '../harness/delivery.ts';
import { BACKENDS } from '../harness/backends.ts';
import { Work, WorkSchema, deliveryCatalog } from '../fixtures/delivery-channels.ts';

const CONSUMER_SCRIPT = fileURLToPath(new URL('../fixtures/durable-consumer.ts', import.meta.url));
const TALLY_SCRIPT = fileURLToPath(new URL('../fixtures/durable-tally.ts', import.meta.url));

/** Busy processes beside a test: the machine under load, where timing faults show. */
function burnCpu(count: number): ChildProcess[] {
  return Array.from({ length: count }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
}


for (const backend of BACKENDS) describe(`durable channels (${backend})`, () => {
  const redis = useRedisBuses([deliveryCatalog], backend);
  const bus = redis.bus.bind(redis);
  let server: TestRedis;
  before(() => {
    server = redis.server;
  });

  it('appends to a stream, hands each message to one member of the group, and acknowledges it after the handler', async () => {
    const pub = bus();
    const a = bus();
    const b = bus();
    const ref = Work.of({ queue: 'split' });
    const seen = new Inbox<{ n: number; who: string; id: string | undefined; position: string }>();
    const handler = (who: string) => (d: { n: number }, ctx: { id: string | undefined; position: string }) => seen.push({ n: d.n, who, id: ctx.id, position: ctx.position });
    await a.consume(ref, handler('a'), { group: 'g', consumer: 'a', batchSize: 5 });
    await b.consume(ref, handler('b'), { group: 'g', consumer: 'b', batchSize: 5 });
    const receipts = await Promise.all(Array.from({ length: 200 }, (_, n) => pub.publish(ref, { n })));
    assert.ok(receipts.every((r) => r.status === 'sent' && r.receivers === 0 && /^\d+-\d+$/.test(r.position ?? '')), 'each publish says where it was appended');
    await seen.waitFor(200);
    assert.deepEqual(seen.items.map((m) => m.n).sort((x, y) => x - y), Array.from({ length: 200 }, (_, n) => n), 'each message once in the group');
    assert.ok(new Set(seen.items.map((m) => m.who)).size === 2, 'both members took a share');
    assert.equal(new Set(seen.items.map((m) => m.id)).size, 200, 'every message carries its own id');
    assert.deepEqual(new Set(seen.items.map((m) => m.position)), new Set(receipts.map((r) => r.position)), 'the handler sees the position publish returned');
    await waitFor(() => server.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'), 'every message acknowledged');
  });

  it('behind the same subscribe(): each group gets every message, members of one group share them', async () => {
    const pub = bus({ sender: 'risk' });
    const risk1 = bus({ sender: 'risk' });
    const risk2 = bus({ sender: 'risk' });
    const audit = bus();
    const ref = Work.of({ queue: 'groups' });
    const riskSeen = new Inbox<number>();
    const auditSeen = new Inbox<number>();
    await risk1.subscribe(ref, (d) => riskSeen.push(d.n), { durable: { consumer: 'r1' } });
    await risk2.subscribe(ref, (d) => riskSeen.push(d.n), { durable: { consumer: 'r2' } });
    const auditSub = await audit.subscribe(ref, (d, ctx) => auditSeen.push(ctx.position ? d.n : -1), { group: 'audit' });
    for (let n = 0; n < 50; n++) await pub.publish(ref, { n });
    await riskSeen.waitFor(50);
    await auditSeen.waitFor(50);
    assert.deepEqual([...riskSeen.items].sort((a, b) => a - b), Array.from({ length: 50 }, (_, n) => n), 'the risk group (the sender name by default) had each once');
    assert.deepEqual(auditSeen.items, Array.from({ length: 50 }, (_, n) => n), 'the audit group had all of them, in order, with positions');
    assert.match(server.cli('XINFO', 'GROUPS', streamKey(ref.name)), /risk[\s\S]*audit|audit[\s\S]*risk/);
    await auditSub.unsubscribe();
    await pub.publish(ref, { n: 50 });
    await riskSeen.waitFor(51);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(auditSeen.items.length, 50, 'unsubscribed: the audit consumer stopped');
    await assert.rejects(audit.subscribe(Work, () => undefined), /subscribe to one channel of it/);
  });

  it('retries a failing handler with back-off, counting attempts in Redis, and acknowledges once it succeeds', async () => {
    const pub = bus();
    const sub = bus();
    const ref = Work.of({ queue: 'retry' });
    const attempts: number[] = [];
    const errors: BusError[] = [];
    const consumer = await sub.consume(
      ref,
      (_d, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 3) throw new Error(`transient ${ctx.attempt}`);
      },
      { group: 'g', retry: { baseMs: 20, maxMs: 50 } },
    );
    consumer.on('error', (e) => errors.push(e));
    await pub.publish(ref, { n: 1 });
    await waitFor(() => consumer.stats.handled === 1, 'the third attempt to succeed');
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.deepEqual(errors.map((e) => e.code), [ErrorCode.HandlerFailed, ErrorCode.HandlerFailed]);
    assert.equal(consumer.stats.retried, 2);
    assert.equal(server.cli('XLEN', deadLetterKey(ref.name)).trim(), '0');
    assert.ok(server.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'));
  });

  it('fault 4: a poison message lands in the dead-letter stream after its attempts, and the rest keep flowing', async () => {
    const pub = bus();
    const sub = bus();
    const ref = Work.of({ queue: 'poison' });
    const done = new Inbox<number>();
    const letters = new Inbox<{ position: string; attempts: number; code: string }>();
    const started = Date.now();
    const consumer = await sub.consume(
      ref,
      (d) => {
        if (d.poison) throw new Error('cannot price this order');
        done.push(d.n);
      },
      { group: 'g', maxAttempts: 3, retry: { baseMs: 20, maxMs: 40 } },
    );
    consumer.on('error', () => undefined);
    consumer.on('deadLettered', (l) => letters.push({ position: l.position, attempts: l.attempts, code: l.error.code }));
    const receipts = [];
    for (let n = 0; n < 100; n++) receipts.push(await pub.publish(ref, { n, poison: n === 10 }));
    await done.waitFor(99);
    await letters.waitFor(1);
    assert.deepEqual(done.items, Array.from({ length: 100 }, (_, n) => n).filter((n) => n !== 10), 'the others in order, not held up');
    assert.deepEqual(letters.items, [{ position: receipts[10]?.position, attempts: 3, code: ErrorCode.HandlerFailed }]);
    const dead = server.cli('XRANGE', deadLetterKey(ref.name), '-', '+');
    assert.match(dead, /cannot price this order/);
    assert.match(dead, /"poison":true/, 'the original payload is kept');
    await waitFor(() => server.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'), 'nothing left pending');
    printFigures('fault 4 (poison message)', { sent: 100, delivered: done.items.length, dead_lettered: letters.items.length, duplicates: done.items.length - new Set(done.items).size, lost: 99 - new Set(done.items).size, ms: Date.now() - started });
  });

  it('dead-letters at once what cannot be decoded or fails the schema, with its error code', async () => {
    const sub = bus();
    const ref = Work.of({ queue: 'garbage' });
    const letters = new Inbox<string>();
    const consumer = await sub.consume(ref, () => undefined, { group: 'g' });
    consumer.on('error', () => undefined);
    consumer.on('deadLettered', (l) => letters.push(l.error.code));
    const key = streamKey(ref.name);
    server.cli('XADD', key, '*', 'payload', 'not json');
    server.cli('XADD', key, '*', 'payload', JSON.stringify({ data: { n: 'x' }, timestamp: 't', sender: 's' }));
    server.cli('XADD', key, '*', 'other', 'field');
    await letters.waitFor(3);
    assert.deepEqual(letters.items, [ErrorCode.InvalidJson, ErrorCode.Validation, ErrorCode.InvalidEnvelope]);
    assert.equal(server.cli('XLEN', deadLetterKey(ref.name)).trim(), '3');
  });

  it('starts a new group at new messages, at the beginning, or after a given id', async () => {
    const pub = bus();
    const sub = bus();
    const ref = Work.of({ queue: 'start' });
    const first = await pub.publish(ref, { n: 0 });
    await pub.publish(ref, { n: 1 });
    const fromStart = new Inbox<number>();
    const fromNew = new Inbox<number>();
    const fromId = new Inbox<number>();
    await sub.consume(ref, (d) => fromStart.push(d.n), { group: 'from-start', start: 'beginning' });
    await sub.consume(ref, (d) => fromNew.push(d.n), { group: 'from-new' });
    await sub.consume(ref, (d) => fromId.push(d.n), { group: 'from-id', start: { after: first.position as string } });
    await pub.publish(ref, { n: 2 });
    await fromStart.waitFor(3);
    await fromNew.waitFor(1);
    await fromId.waitFor(2);
    assert.deepEqual(fromStart.items, [0, 1, 2]);
    assert.deepEqual(fromNew.items, [2]);
    assert.deepEqual(fromId.items, [1, 2]);
  });

  it('close() ends a blocked read at once and lets the handler at work finish and acknowledge', async () => {
    const pub = bus();
    const sub = bus();
    const ref = Work.of({ queue: 'close' });
    let release!: () => void;
    const working = new Promise<void>((r) => (release = r));
    const entered = new Inbox<number>();
    const consumer = await sub.consume(
      ref,
      async (d) => {
        entered.push(d.n);
        await working;
      },
      { group: 'g', blockMs: 60_000 },
    );
    await pub.publish(ref, { n: 1 });
    await entered.waitFor(1);
    const closing = consumer.close();
    setTimeout(release, 100);
    const t0 = Date.now();
    await closing;
    assert.ok(Date.now() - t0 < 2_000, `close() took ${Date.now() - t0} ms with a 60 s block`);
    assert.ok(server.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'), 'the finished message was acknowledged');

    // Idle: a consumer blocked on an empty stream closes at once.
    const idle = await sub.consume(ref, () => undefined, { group: 'idle', blockMs: 60_000 });
    await new Promise((r) => setTimeout(r, 50));
    const t1 = Date.now();
    await idle.close();
    assert.ok(Date.now() - t1 < 500, `idle close() took ${Date.now() - t1} ms`);
  });

  it('fault 3: a consumer killed in the middle of a handler loses its messages to another, which completes them', async () => {
    const pub = bus();
    const ref = Work.of({ queue: 'claim' });
    const victim = new CliProcess([], { TICKBUS_LOG_LEVEL: 'silent' }, [process.execPath, '--import', 'tsx', CONSUMER_SCRIPT, server.url, 'claim', 'g', 'victim', '5']);
    try {
      await waitFor(() => victim.stdout.includes('ready'), 'the victim consumer to start', 20_000);
      for (let n = 0; n < 20; n++) await pub.publish(ref, { n });
      await waitFor(() => victim.stdout.includes('got 5'), 'the victim to be stuck in its handler');
      victim.child.kill('SIGKILL');
      await victim.exited;
      const killedAt = Date.now();
      const pendingAtKill = Number(server.cli('XPENDING', streamKey(ref.name), 'g').split('\n')[0]);
      assert.ok(pendingAtKill >= 1, 'the victim held unacknowledged messages');
      const rescued = new Inbox<{ n: number; attempt: number }>();
      const rescuer = bus();
      await rescuer.consume(ref, (d, ctx) => rescued.push({ n: d.n, attempt: ctx.attempt }), { group: 'g', consumer: 'rescuer', claimIdleMs: 300, claimIntervalMs: 100, retry: { maxMs: 200 } });
      const victimDone = victim.stdout.split('\n').filter((l) => l.startsWith('got ')).map((l) => Number(l.slice(4)));
      await waitFor(() => new Set([...victimDone.filter((n) => n !== 5), ...rescued.items.map((m) => m.n)]).size === 20, 'every message completed by one of them', 15_000);
      const recoverMs = Date.now() - killedAt;
      assert.ok(rescued.items.some((m) => m.n === 5 && m.attempt === 2), 'the message the victim died on was claimed, as its second delivery');
      await waitFor(() => server.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'), 'nothing left pending');
      const all = [...victimDone.filter((n) => n !== 5), ...rescued.items.map((m) => m.n)];
      printFigures('fault 3 (consumer killed)', { sent: 20, pending_at_kill: pendingAtKill, claimed: rescued.items.length, delivered: all.length, duplicates: all.length - new Set(all).size, lost: 20 - new Set(all).size, recover_ms: recoverMs });
    } finally {
      victim.child.kill('SIGKILL');
    }
  });

  it('bounds the stream by length and by age', async () => {
    const pub = bus();
    const Aged = defineChannel({ name: 'TEST_AGED', schema: WorkSchema, durable: { maxAgeMs: 200 } });
    const batch = await Promise.all(Array.from({ length: 500 }, (_, n) => pub.publish(Aged, { n })));
    assert.equal(batch.length, 500);
    await new Promise((r) => setTimeout(r, 300));
    await pub.publish(Aged, { n: 500 });
    const aged = Number(server.cli('XLEN', streamKey('TEST_AGED')));
    assert.ok(aged < 200, `entries older than 200 ms were trimmed (whole nodes at a time), ${aged} left`);
    const Short = defineChannel({ name: 'TEST_SHORT_DURABLE', schema: WorkSchema, durable: { maxLen: 100 } });
    await Promise.all(Array.from({ length: 1_000 }, (_, n) => pub.publish(Short, { n })));
    const short = Number(server.cli('XLEN', streamKey('TEST_SHORT_DURABLE')));
    assert.ok(short >= 100 && short < 300, `about the newest 100 kept (MAXLEN ~), ${short} left`);
  });

  it('says so when a group fell so far behind that messages were trimmed before it read them', async () => {
    const pub = bus();
    const sub = bus();
    const Tight = defineChannel({ name: 'TEST_TIGHT', schema: WorkSchema, durable: { maxLen: 100 } });
    const first = await sub.consume(Tight, () => undefined, { group: 'slow' });
    await first.close(); // the group exists, nobody reads
    await Promise.all(Array.from({ length: 1_000 }, (_, n) => pub.publish(Tight, { n })));
    const errors = new Inbox<string>();
    const again = await sub.consume(Tight, () => undefined, { group: 'slow', claimIntervalMs: 50 });
    again.on('error', (e) => errors.push(e.code));
    const [code] = await errors.waitFor(1);
    assert.equal(code, ErrorCode.StreamTrimmed);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(errors.items.length, 1, 'one loss, reported once');
    // A group that starts now, from the beginning, lost nothing: what was trimmed was never its to read.
    const late = await sub.consume(Tight, () => undefined, { group: 'late', start: 'beginning', claimIntervalMs: 50 });
    const lateErrors: string[] = [];
    late.on('error', (e) => lateErrors.push(e.code));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(lateErrors, []);
  });

  it('refuses a durable channel on the in-memory transport, and subscribe-style use of a template', async () => {
    const mem = createBus({ transport: 'memory', catalogs: [deliveryCatalog], logger: silentLogger });
    try {
      await assert.rejects(mem.consume(Work.of({ queue: 'x' }), () => undefined, { group: 'g' }), ConfigError);
      await assert.rejects(mem.publish(Work.of({ queue: 'x' }), { n: 1 }), ConfigError);
      await assert.rejects(bus().consume(Work, () => undefined, { group: 'g' }), /is a template/);
      await assert.rejects(bus().consume(Work.of({ queue: 'x' }), () => undefined, { group: 'bad group' }), ConfigError);
    } finally {
      await mem.close();
    }
  });
});

describe('durable channels through a Redis crash', () => {
  it('fault 1: Redis killed with SIGKILL mid-stream and restarted (AOF, fsync always): every message reaches the group at least once', async () => {
    const own = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const opts = { redis: { url: own.url }, catalogs: [deliveryCatalog], logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 } };
    const pub = createBus({ ...opts, fallback: true });
    const sub = createBus(opts);
    const N = 3_000;
    try {
      const ref = Work.of({ queue: 'crash' });
      const got = new Map<number, number>();
      await sub.consume(ref, (d) => void got.set(d.n, (got.get(d.n) ?? 0) + 1), { group: 'g', consumer: 'c1', blockMs: 200 });
      sub.on('error', () => undefined);
      await pub.connect();
      let buffered = 0;
      let restartedAt = 0;
      let killed: Promise<void> | undefined;
      const sends: Promise<unknown>[] = [];
      for (let n = 0; n < N; n++) {
        sends.push(pub.publish(ref, { n }).then((r) => void (r.status === 'buffered' && buffered++)));
        if (n % 50 === 49) await new Promise((r) => setTimeout(r, 2));
        if (n === Math.floor(N / 3)) {
          killed = own.kill().then(async () => {
            await new Promise((r) => setTimeout(r, 300));
            await own.restart();
            restartedAt = Date.now();
          });
        }
      }
      await Promise.all(sends);
      await killed;
      await waitFor(() => got.size === N, `all ${N} messages to be consumed (have ${got.size})`, 30_000);
      const recoverMs = Date.now() - restartedAt;
      const duplicates = [...got.values()].reduce((s, c) => s + c - 1, 0);
      printFigures('fault 1 (Redis SIGKILL, durable)', { sent: N, buffered_during_outage: buffered, delivered: N + duplicates, duplicates, lost: N - got.size, recover_ms: recoverMs });
      assert.equal(got.size, N, 'none lost');
      assert.ok(buffered > 0, 'some messages were buffered while Redis was down');
    } finally {
      await Promise.all([pub.close(), sub.close()]);
      await own.stop();
    }
  });
  it('fault 5: a group of two live consumers through Redis SIGKILLs and restarts (AOF), the machine loaded, redoes at most one batch and loses nothing', async () => {
    const own = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const burners = burnCpu(2);
    const pub = createBus({ redis: { url: own.url }, catalogs: [deliveryCatalog], logger: silentLogger, reconnect: { baseMs: 20, maxMs: 200 }, fallback: { maxMessages: 100_000 } });
    pub.on('error', () => undefined);
    // Real processes with the library's defaults (batches of 100, default reconnection).
    const consumers = ['c1', 'c2'].map((name) => new CliProcess([], { TICKBUS_LOG_LEVEL: 'silent' }, [process.execPath, '--import', 'tsx', TALLY_SCRIPT, own.url, 'restart', 'g', name]));
    const N = 20_000;
    const BATCH = 100;
    try {
      for (const c of consumers) await waitFor(() => c.stdout.includes('ready'), 'a consumer to start', 30_000);
      const ref = Work.of({ queue: 'restart' });
      await pub.connect();
      // Redis is killed and restarted RESTARTS times while the messages flow, each time down
      // long enough for the clients' back-off to grow (as a real restart takes), so that
      // each client's connections come back at different times.
      const RESTARTS = 4;
      const restarts = (async () => {
        for (let i = 0; i < RESTARTS; i++) {
          await new Promise((r) => setTimeout(r, 1_200));
          await own.kill();
          await new Promise((r) => setTimeout(r, 1_500));
          await own.restart();
        }
      })();
      const sends: Promise<unknown>[] = [];
      for (let n = 0; n < N; n++) {
        sends.push(pub.publish(ref, { n }));
        if (n % 100 === 99) await new Promise((r) => setTimeout(r, 60));
      }
      await Promise.all(sends);
      await restarts;
      /** Each consumer's lines: n, attempt, position, time. */
      const handled = () => consumers.map((c) => c.stdout.split('\n').filter((l) => l.startsWith('h ')).map((l) => l.split(' ')));
      await waitFor(() => new Set(handled().flat().map((h) => h[1])).size === N, 'every message handled', 90_000);
      await waitFor(() => own.cli('XPENDING', streamKey(ref.name), 'g').startsWith('0'), 'nothing left pending', 30_000);
      for (const c of consumers) {
        await c.stop();
        assert.ok(c.stdout.includes('closed'), 'the consumer closed cleanly');
      }
      const all = handled();
      const byPosition = new Map<string, number>();
      for (const h of all.flat()) byPosition.set(h[3] as string, (byPosition.get(h[3] as string) ?? 0) + 1);
      // Redone: one stream entry handled more than once (the publisher's own retries are other entries).
      const redone = [...byPosition.values()].reduce((s, c) => s + c - 1, 0);
      const firstAt = new Map<string, number>();
      const redoneAfterMs: number[] = [];
      for (const h of all.flat().sort((a, b) => Number(a[4]) - Number(b[4]))) {
        const first = firstAt.get(h[3] as string);
        if (first === undefined) firstAt.set(h[3] as string, Number(h[4]));
        else redoneAfterMs.push(Number(h[4]) - first);
      }
      redoneAfterMs.sort((a, b) => a - b);
      const published = [...byPosition.keys()].length;
      const distinct = new Set(all.flat().map((h) => h[1])).size;
      printFigures('fault 5 (4 Redis SIGKILLs under load, group of two)', {
        sent: N,
        entries: published,
        handled: all.flat().length,
        redone,
        // Later deliveries of entries never handled before (a read whose reply the crash cut off) are not redone work.
        later_deliveries: all.map((lines) => lines.filter((h) => h[2] !== '1').length).join('/'),
        redone_after_ms_median: redoneAfterMs[Math.floor(redoneAfterMs.length / 2)] ?? '-',
        lost: N - distinct,
      });
      assert.equal(distinct, N, 'none lost');
      assert.ok(all.every((lines) => lines.length > 0), 'both members took a share');
      assert.ok(redone <= BATCH, `no consumer died, so at most the batch in hand is redone; ${redone} were`);
    } finally {
      for (const c of consumers) c.child.kill('SIGKILL');
      for (const b of burners) b.kill('SIGKILL');
      await pub.close();
      await own.stop();
    }
  });
  it('a publisher with a fallback buffer and a consumer wait out a Redis still loading its data (LOADING), losing nothing', async () => {
    const own = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec', '--enable-debug-command', 'yes'] });
    // Enough data that loading it back after a crash takes a while, answering LOADING meanwhile.
    assert.equal(own.cli('DEBUG', 'POPULATE', '800000', 'filler', '64'), 'OK');
    own.cli('BGREWRITEAOF');
    await waitFor(() => /aof_rewrite_in_progress:0/.test(own.cli('INFO', 'persistence')) && /aof_rewrite_scheduled:0/.test(own.cli('INFO', 'persistence')), 'the AOF rewrite', 30_000);
    const opts = { redis: { url: own.url }, catalogs: [deliveryCatalog], logger: silentLogger, reconnect: { baseMs: 20, maxMs: 100 } };
    const pub = createBus({ ...opts, fallback: true });
    const sub = createBus(opts);
    sub.on('error', () => undefined);
    try {
      const ref = Work.of({ queue: 'loading' });
      const got = new Set<number>();
      await sub.consume(ref, (d) => void got.add(d.n), { group: 'g', consumer: 'c1', blockMs: 200 });
      await pub.connect();
      for (let n = 0; n < 100; n++) await pub.publish(ref, { n });
      await waitFor(() => got.size === 100, 'the first 100');
      await own.kill();
      for (let n = 100; n < 600; n++) assert.equal((await pub.publish(ref, { n })).status, 'buffered');
      const restarting = own.restart(); // the clients reconnect while it loads
      await waitFor(() => got.size === 600, `all 600 (have ${got.size})`, 60_000);
      await restarting;
      const loadingErrors = Number(/errorstat_LOADING:count=(\d+)/.exec(own.cli('INFO', 'errorstats'))?.[1] ?? 0);
      printFigures('Redis loading after a crash', { sent: 600, delivered: got.size, lost: 600 - got.size, loading_replies: loadingErrors });
    } finally {
      await Promise.all([pub.close(), sub.close()]);
      await own.stop();
    }
  });
});
