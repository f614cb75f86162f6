// The publisher worker of bench/cluster.ts: a tickbus bus on the cluster publishing price
// updates of its tickers in turn with `bus.publish(TickerUpdates.of({ ticker }), price)`, as
// the broker does: on a cluster each is part of a Lua script (XADD to the ticker's history,
// SPUBLISH) run on the shard that owns the ticker's slot, the publishes of one event-loop
// turn coalesced into one script per slot. On `start`, as fast as a window of publishes in
// flight allows (flood) or at a fixed rate in 1 ms ticks (paced); reports its counters on
// `mark` and, on `stop`, how many it published per ticker.
import { pino } from 'pino';
import { TickerUpdates, createBus, type PublishReceipt } from './lib/tickbus.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { Window } from './lib/window.ts';
import { parseWorkerConfig, priceUpdate, type PublisherCommand, type PublisherEvent } from './cluster-common.ts';

const cfg = parseWorkerConfig('publisher');
const refs = cfg.tickers.map((ticker) => TickerUpdates.of({ ticker }));
/** Publishes acknowledged per ticker: the next sequence number is the count sent so far. */
const sent = new Array<number>(cfg.tickers.length).fill(0);
const next = new Array<number>(cfg.tickers.length).fill(0);
/** Paced: publishes unanswered at most; a stalled cluster shows up as an error, not as memory. */
const MAX_IN_FLIGHT = 20_000;

const bus = createBus({ redis: { url: cfg.url }, logger: pino({ level: 'silent' }), sender: 'broker_service' });
let errors = 0;
let unheard = 0;
let firstError: string | undefined;
bus.on('error', (error) => {
  errors++;
  firstError ??= error.message;
});
await bus.connect();

let published = 0;
let running = false;
let stopped: Promise<void> = Promise.resolve();
let turn = 0;

/** Publishes the next update of the next ticker in turn; resolves when Redis answered. */
function publishNext(): Promise<void> {
  const t = turn;
  turn = turn + 1 === refs.length ? 0 : turn + 1;
  const seq = next[t]!++;
  return bus.publish(refs[t]!, priceUpdate(cfg.tickers[t]!, seq, epochMs())).then(
    (receipt: PublishReceipt) => {
      sent[t]!++;
      published++;
      if (receipt.receivers === 0) unheard++;
    },
    (error: unknown) => {
      errors++;
      firstError ??= error instanceof Error ? error.message : String(error);
    },
  );
}

async function flood(): Promise<void> {
  const window = new Window(cfg.window);
  while (running) {
    if (window.full) await window.slot();
    window.add(publishNext());
  }
  await window.drain();
}

async function paced(rate: number): Promise<void> {
  const window = new Window(MAX_IN_FLIGHT);
  const start = epochMs();
  const perMs = rate / 1000;
  let due = 0;
  while (running) {
    const now = Math.floor((epochMs() - start + 1) * perMs);
    for (; due < now && running; due++) {
      if (window.full) throw new Error(`${MAX_IN_FLIGHT} publishes unanswered: the cluster cannot keep up with ${rate}/s.`);
      window.add(publishNext());
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await window.drain();
}

const send: (message: PublisherEvent) => void = serveParent<PublisherCommand, PublisherEvent>(
  async (command): Promise<void> => {
    switch (command.type) {
      case 'start':
        running = true;
        stopped = command.mode === 'flood' ? flood() : paced(command.rate);
        return;
      case 'mark': {
        const cpu = process.cpuUsage();
        return send({ type: 'marked', at: epochMs(), count: published, cpuMicros: cpu.user + cpu.system });
      }
      case 'stop':
        running = false;
        await stopped;
        return send({ type: 'stopped', sent: [...sent], errors, unheard, firstError });
    }
  },
  () => bus.close(),
);
send({ type: 'ready' });
