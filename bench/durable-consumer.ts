// The consumer worker of bench/durable.ts. Joins the consumer group (raw node-redis or
// tickbus), says ready, counts the warm-up messages, then times the measured ones: when the
// handler finishes the last one (throughput) and how long each took from its `sent_at` to
// the handler (latency). Every message's stream position must come after the previous
// one's (each entry handled once, in order). Reports once every message was handled, or
// when the parent asks. The counting, timing and reporting are every receiving worker's
// (lib/receiver.ts).
//
// - raw: XGROUP CREATE <key> bench $ MKSTREAM, then a loop of XREADGROUP GROUP bench
//   bench-consumer COUNT 100 BLOCK 1000 STREAMS <key> >, JSON.parse and the handler for
//   each entry, then one XACK with the batch's ids, pipelined ahead of the next read on the
//   same connection.
// - tickbus: bus.consume(BenchDurablePrices.of(), handler, { group, consumer, batchSize,
//   blockMs }): decoding, validation, acknowledgement after the handler, retries and
//   claiming as the library does them.
import { createClient } from 'redis';
import { createBus } from './lib/tickbus.ts';
import { epochMs } from './lib/clock.ts';
import { serveReceiver, type Close, type Receiver } from './lib/receiver.ts';
import { BenchDurablePrices, CONSUMER, GROUP, STREAM_KEY, benchDurableCatalog, parseWorkerConfig, type PriceMessage, type WorkerConfig } from './durable-common.ts';

/** What both implementations' handlers call for each message. */
interface Sink {
  /** A price message handled: its stream position and send time. */
  price(position: string, sentAt: number): void;
  /** Anything that should not have arrived, a dead letter, or a bus error. */
  error(what: string): void;
}

/** The entries of one stream in node-redis 6's XREADGROUP reply (typed `any` there). */
type StreamMessages = Array<{ id: string; message: Record<string, string | undefined> }>;

async function rawConsumer(cfg: WorkerConfig, sink: Sink): Promise<Close> {
  const client = createClient({ url: cfg.url, commandOptions: { timeout: 0 } });
  client.on('error', (error: Error) => sink.error(error.message));
  await client.connect();
  try {
    await client.xGroupCreate(STREAM_KEY, GROUP, '$', { MKSTREAM: true });
  } catch (error) {
    if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
  }
  // The application's handler: what tickbus's consume() handler does below.
  const handler = (m: PriceMessage, id: string): unknown => {
    if (m.type === 'price') sink.price(id, m.sent_at);
    else sink.error(`unexpected message ${JSON.stringify(m).slice(0, 60)}`);
    return undefined;
  };
  let closed = false;
  let acking: Promise<unknown> = Promise.resolve();
  const loop = async (): Promise<void> => {
    while (!closed) {
      // node-redis 6 (RESP2): [{ name, messages: [{ id, message: { payload } }] }], or null when the BLOCK timed out.
      const reply = await client.xReadGroup(GROUP, CONSUMER, { key: STREAM_KEY, id: '>' }, { COUNT: cfg.batch, BLOCK: cfg.block });
      if (!reply) continue;
      for (const stream of reply) {
        const ids: string[] = [];
        for (const entry of stream.messages as StreamMessages) {
          const payload = entry.message.payload;
          if (payload === undefined) {
            sink.error(`entry ${entry.id} has no payload`);
          } else {
            const done = handler(JSON.parse(payload) as PriceMessage, entry.id);
            if (done instanceof Promise) await done;
          }
          ids.push(entry.id);
        }
        // Not awaited: the XACK goes out ahead of the next XREADGROUP on this connection,
        // and Redis runs them in that order.
        if (ids.length > 0) acking = client.xAck(STREAM_KEY, GROUP, ids).catch((error: Error) => sink.error(`XACK: ${error.message}`));
      }
    }
  };
  const running = loop().catch((error: unknown) => {
    if (!closed) throw error; // reported to the parent by serveParent
  });
  return async () => {
    closed = true;
    await acking;
    // Ends a blocked read at once; everything handled was acknowledged above.
    client.destroy();
    await running.catch(() => undefined);
  };
}

async function tickbusConsumer(cfg: WorkerConfig, sink: Sink): Promise<Close> {
  const bus = createBus({ redis: { url: cfg.url }, catalogs: [benchDurableCatalog], sender: 'bench-consumer' });
  bus.on('error', (error) => sink.error(error.message));
  const consumer = await bus.consume(
    BenchDurablePrices.of(),
    (data, context) => {
      if (data.type === 'price') sink.price(context.position, data.sent_at);
      else sink.error(`unexpected ${String(data.type)} message`);
    },
    { group: GROUP, consumer: CONSUMER, batchSize: cfg.batch, blockMs: cfg.block },
  );
  consumer.on('deadLettered', (letter) => sink.error(`dead-lettered ${letter.position}: ${letter.error.message}`));
  return () => bus.close();
}

/** The receiver behind a check that each message's stream position follows the one before. */
function inStreamOrder(receiver: Receiver): Sink {
  let lastMs = -1;
  let lastSeq = -1;
  return {
    price(position, sentAt) {
      const now = epochMs();
      // Stream ids are <ms>-<seq>: each must follow the one before (no entry twice).
      const dash = position.indexOf('-');
      const ms = Number(position.slice(0, dash));
      const seq = Number(position.slice(dash + 1));
      if (ms < lastMs || (ms === lastMs && seq <= lastSeq)) receiver.error(`position ${position} after ${lastMs}-${lastSeq}: handled out of order or twice`);
      lastMs = ms;
      lastSeq = seq;
      receiver.price(sentAt, now);
    },
    error: (what) => receiver.error(what),
  };
}

const cfg = parseWorkerConfig('consumer');
await serveReceiver(cfg, (receiver) => {
  const sink = inStreamOrder(receiver);
  return cfg.impl === 'raw' ? rawConsumer(cfg, sink) : tickbusConsumer(cfg, sink);
});
