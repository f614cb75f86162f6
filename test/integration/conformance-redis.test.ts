import { createClient } from 'redis';
import { createBus } from '../../src/index.ts';
import { runConformance } from '../conformance/bus-conformance.ts';
import { startRedis } from '../harness/redis-server.ts';
import { silentLogger } from '../harness/quiet.ts';

runConformance('redis', async () => {
  const server = await startRedis();
  // A plain node-redis client: raw bytes onto channels, bypassing tickbus.
  const raw = createClient({ url: server.url });
  await raw.connect();
  return {
    makeBus: (options = {}) => createBus({ logger: silentLogger, ...options, redis: { url: server.url } }),
    rawPublish: async (channel, payload) => {
      await raw.publish(channel, payload);
    },
    teardown: async () => {
      await raw.close();
      await server.stop();
    },
  };
});
