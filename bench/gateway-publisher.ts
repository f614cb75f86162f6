// The publisher worker of bench/gateway.ts: on `start`, publishes price updates for the
// run's symbols in turn at a fixed rate (1 ms ticks; a late tick sends what is due, so the
// rate holds) with `bus.publish(TickerUpdates.of({ ticker }), price)`, as the broker does:
// each is an XADD to the ticker's history and a PUBLISH, which both servers under test
// receive. Each price's `timestamp` is its send time to the microsecond, its `volume` its
// number in the run. Reports how many it published on `mark` and `stop`.
import { pino } from 'pino';
import { TickerUpdates, createBus } from './lib/tickbus.ts';
import { intOption, parseCli, positiveOption } from './lib/cli.ts';
import { servePacedPublisher } from './lib/paced-publisher.ts';
import { priceMessage, symbolNames } from './gateway-common.ts';

const v = parseCli('node --import tsx bench/gateway-publisher.ts [options]', 'The publisher worker of bench/gateway.ts (started by it).', {
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  rate: { type: 'string', value: 'R', default: '1000', description: 'Price updates per second, over all symbols.' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols.' },
});
if (v.url === undefined) throw new Error('--url is required.');
const rate = positiveOption(v.rate, 'rate');
const symbols = symbolNames(intOption(v.symbols, 'symbols'));

const bus = createBus({ redis: { url: v.url }, logger: pino({ level: 'silent' }), sender: 'broker_service' });
bus.on('error', (error) => {
  throw error;
});
await bus.connect();

servePacedPublisher(rate, (i, now) => {
  const m = priceMessage(i, symbols, now);
  return bus.publish(TickerUpdates.of({ ticker: m.symbol }), m);
}, () => bus.close());
