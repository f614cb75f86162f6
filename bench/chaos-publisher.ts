// The chaos run's fallback-buffered publisher: publishes TEST_WORK_chaos {n: 0, 1, 2, …} at
// a steady rate with the fallback buffer on (and its journal), so that while Redis is down
// messages wait and go out once it is back. Prints `pub <n> <status>` for each message (a
// pipe on Linux is written synchronously, so a line printed is a line the parent gets).
// On SIGTERM it stops, closes the bus (which sends what is still buffered) and exits 0.
// Usage: node --import tsx bench/chaos-publisher.ts <redis-url> <journal-file> <per-second>
import { BusError, createBus } from './lib/tickbus.ts';
import { Work, deliveryCatalog } from '../test/fixtures/delivery-channels.ts';
import { CHAOS_QUEUE } from './chaos-common.ts';

const [url, journal, rate] = process.argv.slice(2) as [string, string, string];
const perSecond = Number(rate);
const bus = createBus({
  redis: { url },
  catalogs: [deliveryCatalog],
  sender: 'chaos_publisher',
  reconnect: { baseMs: 50, maxMs: 500 },
  fallback: { file: journal },
});
bus.on('error', () => undefined);

let stopping = false;
const ref = Work.of({ queue: CHAOS_QUEUE });

async function run(): Promise<void> {
  const start = performance.now();
  for (let n = 0; !stopping; n++) {
    try {
      const receipt = await bus.publish(ref, { n });
      process.stdout.write(`pub ${n} ${receipt.status}\n`);
    } catch (error) {
      process.stdout.write(`pub ${n} failed:${error instanceof BusError ? error.code : 'unknown'}\n`);
    }
    // Paced from the start: a slow stretch (Redis loading) is caught up, not skipped.
    const due = start + ((n + 1) * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

const loop = run();
process.once('SIGTERM', () => {
  stopping = true;
  void (async () => {
    await loop;
    await bus.close();
    process.stdout.write('closed\n');
    process.exit(0);
  })();
});

process.stdout.write('ready\n');
