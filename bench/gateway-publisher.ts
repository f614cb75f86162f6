// The publisher worker of bench/gateway.ts: on `start`, publishes price updates for the
// run's symbols in turn at a fixed rate (1 ms ticks; a late tick sends what is due, so the
// rate holds) with `bus.publish(TickerUpdates.of({ ticker }), price)`, as the broker does:
// each is an XADD to the ticker's history and a PUBLISH, which both servers under test
// receive. Each price's `timestamp` is its send time to the microsecond, its `volume` its
// number in the run. Reports how many it published on `mark` and `stop`.
import { pino } from 'pino';
import { TickerUpdates, createBus } from '../src/index.ts';
import { intOption, parseCli, positiveOption } from './lib/cli.ts';
import { epochMs } from './lib/clock.ts';
import { serveParent } from './lib/proc.ts';
import { priceMessage, symbolNames, type PublisherCommand, type PublisherEvent } from './gateway-common.ts';

const v = parseCli('node --import tsx bench/gateway-publisher.ts [options]', 'The publisher worker of bench/gateway.ts (started by it).', {
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  rate: { type: 'string', value: 'R', default: '1000', description: 'Price updates per second, over all symbols.' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols.' },
});
if (v.url === undefined) throw new Error('--url is required.');
const rate = positiveOption(v.rate, 'rate');
const symbols = symbolNames(intOption(v.symbols, 'symbols'));
/** Publishes unanswered at most: a stalled Redis shows up as an error, not as memory. */
const MAX_IN_FLIGHT = 10_000;

const bus = createBus({ redis: { url: v.url }, logger: pino({ level: 'silent' }), sender: 'broker_service' });
bus.on('error', (error) => {
  throw error;
});
await bus.connect();

let published = 0;
let inFlight = 0;
let errors = 0;
let firstError: string | undefined;
let running = false;
let stopped: Promise<void> = Promise.resolve();

const settle = () => inFlight--;
const fail = (error: unknown) => {
  inFlight--;
  errors++;
  firstError ??= error instanceof Error ? error.message : String(error);
};

async function publishLoop(): Promise<void> {
  const start = epochMs();
  const perMs = rate / 1000;
  let sent = 0;
  while (running) {
    const due = Math.floor((epochMs() - start + 1) * perMs);
    while (sent < due && running) {
      if (inFlight >= MAX_IN_FLIGHT) throw new Error(`${MAX_IN_FLIGHT} publishes unanswered: Redis cannot keep up with ${rate}/s.`);
      const m = priceMessage(published, symbols, epochMs());
      inFlight++;
      bus.publish(TickerUpdates.of({ ticker: m.symbol }), m).then(settle, fail);
      published++;
      sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  while (inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 1));
}

const send: (message: PublisherEvent) => void = serveParent<PublisherCommand, PublisherEvent>(
  async (command): Promise<void> => {
    switch (command.type) {
      case 'start':
        running = true;
        stopped = publishLoop();
        return;
      case 'mark':
        return send({ type: 'marked', published, at: epochMs() });
      case 'stop':
        running = false;
        await stopped;
        return send({ type: 'stopped', published, errors, firstError });
    }
  },
  () => bus.close(),
);
send({ type: 'ready' });
