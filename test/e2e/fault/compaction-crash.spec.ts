import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { after, before, test } from 'node:test';
import { startCluster, tempDir, type Cluster, type TempDir } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { appendMany, waitForJob } from '../maintenance/support.ts';

// Issue 11: SIGKILL the process running a compaction and start it again: the job completes
// exactly once, no data is lost, and no two runs of that shard's compaction overlapped,
// read from the lease records in Redis (each run's [acquired, released or last expiry]).

const LOCK_MS = 3000;
let cluster: Cluster;
let dirs: TempDir;
before(async () => {
  dirs = await tempDir('skein-compaction-crash-');
  cluster = await startCluster({ shards: 1, shardDataDirs: { 'shard-0': `${dirs.path}/shard-0` }, shardEnv: { SKEIN_SHARD_JOB_LOCK_MS: String(LOCK_MS) } });
});
after(async () => {
  delete process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS;
  delete process.env.SKEIN_SHARD_TEST_JOB_PAUSE_MS;
  await cluster?.stop();
  await dirs?.remove();
});

interface LeaseRun {
  token: string;
  job: string;
  start: number;
  end: number;
  released: boolean;
}

async function leaseRuns(url: string, unit: string): Promise<LeaseRun[]> {
  const redis = new Redis(url);
  try {
    const runs = new Map<string, LeaseRun>();
    for (const [, fields] of await redis.xrange('skein:leases', '-', '+')) {
      const f: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      if (f.unit !== unit) continue;
      const run = runs.get(f.token!) ?? { token: f.token!, job: f.job ?? '', start: Number(f.at), end: Number(f.expiresAt), released: false };
      if (f.event === 'renewed') run.end = Number(f.expiresAt);
      if (f.event === 'released') {
        run.end = Number(f.at);
        run.released = true;
      }
      runs.set(run.token, run);
    }
    return [...runs.values()].sort((a, b) => a.start - b.start);
  } finally {
    redis.disconnect();
  }
}

test('a compaction whose process is SIGKILLed mid-job completes exactly once after the restart, loses nothing, and never ran twice at once', async () => {
  const { url, adminKey: key } = cluster;
  const shard = cluster.shards[0]!;
  const tenant = tenantName('cmp');
  assert.equal((await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant, partitions: 2 } })).status, 201);
  const pad = 'p'.repeat(200);
  await appendMany(url, key, tenant, 'big', 10_000, (i) => ({ i, pad }));
  await appendMany(url, key, tenant, 'keep', 3000, (i) => ({ i, pad }));
  assert.equal((await call(url, 'PUT', `/v1/tenants/${tenant}/streams/big/metadata`, { key, body: { maxCount: 10 } })).status, 204);
  const retention = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant } });
  assert.equal(retention.status, 202);
  for (const j of retention.body.jobs) await waitForJob(url, key, j.id);

  // The shard comes back 40 days later (its engine clock): the bucket written so far is closed.
  process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS = String(40 * 86_400_000);
  process.env.SKEIN_SHARD_TEST_JOB_PAUSE_MS = '120000';
  await shard.restart();
  await appendMany(url, key, tenant, 'keep', 10, (i) => ({ i: 3000 + i, pad }));
  const read = async (stream: string) => (await call(url, 'GET', `/v1/tenants/${tenant}/streams/${stream}?limit=1000`, { key })).body;
  const readAll = async () => {
    const pages = [];
    for (let from = 1; ; from += 1000) {
      const page = (await call(url, 'GET', `/v1/tenants/${tenant}/streams/keep?from=${from}&limit=1000`, { key })).body;
      pages.push(...page.events);
      if (page.next === null) return pages;
    }
  };
  const bigBefore = await read('big');
  const keepBefore = await readAll();
  assert.equal(keepBefore.length, 3010);

  const fileSize = (bucket: string) => statSync(join(dirs.path, 'shard-0', `bucket-${bucket}`, 'data.mdb')).size;
  const closedBefore = readdirSync(join(dirs.path, 'shard-0')).filter((d) => d.startsWith('bucket-')).sort().slice(0, -1).map((d) => d.slice('bucket-'.length));
  assert.equal(closedBefore.length, 1);
  const sizeBefore = fileSize(closedBefore[0]!);

  const run = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'compact', tenant } });
  assert.equal(run.status, 202, JSON.stringify(run.body));
  assert.equal(run.body.jobs.length, 1);
  const id: string = run.body.jobs[0].id;
  // Paused after its first bucket (progress reported, lease held): kill it there.
  const until = Date.now() + 30_000;
  for (;;) {
    const job = (await call(url, 'GET', `/v1/admin/jobs/${id}`, { key })).body;
    if (job.state === 'active' && job.progress > 0) break;
    assert.ok(Date.now() < until, `the compaction did not reach its first bucket: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await shard.kill('SIGKILL');
  process.env.SKEIN_SHARD_TEST_JOB_PAUSE_MS = '0';
  await shard.restart();

  const done = await waitForJob(url, key, id, 45_000);
  assert.equal(done.attempts, 2, 'the job ran again after the crash');
  // The sweep at each start enqueued compactions of its own (deduplicated while one waits or runs).
  const compactions = (await call(url, 'GET', '/v1/admin/jobs?kind=compact', { key })).body.jobs;
  assert.deepEqual(compactions.filter((j: { id: string }) => j.id === id).map((j: { state: string }) => j.state), ['completed'], 'the job is listed once, completed');
  assert.deepEqual(done.result.buckets.map((b: { bucket: string }) => b.bucket), closedBefore);
  // The killed run had compacted it already; the second found nothing more to give back.
  assert.ok(fileSize(closedBefore[0]!) < sizeBefore * 0.5, `the closed bucket shrank: ${sizeBefore} -> ${fileSize(closedBefore[0]!)}`);

  // Every run on the shard's buckets (the sweeps' included) held the lease alone.
  const runs = await leaseRuns(cluster.redis.url, 'shard/shard-0');
  const ours = runs.filter((r) => r.job === id);
  assert.equal(ours.length, 2, JSON.stringify(runs));
  assert.equal(ours[0]!.released, false, 'the killed run never released its lease');
  assert.equal(ours[1]!.released, true);
  for (let i = 1; i < runs.length; i++) assert.ok(runs[i]!.start >= runs[i - 1]!.end, `run ${i} began at ${runs[i]!.start}, before run ${i - 1} ended at ${runs[i - 1]!.end}`);

  assert.deepEqual(await read('big'), bigBefore);
  assert.deepEqual(await readAll(), keepBefore);
});
