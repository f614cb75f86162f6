// How `tickbus up` picks its Redis: option, REDIS_URL, localhost, a private server, memory.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { answersPing, chooseBackend, describeBackend } from '../../src/runtime/backend.ts';
import { freePort, startRedis } from '../harness/redis-server.ts';

describe('embedded default backend', () => {
  it('prefers the option, then REDIS_URL, and masks passwords when describing them', async () => {
    const fromOption = await chooseBackend({ redisUrl: 'redis://a:1', env: { REDIS_URL: 'redis://b:2' } });
    assert.equal(fromOption.kind === 'redis' && fromOption.url, 'redis://a:1');
    const fromEnv = await chooseBackend({ env: { REDIS_URL: 'redis://u:secret@b:2' } });
    assert.equal(fromEnv.source, 'REDIS_URL');
    assert.equal(describeBackend(fromEnv), 'Redis at redis://u:***@b:2 (REDIS_URL)');
  });

  it('uses a Redis already answering on the local port', async () => {
    const server = await startRedis();
    try {
      const backend = await chooseBackend({ env: {}, localPort: server.port });
      assert.deepEqual([backend.source, backend.kind === 'redis' && backend.url], ['localhost', `redis://127.0.0.1:${server.port}`]);
    } finally {
      await server.stop();
    }
  });

  it('starts a private redis-server when none answers, and stops it', async () => {
    const backend = await chooseBackend({ env: {}, localPort: await freePort() });
    assert.equal(backend.source, 'private');
    assert.ok(backend.kind === 'redis');
    const port = Number(new URL(backend.url).port);
    assert.equal(await answersPing('127.0.0.1', port), true);
    await backend.stop();
    assert.equal(await answersPing('127.0.0.1', port), false);
  });

  it('falls back to memory when there is no redis-server binary', async () => {
    const backend = await chooseBackend({ env: {}, localPort: await freePort(), redisServer: 'no-such-redis-server-binary' });
    assert.equal(backend.kind, 'memory');
    assert.match(describeBackend(backend), /in-memory transport.*install redis-server/);
  });
});
