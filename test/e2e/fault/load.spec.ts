import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';

// The suite's own instrument: the read-back must pass on a healthy cluster and must be
// able to fail, or every fault case built on it proves nothing.

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 2 });
});
after(async () => {
  await cluster?.stop();
});

test('16 writers on a healthy cluster: every acknowledgement reads back, and a forged one is caught', async () => {
  const tenant = tenantName('load');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 4 } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const load = startWriters({ url: cluster.url, key: cluster.adminKey, tenant, writers: 16 });
  await new Promise((r) => setTimeout(r, 1500));
  const report = await load.stop();
  assert.ok(report.acks.length > 50, `only ${report.acks.length} acknowledgements in 1.5 s`);
  assert.deepEqual(Object.keys(report.statuses).filter((s) => s !== '201'), []);
  const verified = await verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant }, report);
  assert.equal(verified.streams, 64);

  const real = report.acks[0]!;
  const lost = { ...report, acks: [...report.acks, { ...real, version: real.version + 100_000 }] };
  await assert.rejects(verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant }, lost), /missing/);
  const moved = { ...report, acks: [{ ...real, position: real.position + 1_000_000n }] };
  await assert.rejects(verifyAcknowledged({ url: cluster.url, key: cluster.adminKey, tenant }, moved), /another position|missing from the tenant log/);
});
