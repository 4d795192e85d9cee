import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freePort, startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';

// A node process hosting the router and three shards (`npm start`'s topology), SIGKILLed
// under 32 writers: every append acknowledged before the kill, and every one acknowledged
// after the restart (writers retry with the same Idempotency-Key), is found exactly once.

let cluster: Cluster;
before(async () => {
  // A fixed public port: the writers keep their URL across the restart.
  cluster = await startCluster({ topology: 'node', shards: 3, routerEnv: { SKEIN_ROUTER_PORT: String(await freePort()) } });
});
after(async () => {
  await cluster?.stop();
});

test('SIGKILL of a node hosting three shards under 32 writers loses no acknowledged event', async () => {
  const node = cluster.nodes[0]!;
  const tenant = tenantName('crash');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 6 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const placed = await call(cluster.url, 'GET', `/v1/admin/tenants/${tenant}`, { key: cluster.adminKey });
  assert.equal(new Set(Object.values(placed.body.placement as Record<string, string>)).size, 3, `partitions on every shard: ${JSON.stringify(placed.body.placement)}`);

  const load = startWriters({ url: cluster.url, key: cluster.adminKey, tenant, writers: 32, eventBytes: 300 });
  try {
    const until = Date.now() + 30_000;
    while (load.acks.length < 300 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok(load.acks.length >= 300, `only ${load.acks.length} acknowledgements before the kill`);
    const beforeKill = load.acks.length;
    await node.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await node.restart();
    assert.equal(node.url, cluster.url, 'the node came back on the same public port');
    const resumed = Date.now() + 30_000;
    while (load.acks.length < beforeKill + 300 && Date.now() < resumed) await new Promise((r) => setTimeout(r, 50));
    assert.ok(load.acks.length >= beforeKill + 300, `only ${load.acks.length - beforeKill} acknowledgements after the restart`);
  } finally {
    const report = await load.stop();
    assert.ok((report.statuses.network ?? 0) + (report.statuses['503'] ?? 0) > 0, 'the writers saw the node go away');
    const verified = await verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant }, report);
    assert.equal(verified.streams, 32 * 4);
  }
});
