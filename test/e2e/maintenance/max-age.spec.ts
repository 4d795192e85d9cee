import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startCluster, tempDir, type Cluster, type TempDir } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { appendMany, waitForJob } from './support.ts';

// Issue 11: a tenant's retention.maxAge drops a whole old bucket, without compaction. The
// clock is injected: the shard restarts with its engine clock 40 days ahead, so what was
// written before is 40 days old and its bucket closed; nothing sleeps but job completion.

const DAY = 86_400_000;
let cluster: Cluster;
let dirs: TempDir;
before(async () => {
  dirs = await tempDir('skein-max-age-');
  cluster = await startCluster({ shards: 1, shardDataDirs: { 'shard-0': `${dirs.path}/shard-0` }, shardEnv: { SKEIN_SHARD_JOB_LOCK_MS: '5000' } });
});
after(async () => {
  delete process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS;
  await cluster?.stop();
  await dirs?.remove();
});

const bucketDirs = () => readdirSync(join(dirs.path, 'shard-0')).filter((d) => d.startsWith('bucket-')).sort();

test('a tenant maxAge drops a whole old bucket without compaction: its directory is gone, stream versions and metadata continue after it', async () => {
  const { url, adminKey: key } = cluster;
  const shard = cluster.shards[0]!;
  const tenant = tenantName('age');
  assert.equal((await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant } })).status, 201);
  await appendMany(url, key, tenant, 'old', 300, (i) => ({ i }), 100);
  assert.equal((await call(url, 'PUT', `/v1/tenants/${tenant}/streams/old/metadata`, { key, body: { maxCount: 1000, custom: { owner: 'ops' } } })).status, 204);
  await appendMany(url, key, tenant, 'other', 5);
  const [oldBucket] = bucketDirs();
  assert.deepEqual(bucketDirs(), [oldBucket]);

  process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS = String(40 * DAY);
  await shard.restart();
  // No compaction is pending (a sweep's runs at start while the old bucket is still the newest: nothing to compact).
  const until = Date.now() + 20_000;
  for (;;) {
    const jobs = (await call(url, 'GET', '/v1/admin/jobs?kind=compact', { key })).body.jobs as { state: string }[];
    if (jobs.every((j) => j.state === 'completed')) break;
    assert.ok(Date.now() < until, `compactions still pending: ${JSON.stringify(jobs)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // A write 40 days later lands in a new bucket: the old one is closed.
  await appendMany(url, key, tenant, 'fresh', 3);
  assert.equal(bucketDirs().length, 2);
  assert.equal((await call(url, 'GET', `/v1/tenants/${tenant}/streams/old?limit=1000`, { key })).body.events.length, 300, 'without a tenant maxAge the old events stay');

  const patched = await call(url, 'PATCH', `/v1/admin/tenants/${tenant}`, { key, body: { retention: { maxAge: 30 * 86_400 } } });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.retention.maxAge, 30 * 86_400);
  const run = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant } });
  assert.equal(run.status, 202, JSON.stringify(run.body));
  const done = await waitForJob(url, key, run.body.jobs[0].id);
  assert.equal(done.result.events, 305);
  assert.deepEqual(done.result.bucketsDropped, [oldBucket!.slice('bucket-'.length)]);
  assert.equal(existsSync(join(dirs.path, 'shard-0', oldBucket!)), false, 'the old bucket directory is gone');
  assert.equal(bucketDirs().length, 1);
  const compactions = (await call(url, 'GET', '/v1/admin/jobs?kind=compact', { key })).body.jobs as { result?: { buckets?: { bucket: string; copied: boolean }[] } }[];
  assert.ok(!compactions.some((j) => j.result?.buckets?.some((b) => b.copied)), `no compaction copied a bucket: ${JSON.stringify(compactions)}`);

  const old = await call(url, 'GET', `/v1/tenants/${tenant}/streams/old?limit=1000`, { key });
  assert.equal(old.status, 200, JSON.stringify(old.body));
  assert.deepEqual(old.body.events, []);
  const meta = await call(url, 'GET', `/v1/tenants/${tenant}/streams/old/metadata`, { key });
  assert.deepEqual([meta.body.maxCount, meta.body.custom], [1000, { owner: 'ops' }], JSON.stringify(meta.body));
  const next = await call(url, 'POST', `/v1/tenants/${tenant}/streams/old/events`, { key, body: { expectedVersion: 300, events: [{ type: 'T', data: 'after' }] } });
  assert.equal(next.status, 201, JSON.stringify(next.body));
  assert.deepEqual([next.body.firstVersion, next.body.lastVersion], [301, 301]);
  const stale = await call(url, 'POST', `/v1/tenants/${tenant}/streams/old/events`, { key, body: { expectedVersion: 'no_stream', events: [{ type: 'T', data: 'restart' }] } });
  assert.equal(stale.status, 409, 'the stream did not restart at version 1');
  const read = await call(url, 'GET', `/v1/tenants/${tenant}/streams/old?limit=1000`, { key });
  assert.deepEqual(read.body.events.map((e: { version: number; data: unknown }) => [e.version, e.data]), [[301, 'after']]);
  const log = await call(url, 'GET', `/v1/tenants/${tenant}/events?limit=1000`, { key });
  assert.deepEqual(log.body.events.map((e: { streamId: string; version: number }) => `${e.streamId}@${e.version}`), ['fresh@1', 'fresh@2', 'fresh@3', 'old@301']);
});
