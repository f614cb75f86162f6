// The local Redis Cluster harness against real redis-server processes: the topology it
// builds, its slot hashing, fail-over of a killed master, rejoining, and slot migration.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type ClusterNode, type RedisCluster } from '../harness/redis-cluster.ts';

function nodesSeenBy(node: ClusterNode): { id: string; flags: string; masterId: string; slots: string[] }[] {
  return node
    .cli('CLUSTER', 'NODES')
    .split('\n')
    .map((line) => {
      const [id = '', , flags = '', masterId = '', , , , , ...slots] = line.split(' ');
      return { id, flags, masterId, slots };
    });
}

describe('Redis Cluster harness', () => {
  let cluster: RedisCluster;

  before(async () => {
    const startedAt = Date.now();
    cluster = await startCluster();
    console.log(`cluster: 3 masters + 3 replicas healthy in ${Date.now() - startedAt} ms`);
  });

  after(async () => {
    await cluster?.stop();
  });

  it('starts 3 masters with one replica each, covering all 16384 slots', async () => {
    assert.equal(cluster.nodes.length, 6);
    const masters = await cluster.masters();
    assert.equal(masters.length, 3);
    assert.deepEqual(cluster.rootNodes, masters.map((m) => m.url));
    assert.equal(cluster.url, `redis-cluster://${masters.map((m) => `127.0.0.1:${m.port}`).join(',')}`);
    for (const node of cluster.nodes) {
      const info = node.cli('CLUSTER', 'INFO');
      assert.match(info, /cluster_state:ok/);
      assert.match(info, /cluster_slots_assigned:16384/);
      assert.match(info, /cluster_known_nodes:6/);
      assert.equal(node.cli('CLUSTER', 'MYID'), node.id);
    }
    const seen = nodesSeenBy(cluster.nodes[0]!);
    for (const master of masters) {
      assert.equal(await master.role(), 'master');
      const replicas = seen.filter((n) => n.masterId === master.id);
      assert.equal(replicas.length, 1, `master ${master.port} should have one replica`);
      const replica = cluster.nodes.find((n) => n.id === replicas[0]!.id)!;
      assert.equal(await replica.role(), 'replica');
      assert.match(replica.cli('INFO', 'replication'), /master_link_status:up/);
    }
  });

  it('computes the same hash slots as CLUSTER KEYSLOT, hash tags included', () => {
    const node = cluster.nodes[0]!;
    const keys = ['TICKER_UPDATES_AAPL', 'tickbus:{TICKER_UPDATES_AAPL}:stream', 'foo', '{user1000}.following', 'a{}b', 'a{b}c{d}', '{}', 'x{', 'ünïcode', ''];
    for (const key of keys) assert.equal(cluster.slotOf(key), Number(node.cli('CLUSTER', 'KEYSLOT', key)), key);
    assert.equal(cluster.slotOf('tickbus:{TICKER_UPDATES_AAPL}:stream'), cluster.slotOf('TICKER_UPDATES_AAPL'));
    assert.equal(cluster.slotOf('foo'), 12182);
  });

  it('promotes a replica when a master is killed, keeps replicated data, and takes the old master back as a replica', async () => {
    const key = 'tickbus:{failover}:key';
    const master = await cluster.masterOf(key);
    assert.equal(master.cli('SET', key, 'before-failover'), 'OK');
    // Acknowledged by the replica, so fail-over cannot lose it.
    assert.equal(master.cli('WAIT', '1', '5000'), '1');

    const { recoveredMs, promoted } = await cluster.killMaster(master);
    console.log(`cluster: fail-over after SIGKILL of a master healthy again in ${recoveredMs} ms`);
    assert.ok(recoveredMs < 15_000, `fail-over took ${recoveredMs} ms`);
    assert.equal(master.alive, false);
    assert.notEqual(promoted, master);
    assert.equal(await promoted.role(), 'master');
    assert.equal(await cluster.masterOf(key), promoted);
    assert.equal(promoted.cli('GET', key), 'before-failover');
    assert.equal((await cluster.masters()).length, 3);

    await cluster.restart(master);
    assert.equal(master.alive, true);
    assert.equal(await master.role(), 'replica');
    assert.match(master.cli('INFO', 'replication'), new RegExp(`master_port:${promoted.port}\\b`));
    assert.ok(!(await cluster.masters()).includes(master));
  });

  it('migrates a slot with its keys to another master', async () => {
    const key = 'tickbus:{migrate}:key';
    const slot = cluster.slotOf(key);
    const from = await cluster.masterOf(key);
    const to = (await cluster.masters()).find((m) => m !== from)!;
    assert.equal(from.cli('SET', key, 'moved'), 'OK');
    // Enough keys in the slot for several MIGRATE batches.
    const more = Array.from({ length: 250 }, (_, i) => [`tickbus:{migrate}:${i}`, String(i)]).flat();
    assert.equal(from.cli('MSET', ...more), 'OK');

    await cluster.migrateSlot(slot, to);

    assert.equal(await cluster.masterOf(key), to);
    assert.equal(to.cli('GET', key), 'moved');
    assert.equal(to.cli('GET', 'tickbus:{migrate}:249'), '249');
    assert.equal(to.cli('CLUSTER', 'COUNTKEYSINSLOT', String(slot)), '251');
    assert.equal(from.cli('GET', key), `MOVED ${slot} 127.0.0.1:${to.port}`);
    for (const node of cluster.nodes) {
      const owner = nodesSeenBy(node).find((n) => n.slots.some((r) => r === String(slot) || (r.includes('-') && Number(r.split('-')[0]) <= slot && slot <= Number(r.split('-')[1]))));
      assert.equal(owner?.id, to.id, `node ${node.port} should see slot ${slot} on ${to.port}`);
    }
  });
});
