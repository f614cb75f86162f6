// The fan-out publisher of bench/tickstock.ts: on `start`, publishes --rate messages a second
// over the symbols in turn (1 ms ticks; a late tick sends what is due, so the rate holds),
// as the pattern library or the broker would: `--channel patterns` a seed-002 pattern
// message on tickstock:patterns:streaming (bare JSON), `--channel ticker` a price on
// TICKER_UPDATES_{symbol} (the plain symbol room). Reports its count on `mark` and `stop`.
import { pino } from 'pino';
import { TickerUpdates, createBus, tickstock } from './lib/tickbus.ts';
import { choiceOption, intOption, parseCli, positiveOption } from './lib/cli.ts';
import { servePacedPublisher } from './lib/paced-publisher.ts';
import { priceMessage } from './gateway-common.ts';
import { symbolNames } from './tickstock-common.ts';

const v = parseCli('node --import tsx bench/tickstock-publisher.ts [options]', 'The fan-out publisher of bench/tickstock.ts (started by it).', {
  url: { type: 'string', value: 'url', description: 'Redis URL.' },
  channel: { type: 'string', value: 'which', default: 'patterns', description: 'patterns or ticker.' },
  rate: { type: 'string', value: 'R', default: '20', description: 'Messages per second, over all symbols.' },
  symbols: { type: 'string', value: 'N', default: '100', description: 'Symbols.' },
});
if (v.url === undefined) throw new Error('--url is required.');
const channel = choiceOption(v.channel, 'channel', ['patterns', 'ticker'] as const);
const rate = positiveOption(v.rate, 'rate');
const symbols = symbolNames(intOption(v.symbols, 'symbols'));

const bus = createBus({ redis: { url: v.url }, logger: pino({ level: 'silent' }), sender: 'tickstock_pl' });
bus.on('error', (error) => {
  throw error;
});
await bus.connect();

function publishOne(i: number, now: number): Promise<unknown> {
  const symbol = symbols[i % symbols.length] as string;
  if (channel === 'ticker') return bus.publish(TickerUpdates.of({ ticker: symbol }), priceMessage(i, symbols, now));
  const close = 100 + (i % 1000) / 100;
  return bus.publish(tickstock.PatternsStreaming, {
    pattern_name: 'doji',
    symbol,
    timeframe: '5s',
    confidence: 85.5,
    detected_at: now / 1000,
    bar_count: 1,
    metadata: { open: close, high: close + 0.05, low: close - 0.05, close, volume: 2000 + (i % 100), direction: 'neutral' },
  });
}

servePacedPublisher(rate, publishOne, () => bus.close());
