// `npm start` without Redis (no SKEIN_REDIS_URL, no redis-* program on PATH): the admin
// job endpoints of API.md ("Maintenance, jobs and backups") are served by the node's
// in-process queues. Retention and compaction run now, a backup of every shard is taken,
// and each shows as completed in `GET /v1/admin/jobs` and `GET /v1/admin/backups`, as do
// the runs of the timers' sweep.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freeStartPort, tempDir } from '@skein/testing';
import { call } from '../support.ts';
import { npmStart, pathWithoutRedis, stopNpmStart } from '../npm-start.ts';
import { waitForJob } from './support.ts';

test('npm start without Redis serves maintenance, jobs and backups: retention, compaction and a backup of every shard complete and are listed', { timeout: 240_000 }, async () => {
  const dir = await tempDir('skein-embedded-jobs-');
  // The timers' sweep every second: its runs go on beside the queued jobs, and are listed too.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithoutRedis(join(dir.path, 'bin')), SKEIN_SHARD_MAINTENANCE_INTERVAL_MS: '1000' };
  delete env.SKEIN_REDIS_URL;
  delete env.SKEIN_DATA_DIR;
  const work = join(dir.path, 'work');
  mkdirSync(work);
  const run = await npmStart(work, await freeStartPort(), env);
  try {
    assert.match(run.output(), /skein: control plane: embedded, no Redis/);
    const { url, adminKey: key } = run;
    const created = await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant: 'jobs', partitions: 3 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    for (let i = 0; i < 6; i++) {
      const appended = await call(url, 'POST', `/v1/tenants/jobs/streams/s-${i}/events`, { key: created.body.apiKey, body: { events: [{ type: 'T', data: { i } }] } });
      assert.equal(appended.status, 201, JSON.stringify(appended.body));
    }

    // Retention: one job per placed partition (the tenant's three among them), on its owner.
    const retention = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant: 'jobs' } });
    assert.equal(retention.status, 202, JSON.stringify(retention.body));
    assert.equal(retention.body.jobs.length, 3);
    for (const job of retention.body.jobs) {
      assert.equal(job.kind, 'retention');
      assert.match(job.id, /^shard-\d:/);
      const done = await waitForJob(url, key, job.id);
      assert.equal(done.progress, 100);
      assert.equal(done.partition, job.partition);
      assert.equal(typeof done.result.events, 'number');
      assert.ok(done.finishedAt);
    }
    // Retention asked for right after a tenant is created, before any shard served it: a
    // new tenant's placement takes no new epoch, and a shard that had not read it yet
    // skipped the job as not its partition's owner.
    const fresh = await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant: 'fresh', partitions: 6 } });
    assert.equal(fresh.status, 201, JSON.stringify(fresh.body));
    const freshRetention = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant: 'fresh' } });
    assert.equal(freshRetention.body.jobs.length, 6);
    for (const job of freshRetention.body.jobs) {
      const done = await waitForJob(url, key, job.id);
      assert.equal(typeof done.result.events, 'number', `${job.id} on ${job.shard}: ${JSON.stringify(done.result)}`);
    }

    // Compaction: one per shard of the topology.
    const compact = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'compact' } });
    assert.equal(compact.status, 202, JSON.stringify(compact.body));
    assert.deepEqual(compact.body.jobs.map((j: { shard: string }) => j.shard).sort(), ['shard-0', 'shard-1', 'shard-2']);
    for (const job of compact.body.jobs) assert.ok(Array.isArray((await waitForJob(url, key, job.id)).result.buckets));

    const listed = await call(url, 'GET', '/v1/admin/jobs?kind=retention&state=completed', { key });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(
      retention.body.jobs.map((j: { id: string }) => j.id).filter((id: string) => !listed.body.jobs.some((l: { id: string }) => l.id === id)),
      [],
      'every retention job is listed completed',
    );
    assert.ok(listed.body.jobs.every((j: { kind: string; state: string }) => j.kind === 'retention' && j.state === 'completed'));
    assert.equal((await call(url, 'GET', '/v1/admin/jobs?limit=2', { key })).body.jobs.length, 2);
    assert.equal((await call(url, 'GET', '/v1/admin/jobs/shard-0:no-such-job', { key })).status, 404);
    assert.equal((await call(url, 'GET', '/v1/admin/jobs', { key: created.body.apiKey })).status, 403, 'a tenant key may not list jobs');

    // A backup: one id, one job per shard; listed complete with each shard's position.
    const backup = await call(url, 'POST', '/v1/admin/backups', { key });
    assert.equal(backup.status, 202, JSON.stringify(backup.body));
    assert.match(backup.body.id, /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$/);
    assert.equal(backup.body.jobs.length, 3);
    for (const job of backup.body.jobs) assert.equal((await waitForJob(url, key, job.id)).result.backup, backup.body.id);
    const backups = await call(url, 'GET', '/v1/admin/backups', { key });
    assert.equal(backups.status, 200, JSON.stringify(backups.body));
    const [latest] = backups.body.backups;
    assert.equal(latest.id, backup.body.id);
    assert.equal(latest.complete, true);
    assert.deepEqual(latest.shards.map((s: { shard: string }) => s.shard), ['shard-0', 'shard-1', 'shard-2']);
    assert.ok(latest.shards.some((s: { position: string }) => BigInt(s.position) > 0n), 'a shard holding events backed them up to a position above 0');
    assert.ok(existsSync(join(work, '.skein', 'shard-0', 'backups', backup.body.id, 'manifest.json')), 'the backup is on disk beside the shard data');

    // The sweep's own runs, listed as jobs of their shard.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const swept = (await call(url, 'GET', '/v1/admin/jobs?kind=compact&state=completed&limit=1000', { key })).body.jobs.filter((j: { id: string }) => /^shard-\d:timer-\d+-compact$/.test(j.id));
      if (swept.length > 0) {
        assert.ok(Array.isArray(swept[0].result.buckets) || swept[0].result.skipped === 'held', JSON.stringify(swept[0]));
        assert.equal((await call(url, 'GET', `/v1/admin/jobs/${swept[0].id}`, { key })).body.id, swept[0].id);
        break;
      }
      assert.ok(Date.now() < deadline, 'a timer run of compaction is listed within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await stopNpmStart(run);
    await dir.remove();
  }
});
