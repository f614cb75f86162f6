// The subscriber worker of bench/pubsub.ts. Subscribes to the ten tickers' channels (raw
// node-redis with JSON.parse, or tickbus with a typed handler, on a channel without or with
// history), says ready, counts the warm-up messages, then times the measured ones: when the
// last arrives (throughput) and how long each took from its `sent_at` to the handler
// (latency). Reports once every message arrived, or when the parent asks. The counting,
// timing and reporting are every receiving worker's (lib/receiver.ts).
import { createClient } from 'redis';
import { createBus } from './lib/tickbus.ts';
import { TICKERS } from './lib/delivery.ts';
import { serveReceiver, type Close, type Receiver } from './lib/receiver.ts';
import { BENCH_CATALOGS, parseWorkerConfig, rawChannel, tickbusChannels, type PriceMessage, type WorkerConfig } from './pubsub-common.ts';
import { registerTracing } from './lib/tracing-sdk.ts';

async function rawSubscriber(cfg: WorkerConfig, sink: Receiver): Promise<Close> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => sink.error(error.message));
  await client.connect();
  await client.subscribe(
    TICKERS.map((t) => rawChannel(cfg.mode, t)),
    (message) => {
      const m = JSON.parse(message) as PriceMessage;
      if (m.type === 'price') sink.price(m.sent_at);
      else sink.error(`unexpected message ${message.slice(0, 60)}`);
    },
  );
  return () => client.close();
}

async function tickbusSubscriber(cfg: WorkerConfig & { impl: 'tickbus' | 'tickbus-history' | 'tickbus-traced' }, sink: Receiver): Promise<Close> {
  const { prices, timed } = tickbusChannels(cfg.impl);
  if (cfg.impl === 'tickbus-traced') registerTracing();
  const bus = createBus({ redis: { url: cfg.url }, catalogs: BENCH_CATALOGS, sender: 'bench-subscriber' });
  bus.on('error', (error) => sink.error(error.message));
  for (const ticker of TICKERS) {
    if (cfg.mode === 'throughput') {
      await bus.subscribe(prices.of({ ticker }), () => sink.price(undefined));
    } else {
      await bus.subscribe(timed.of({ ticker }), (data) => sink.price(data.sent_at));
    }
  }
  return () => bus.close();
}

const cfg = parseWorkerConfig('subscriber');
await serveReceiver(cfg, (sink) => (cfg.impl === 'raw' ? rawSubscriber(cfg, sink) : tickbusSubscriber({ ...cfg, impl: cfg.impl }, sink)));
