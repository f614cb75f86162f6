// Seed 001's Quick Start, "Publishing Messages", in TypeScript with tickbus/seed: one price
// update on AAPL's ticker channel. Redis comes from REDIS_URL (else localhost:6379).
//
//   REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/seed-001/publisher.ts
import { CHANNELS, RedisPublisher } from '../../src/seed/index.ts';

// Create a publisher
const publisher = new RedisPublisher();

// Publish a price update to a ticker channel
const ticker = 'AAPL';
const tickerChannel = CHANNELS.getTickerChannel(ticker);
const priceData = {
  type: 'price',
  timestamp: '2025-04-24T09:45:00.000Z',
  price: 150.0,
  volume: 1000,
  symbol: ticker,
};
try {
  // Unlike the Python original, publish resolves with how many subscribers got the message.
  const receivers = await publisher.publish(tickerChannel, priceData);
  console.log(`Published price ${priceData.price} to ${tickerChannel} (${receivers} subscriber${receivers === 1 ? '' : 's'})`);
} catch (error) {
  // An invalid message or an unreachable Redis: nothing was sent.
  console.error(`Publish failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  // Close when done
  await publisher.close();
}
