import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startCluster, tempDir, type Cluster, type TempDir } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged } from '../fault/load.ts';
import { waitForJob } from './support.ts';

// Issue 11: 200,000 events appended, 90% removed by retention, then compaction, through the
// router's maintenance route, run by the BullMQ worker in the shard process, while 16 writers
// keep appending. The closed bucket's file shrinks by 70% or more, what remains reads back
// byte-identical, and no acknowledged write is lost.

const DAY = 86_400_000;
const STREAMS = 2000;
const PER_STREAM = 100;
const KEEP = 10;
let cluster: Cluster;
let dirs: TempDir;
before(async () => {
  dirs = await tempDir('skein-compaction-load-');
  cluster = await startCluster({ shards: 1, shardDataDirs: { 'shard-0': `${dirs.path}/shard-0` }, shardEnv: { SKEIN_SHARD_JOB_LOCK_MS: '10000' } });
});
after(async () => {
  delete process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS;
  await cluster?.stop();
  await dirs?.remove();
});

/** The data of event `i` (0-based) of stream `s`: what every read must give back. */
const dataOf = (s: number, i: number) => ({ s, i, text: `${s}:${i}:`.padEnd(160, 'abcdefghij') });

/** Runs `count` tasks with at most `concurrency` in flight. */
async function inParallel(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) await task(i);
  }));
}

test('200,000 events, 90% removed by retention, then compaction while 16 writers append: the bucket file shrinks by 70% or more, what remains reads back byte-identical, no acknowledged event lost', async (t) => {
  const { url, adminKey: key } = cluster;
  const shard = cluster.shards[0]!;
  const tenant = tenantName('cload');
  assert.equal((await call(url, 'POST', '/v1/admin/tenants', { key, body: { tenant } })).status, 201);
  await inParallel(STREAMS, 4, async (s) => {
    const meta = await call(url, 'PUT', `/v1/tenants/${tenant}/streams/s-${s}/metadata`, { key, body: { maxCount: KEEP } });
    assert.equal(meta.status, 204, JSON.stringify(meta.body));
    const res = await call(url, 'POST', `/v1/tenants/${tenant}/streams/s-${s}/events`, { key, body: { expectedVersion: 'no_stream', events: Array.from({ length: PER_STREAM }, (_, i) => ({ type: 'T', data: dataOf(s, i) })) } });
    assert.equal(res.status, 201, JSON.stringify(res.body).slice(0, 300));
  });
  const sample = Array.from({ length: Math.ceil(STREAMS / 97) }, (_, k) => k * 97);
  const read = async (s: number) => {
    const res = await call(url, 'GET', `/v1/tenants/${tenant}/streams/s-${s}?limit=1000`, { key });
    assert.equal(res.status, 200);
    return res;
  };
  const before = new Map<number, string>();
  for (const s of sample) {
    const res = await read(s);
    assert.deepEqual(res.body.events.map((e: { version: number; data: unknown }) => [e.version, e.data]), Array.from({ length: KEEP }, (_, k) => [PER_STREAM - KEEP + 1 + k, dataOf(s, PER_STREAM - KEEP + k)]));
    before.set(s, JSON.stringify(res.body));
  }

  // The shard comes back 40 days later (its engine clock): the bucket written so far is closed once a write lands in a newer one.
  const closed = readdirSync(join(dirs.path, 'shard-0')).filter((d) => d.startsWith('bucket-'));
  assert.equal(closed.length, 1);
  const file = join(dirs.path, 'shard-0', closed[0]!, 'data.mdb');
  const bytesBefore = statSync(file).size;
  process.env.SKEIN_SHARD_TEST_CLOCK_OFFSET_MS = String(40 * DAY);
  await shard.restart();

  const load = startWriters({ url, key, tenant, writers: 16 });
  while (load.acks.length < 50) await new Promise((r) => setTimeout(r, 20));
  const retention = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'retention', tenant } });
  assert.equal(retention.status, 202, JSON.stringify(retention.body));
  const retained = await waitForJob(url, key, retention.body.jobs[0].id, 90_000);
  assert.equal(retained.result.events, STREAMS * (PER_STREAM - KEEP));
  const acksAtCompaction = load.acks.length;
  const compaction = await call(url, 'POST', '/v1/admin/maintenance', { key, body: { kind: 'compact', tenant } });
  assert.equal(compaction.status, 202, JSON.stringify(compaction.body));
  const compacted = await waitForJob(url, key, compaction.body.jobs[0].id, 90_000);
  const ours = compacted.result.buckets.find((b: { bucket: string }) => `bucket-${b.bucket}` === closed[0]);
  assert.equal(ours?.copied, true, JSON.stringify(compacted.result));
  while (load.acks.length < acksAtCompaction + 50) await new Promise((r) => setTimeout(r, 20));
  const report = await load.stop();

  const bytesAfter = statSync(file).size;
  t.diagnostic(`closed bucket ${bytesBefore} -> ${bytesAfter} bytes; ${report.acks.length} writer acknowledgements during maintenance`);
  assert.ok(bytesAfter <= bytesBefore * 0.3, `closed bucket file ${bytesBefore} -> ${bytesAfter} bytes`);
  for (const s of sample) assert.equal(JSON.stringify((await read(s)).body), before.get(s), `stream s-${s} reads back byte-identical`);
  assert.ok(report.acks.length > 100, `writers acknowledged ${report.acks.length} appends during maintenance`);
  await verifyAcknowledged({ url, key, tenant }, report);
});
