// The publisher worker of bench/durable.ts. Connects (raw node-redis or tickbus), says
// ready, and on each `run` appends a phase of price messages to the durable channel's
// stream: as fast as a bounded window of appends in flight allows (throughput), or paced
// at a fixed rate in 1 ms ticks (latency). Both implementations go through the same loops
// (lib/publisher.ts); only `publish` differs.
//
// - raw: XADD <key> MAXLEN ~ 100000 * payload <JSON>, one command per message.
// - tickbus: bus.publish(BenchDurablePrices.of(), message): validation, the envelope (with
//   a message id), then the transport's stream append.
import { createClient } from 'redis';
import { createBus } from './lib/tickbus.ts';
import { servePublisher, type Sender } from './lib/publisher.ts';
import { BenchDurablePrices, MAX_LEN, STREAM_KEY, benchDurableCatalog, parseWorkerConfig, priceMessage, type WorkerConfig } from './durable-common.ts';

async function rawSender(cfg: WorkerConfig): Promise<Sender> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => {
    throw error;
  });
  await client.connect();
  const trim = { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: MAX_LEN } } as const;
  return {
    publish: (i) => client.xAdd(STREAM_KEY, '*', { payload: JSON.stringify(priceMessage(i)) }, trim),
    close: () => client.close(),
  };
}

async function tickbusSender(cfg: WorkerConfig): Promise<Sender> {
  const bus = createBus({ redis: { url: cfg.url }, catalogs: [benchDurableCatalog], sender: 'bench-publisher' });
  bus.on('error', (error) => {
    throw error;
  });
  await bus.connect();
  const ref = BenchDurablePrices.of();
  return {
    // Without a fallback buffer a receipt is 'sent' or the publish rejects (and the window
    // rethrows): no check per message, which would cost tickbus a promise the raw loop has not.
    publish: (i) => bus.publish(ref, priceMessage(i)),
    close: () => bus.close(),
  };
}

const cfg = parseWorkerConfig('publisher');
await servePublisher(cfg, cfg.impl === 'raw' ? rawSender(cfg) : tickbusSender(cfg));
