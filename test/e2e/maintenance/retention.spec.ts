import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startCluster, tempDir, type Cluster, type TempDir } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { appendMany, countKeys, placementOf, waitForJob } from './support.ts';

// Issue 11: retention removes from disk what stream metadata hides. Real redis-server,
// BullMQ worker in each shard process, router enqueueing on the owning shard's queue.

let cluster: Cluster;
let dirs: TempDir;
before(async () => {
  dirs = await tempDir('skein-retention-');
  cluster = await startCluster({ shards: 2, shardDataDirs: { 'shard-0': `${dirs.path}/shard-0`, 'shard-1': `${dirs.path}/shard-1` }, shardEnv: { SKEIN_SHARD_JOB_LOCK_MS: '5000' } });
});
after(async () => {
  await cluster?.stop();
  await dirs?.remove();
});

test('maxCount 10 on a stream of 10,000 events: a retention job run through the router leaves 10 of its events on disk, stream reads unchanged, the tenant log without the removed ones', async () => {
  const { url, adminKey: key } = cluster;
  const tenant = tenantName('ret');
  assert.equal((await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant } })).status, 201);
  await appendMany(url, key, tenant, 'big', 10_000);
  assert.equal((await call(url, 'POST', `/v1/tenants/${tenant}/streams/other/events`, { key, body: { events: [{ type: 'O', data: 1 }] } })).status, 201);
  assert.equal((await call(url, 'PUT', `/v1/tenants/${tenant}/streams/big/metadata`, { key, body: { maxCount: 10 } })).status, 204);
  const before = await call(url, 'GET', `/v1/tenants/${tenant}/streams/big?limit=1000`, { key });
  assert.equal(before.status, 200);
  assert.deepEqual(before.body.events.map((e: { version: number }) => e.version), Array.from({ length: 10 }, (_, i) => 9991 + i));
  const logBefore = await call(url, 'GET', `/v1/tenants/${tenant}/events?limit=1000`, { key });
  assert.equal(logBefore.body.events.length, 1000, 'the tenant log lists hidden events until retention ran');

  const run = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant } });
  assert.equal(run.status, 202, JSON.stringify(run.body));
  const owner = (await placementOf(url, key, tenant))[tenant]!;
  assert.equal(run.body.jobs.length, 1);
  const [job] = run.body.jobs;
  assert.equal(job.kind, 'retention');
  assert.equal(job.partition, tenant);
  assert.equal(job.shard, owner);
  assert.match(job.id, new RegExp(`^${owner}:`));
  const done = await waitForJob(url, key, job.id);
  assert.equal(done.result.events, 9990);
  assert.equal(done.progress, 100);
  const listed = await call(url, 'GET', '/v1/admin/jobs?kind=retention&state=completed', { key });
  assert.equal(listed.status, 200);
  assert.ok(listed.body.jobs.some((j: { id: string }) => j.id === job.id), JSON.stringify(listed.body));
  assert.equal((await call(url, 'GET', `/v1/admin/jobs/${owner}:no-such-job`, { key })).status, 404);

  const afterRead = await call(url, 'GET', `/v1/tenants/${tenant}/streams/big?limit=1000`, { key });
  assert.deepEqual(afterRead.body, before.body);
  const log = await call(url, 'GET', `/v1/tenants/${tenant}/events?limit=1000`, { key });
  assert.deepEqual(log.body.events.map((e: { streamId: string; version: number }) => `${e.streamId}@${e.version}`), [...Array.from({ length: 10 }, (_, i) => `big@${9991 + i}`), 'other@1']);

  const metrics = await fetch(`${cluster.shards.find((s) => s.name === owner)!.url}/metrics`).then((r) => r.text());
  assert.match(metrics, /skein_shard_jobs_total\{kind="retention",result="completed"[^}]*\} 1/);
  assert.match(metrics, /skein_shard_reclaimed_bytes_total\{kind="retention"[^}]*\} [1-9]/);
  assert.match(metrics, /skein_shard_maintenance_enabled\{[^}]*\} 1/);

  // Keys on disk, counted with the shard stopped.
  await cluster.shards.find((s) => s.name === owner)!.kill('SIGKILL');
  assert.equal(countKeys(`${dirs.path}/${owner}`, [tenant, 'stream', 'big']), 10);
  assert.equal(countKeys(`${dirs.path}/${owner}`, [tenant, 'stream', 'other']), 1);
});
