// The bus conformance suite on a Redis Cluster (3 masters, 3 replicas): ticker channels go
// by sharded pub/sub to the shard of their slot; everything else is classic pub/sub.
import { createCluster } from 'redis';
import { createBus } from '../../src/index.ts';
import { runConformance } from '../conformance/bus-conformance.ts';
import { startCluster } from '../harness/redis-cluster.ts';
import { silentLogger } from '../harness/quiet.ts';

runConformance('redis cluster', async () => {
  const cluster = await startCluster();
  // A plain node-redis cluster client: raw bytes onto channels, bypassing tickbus.
  const raw = createCluster({ rootNodes: cluster.rootNodes.map((url) => ({ url })) });
  await raw.connect();
  return {
    cluster: true,
    makeBus: (options = {}) => createBus({ logger: silentLogger, ...options, redis: { url: cluster.url } }),
    rawPublish: async (channel, payload) => {
      if (channel.startsWith('TICKER_UPDATES_')) await raw.sPublish(channel, payload);
      else await raw.publish(channel, payload);
    },
    teardown: async () => {
      await raw.close();
      await cluster.stop();
    },
  };
});
