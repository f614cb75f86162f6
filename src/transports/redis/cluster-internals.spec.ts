// A node-redis without the internals tickbus reads must fail at start-up with an error that
// says which one and which version was checked, not later in a probe timer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCluster } from 'redis';
import { ClusterInternals, ClusterInternalsError, NODE_REDIS_CHECKED } from './cluster-internals.ts';
import { ErrorCode, TransportError } from '../../core/errors.ts';

/** A stand-in with the shape node-redis 6.3.1's cluster client has once connected. */
function fakeCluster(): Record<string, unknown> {
  const client = { isReady: true, sendCommand: () => Promise.resolve('OK'), on: () => undefined };
  const master = { address: '127.0.0.1:7000', client };
  return {
    _slots: { rediscover: () => Promise.resolve() },
    slots: Array.from({ length: 16384 }, () => ({ master })),
    masters: [master],
    pubSubNode: undefined,
  };
}

function refused(cluster: object, missing: RegExp, connected = false): void {
  assert.throws(
    () => {
      const internals = ClusterInternals.of(cluster);
      if (connected) internals.checkConnected();
    },
    (error: unknown) => {
      assert.ok(error instanceof ClusterInternalsError);
      assert.ok(error instanceof TransportError);
      assert.equal(error.code, ErrorCode.Transport);
      assert.match(error.missing, missing);
      assert.ok(error.message.includes(`redis ${NODE_REDIS_CHECKED}`), error.message);
      assert.ok(error.message.includes('cluster-internals.ts'), error.message);
      return true;
    },
  );
}

describe('ClusterInternals', () => {
  it('accepts the shape it was written for, and reads through it', async () => {
    const internals = ClusterInternals.of(fakeCluster());
    internals.checkConnected();
    assert.equal(internals.slotMaster(42)?.address, '127.0.0.1:7000');
    assert.equal(internals.masters().length, 1);
    assert.equal(internals.pubSubNode(), undefined);
    await internals.rediscover();
  });

  it('refuses a client without _slots.rediscover(), naming it and the version checked', () => {
    const cluster = fakeCluster();
    cluster._slots = {};
    refused(cluster, /_slots\.rediscover/);
    delete cluster._slots;
    refused(cluster, /^_slots$/);
  });

  it('refuses a client without the slot table, masters or pubSubNode', () => {
    for (const [field, missing] of [['slots', /slots\[\]/], ['masters', /masters\[\]/], ['pubSubNode', /pubSubNode/]] as const) {
      const cluster = fakeCluster();
      delete cluster[field];
      refused(cluster, missing);
    }
    refused({ ...fakeCluster(), slots: [] }, /16384/);
  });

  it('once connected, refuses masters without an address, a client that cannot send, or a pubSub that is no emitter', () => {
    refused({ ...fakeCluster(), slots: Array.from({ length: 16384 }, () => ({ master: { host: 'h' } })) }, /address/, true);
    refused({ ...fakeCluster(), masters: [{ client: { isReady: true } }] }, /sendCommand/, true);
    refused({ ...fakeCluster(), masters: [{ pubSub: { client: {} } }] }, /pubSub/, true);
  });

  it('the installed node-redis is the version checked, and a cluster client it creates passes', () => {
    const installed = (JSON.parse(readFileSync(new URL('../../../node_modules/redis/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    assert.equal(installed, NODE_REDIS_CHECKED);
    const pinned = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> }).dependencies.redis;
    assert.equal(pinned, NODE_REDIS_CHECKED, 'package.json pins the checked version exactly');
    // Created, never connected: no socket is opened.
    ClusterInternals.of(createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:1' }] }));
  });
});
