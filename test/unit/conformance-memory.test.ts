import { MemoryHub, MemoryTransport, createBus } from '../../src/index.ts';
import { runConformance } from '../conformance/bus-conformance.ts';
import { silentLogger } from '../harness/quiet.ts';

runConformance('memory', async () => {
  const transport = new MemoryTransport(new MemoryHub());
  const raw = transport.createPublishLink();
  await raw.connect();
  return {
    makeBus: (options = {}) => createBus({ logger: silentLogger, ...options, transport }),
    rawPublish: async (channel, payload) => {
      await raw.publish(channel, typeof payload === 'string' ? payload : payload.toString('utf8'));
    },
    teardown: () => raw.close(),
  };
});
