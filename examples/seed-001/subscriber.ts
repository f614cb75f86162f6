// Seed 001's Quick Start, "Subscribing to Messages", in TypeScript with tickbus/seed: prints
// every AAPL price until Ctrl-C. Redis comes from REDIS_URL (else localhost:6379).
//
//   REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/seed-001/subscriber.ts
import { CHANNELS, RedisSubscriber, type SeedMessage, type TickerUpdate } from '../../src/seed/index.ts';

// Define a message handler
function tickerHandler(message: SeedMessage<TickerUpdate>): void {
  const data = message.data;
  if (data.type === 'price') {
    // price is optional in the seed's schema: only type and timestamp are required.
    console.log(`Received price: $${data.price?.toFixed(2) ?? '?'} for ${data.symbol ?? '?'}`);
  }
}

// Create a subscriber
const subscriber = new RedisSubscriber();
// Messages that fail validation never reach the handler; they are reported here instead.
subscriber.bus.on('error', (error) => console.error(`Rejected on ${error.channel ?? '?'}: ${error.code} ${error.message}`));

// Subscribe to ticker updates
const ticker = 'AAPL';
const tickerChannel = CHANNELS.getTickerChannel(ticker);
await subscriber.subscribe(tickerChannel, tickerHandler);

// Keep your application running: Node stays up while the subscription is open, so instead
// of the Python sleep loop, Ctrl-C (or SIGTERM) closes the subscriber and the process ends.
const stop = (): void => void subscriber.close();
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

// Start listening for messages (resolves once the channel is subscribed)
try {
  await subscriber.startListening();
  console.log(`Listening on ${tickerChannel} (Ctrl-C to stop)`);
} catch (error) {
  console.error(`Cannot listen: ${(error as Error).message}`);
  await subscriber.close();
  process.exitCode = 1;
}
