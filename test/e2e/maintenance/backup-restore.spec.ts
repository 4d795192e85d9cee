import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { CLUSTER_SECRET_HEADER } from '@skein/protocol';
import { startCluster, startRedis, startShardProcess, tempDir, type Cluster, type RedisServer, type TempDir } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { placementOf, waitForJob } from './support.ts';

// Issue 11: a backup through the API while appends go on, `skein backup restore` into a new
// data directory, a shard started on it: its log equals the source's up to the backup's
// recorded position, positions, versions and data included.

const SKEIN = fileURLToPath(new URL('../../../libs/client/bin/skein.mjs', import.meta.url));
let cluster: Cluster;
let dirs: TempDir;
let spare: RedisServer | undefined;
before(async () => {
  dirs = await tempDir('skein-backup-');
  cluster = await startCluster({ shards: 2, shardDataDirs: { 'shard-0': `${dirs.path}/shard-0`, 'shard-1': `${dirs.path}/shard-1` } });
});
after(async () => {
  await cluster?.stop();
  await spare?.stop();
  await dirs?.remove();
});

/** A shard's log (every partition) from its internal API, up to `to`, page after page. */
async function shardLog(url: string, secret: string, to: string): Promise<unknown[]> {
  const events: unknown[] = [];
  for (let from = '0'; ; ) {
    const res = await fetch(`${url}/internal/v1/log?fromPosition=${from}&toPosition=${to}&limit=1000`, { headers: { [CLUSTER_SECRET_HEADER]: secret } });
    assert.equal(res.status, 200, await res.clone().text());
    const page = (await res.json()) as { events: unknown[]; next: string };
    if (page.events.length === 0) return events;
    events.push(...page.events);
    from = page.next;
  }
}

test('a backup taken during appends, restored with skein backup restore into a new data dir, serves the source log up to its recorded position', async () => {
  const { url, adminKey: key } = cluster;
  const tenant = tenantName('bak');
  assert.equal((await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant, partitions: 4 } })).status, 201);
  const owners = new Set(Object.values(await placementOf(url, key, tenant)));
  assert.ok(owners.has('shard-0'), 'shard-0 owns a partition of the tenant');

  // PATCH: retention set, then removed; the quota untouched.
  const patched = await call(url, 'PATCH', `/v1/admin/tenants/${tenant}`, { key, body: { retention: { maxAge: 86_400 } } });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.deepEqual(patched.body.retention, { maxAge: 86_400 });
  assert.equal((await call(url, 'PATCH', `/v1/admin/tenants/${tenant}`, { key, body: { partitions: 8 } })).status, 400);
  assert.equal((await call(url, 'PATCH', `/v1/admin/tenants/no-such-${tenant}`, { key, body: { quota: null } })).status, 404);
  assert.deepEqual((await call(url, 'PATCH', `/v1/admin/tenants/${tenant}`, { key, body: { retention: { maxAge: null } } })).body.retention, {});
  assert.deepEqual((await call(url, 'GET', `/v1/admin/tenants/${tenant}`, { key })).body.retention, {});

  let stop = false;
  let acked = 0;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const res = await call(url, 'POST', `/v1/tenants/${tenant}/streams/w${w}-${i % 5}/events`, { key, body: { events: [{ type: 'T', data: { w, i } }, { type: 'T', data: { w, i, second: true } }] } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      acked++;
    }
  });
  while (acked < 200) await new Promise((r) => setTimeout(r, 20));
  const started = await call(url, 'POST', '/v1/admin/backups', { key });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const { id, jobs } = started.body as { id: string; jobs: { id: string; kind: string; shard: string }[] };
  assert.deepEqual(jobs.map((j) => [j.kind, j.shard]).sort(), [['backup', 'shard-0'], ['backup', 'shard-1']]);
  for (const j of jobs) await waitForJob(url, key, j.id);
  const ackedAtBackup = acked;
  while (acked < ackedAtBackup + 100) await new Promise((r) => setTimeout(r, 20));
  stop = true;
  await Promise.all(writers);

  const listed = await call(url, 'GET', '/v1/admin/backups', { key });
  const backup = listed.body.backups.find((b: { id: string }) => b.id === id);
  assert.equal(backup.complete, true, JSON.stringify(listed.body));
  const part = backup.shards.find((s: { shard: string }) => s.shard === 'shard-0');
  assert.ok(BigInt(part.position) > 0n && part.bytes > 0, JSON.stringify(part));

  const restored = `${dirs.path}/restored`;
  const cli = await promisify(execFile)(process.execPath, ['--conditions=skein-source', SKEIN, '--json', 'backup', 'restore', '--backup-dir', `${dirs.path}/shard-0/backups`, '--data-dir', restored, '--id', id]);
  assert.equal(JSON.parse(cli.stdout).highestPosition, part.position);

  spare = await startRedis();
  const shard = await startShardProcess({ id: 'restored', redisUrl: spare.url, dataDir: restored });
  try {
    const source = await shardLog(cluster.shards[0]!.url, cluster.secret, part.position);
    const copy = await shardLog(shard.url, shard.secret, part.position);
    assert.ok(source.length > 0);
    assert.deepEqual(copy, source);
    // The source went on past the backup: the copy holds nothing beyond its position.
    const beyond = String(BigInt(part.position) + 1_000_000n);
    assert.ok((await shardLog(cluster.shards[0]!.url, cluster.secret, beyond)).length > source.length, 'appends went on during and after the backup');
    assert.equal((await shardLog(shard.url, shard.secret, beyond)).length, copy.length);
  } finally {
    await shard.stop();
  }
});
