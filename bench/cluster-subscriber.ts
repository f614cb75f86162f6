// The subscriber worker of bench/cluster.ts: a tickbus bus on the cluster with one exact
// subscription per ticker of its share (`bus.subscribe(TickerUpdates.of({ ticker }), ...)`;
// on a cluster TickerUpdates is sharded, so each is an SSUBSCRIBE on the shard that owns the
// ticker's slot). Counts the updates its handlers get, checks each ticker's sequence numbers
// (`volume`), keeps latencies (the publisher's send time rides in `timestamp`) while asked
// to, and reports its counters on `mark` and what is missing on `check`.
import { pino } from 'pino';
import { TickerUpdates, createBus } from './lib/tickbus.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { makeMicroIsoReader, parseWorkerConfig, type SubscriberCommand, type SubscriberEvent } from './cluster-common.ts';

const cfg = parseWorkerConfig('subscriber');
const readIso = makeMicroIsoReader();

const received = new Map<string, number>(cfg.tickers.map((t) => [t, 0]));
/** The last sequence number per ticker (-1: none yet). */
const last = new Map<string, number>(cfg.tickers.map((t) => [t, -1]));
let total = 0;
let outOfOrder = 0;
let replayed = 0;
let errors = 0;
let disconnects = 0;
let firstError: string | undefined;
let sampling = false;
let samples = new Float64Array(1 << 16);
let sampled = 0;

const fail = (what: string) => {
  errors++;
  firstError ??= what;
};

const bus = createBus({ redis: { url: cfg.url }, logger: pino({ level: 'silent' }), sender: 'bench-subscriber' });
bus.on('error', (error) => fail(error.message));
bus.on('disconnected', (role, cause) => {
  disconnects++;
  fail(`${role} disconnected: ${cause.message}`);
});

const started = performance.now();
for (const ticker of cfg.tickers) {
  await bus.subscribe(TickerUpdates.of({ ticker }), (data, context) => {
    const now = epochMs();
    if (data.type !== 'price' || data.symbol !== ticker || data.volume === undefined) return fail(`unexpected update on ${context.channel}`);
    if (context.replayed) replayed++;
    total++;
    received.set(ticker, (received.get(ticker) as number) + 1);
    const seq = data.volume;
    if (seq !== (last.get(ticker) as number) + 1) outOfOrder++;
    last.set(ticker, seq);
    if (sampling) {
      if (sampled === samples.length) {
        const grown = new Float64Array(samples.length * 2);
        grown.set(samples);
        samples = grown;
      }
      samples[sampled++] = now - readIso(data.timestamp);
    }
  });
}
const subscribeMs = performance.now() - started;

async function check(expected: Record<string, number>, waitMs: number): Promise<SubscriberEvent> {
  const done = () => cfg.tickers.every((t) => (received.get(t) as number) >= (expected[t] ?? 0));
  const deadline = Date.now() + waitMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  let missing = 0;
  let extra = 0;
  for (const t of cfg.tickers) {
    const diff = (received.get(t) as number) - (expected[t] ?? 0);
    if (diff < 0) missing -= diff;
    else extra += diff;
  }
  return { type: 'checked', received: total, missing, extra, outOfOrder, replayed, errors, firstError, disconnects };
}

const send: (message: SubscriberEvent) => void = serveParent<SubscriberCommand, SubscriberEvent>(
  async (command): Promise<void> => {
    switch (command.type) {
      case 'mark': {
        const cpu = process.cpuUsage();
        return send({ type: 'marked', at: epochMs(), count: total, cpuMicros: cpu.user + cpu.system });
      }
      case 'sample':
        if (command.on) {
          sampled = 0;
          sampling = true;
          return;
        }
        sampling = false;
        return send({ type: 'samples', samples: samples.slice(0, sampled) });
      case 'check':
        return send(await check(command.expected, command.waitMs));
    }
  },
  () => bus.close(),
);
send({ type: 'ready', subscribeMs });
