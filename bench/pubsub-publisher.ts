// The publisher worker of bench/pubsub.ts. Connects (raw node-redis or tickbus), says
// ready, and on each `run` publishes a phase of messages: as fast as a bounded window of
// publishes in flight allows (throughput), or paced at a fixed rate in 1 ms ticks
// (latency). Every implementation goes through the same loops (lib/publisher.ts); only
// `publish` differs.
import { createClient } from 'redis';
import { createBus } from './lib/tickbus.ts';
import { servePublisher, type Sender } from './lib/publisher.ts';
import { BENCH_CATALOGS, parseWorkerConfig, priceMessage, rawChannel, tickbusChannels, timedPriceMessage, type WorkerConfig } from './pubsub-common.ts';
import { registerTracing } from './lib/tracing-sdk.ts';

async function rawSender(cfg: WorkerConfig): Promise<Sender> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => {
    throw error;
  });
  await client.connect();
  const publish =
    cfg.mode === 'throughput'
      ? (i: number) => {
          const m = priceMessage(i);
          return client.publish(rawChannel('throughput', m.symbol), JSON.stringify(m));
        }
      : (i: number) => {
          const m = timedPriceMessage(i);
          return client.publish(rawChannel('latency', m.symbol), JSON.stringify(m));
        };
  return { publish, close: () => client.close() };
}

/** tickbus and tickbus-history: the same code, on a channel without or with history. */
async function tickbusSender(cfg: WorkerConfig & { impl: 'tickbus' | 'tickbus-history' | 'tickbus-traced' }): Promise<Sender> {
  const { prices, timed } = tickbusChannels(cfg.impl);
  if (cfg.impl === 'tickbus-traced') registerTracing();
  const bus = createBus({ redis: { url: cfg.url }, catalogs: BENCH_CATALOGS, sender: 'bench-publisher' });
  bus.on('error', (error) => {
    throw error;
  });
  await bus.connect();
  const publish =
    cfg.mode === 'throughput'
      ? (i: number) => {
          const m = priceMessage(i);
          return bus.publish(prices.of({ ticker: m.symbol }), m);
        }
      : (i: number) => {
          const m = timedPriceMessage(i);
          return bus.publish(timed.of({ ticker: m.symbol }), m);
        };
  return { publish, close: () => bus.close() };
}

const cfg = parseWorkerConfig('publisher');
await servePublisher(cfg, cfg.impl === 'raw' ? rawSender(cfg) : tickbusSender({ ...cfg, impl: cfg.impl }));
