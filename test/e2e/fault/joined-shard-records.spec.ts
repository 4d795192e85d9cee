import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { CLUSTER_SECRET_HEADER, type ControlRecord } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName, type Reply } from '../support.ts';
import { startWriters, verifyAcknowledged, type Load } from './load.ts';

// A shard that joins the cluster gets every control record (tenants, keys and their
// tombstones, the topology) when it joins, not only at the next rebuild: otherwise a
// Redis wiped once the shards that were there first are gone is rebuilt from shards that
// know no tenant, and every key answers 401. The removed shard also stops being a
// sequencer member: the re-seed after the wipe does not wait for it, so appends resume
// while it stays down, and no global position is handed out twice. Real processes and a
// real redis-server.

const clusters: Cluster[] = [];
const clients: Redis[] = [];
const loads: Load[] = [];
after(async () => {
  // Writers of a failed run stop before their cluster does.
  for (const l of loads) await l.stop();
  for (const r of clients) r.disconnect();
  for (const c of clusters) await c.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin(c: Cluster, method: string, path: string, body?: unknown): Promise<Reply> {
  return call(c.url, method, path, { key: c.adminKey, ...(body !== undefined ? { body } : {}) });
}

async function recordsOn(c: Cluster, url: string): Promise<ControlRecord[]> {
  const res = await fetch(`${url}/internal/v1/control-records`, { headers: { [CLUSTER_SECRET_HEADER]: c.secret } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { records: ControlRecord[] }).records;
}

/** Tenant and key records (tombstones included) as comparable strings; the topology record changes with every step and is left out. */
const objects = (records: ControlRecord[]) =>
  records
    .filter((r) => r.key !== 'topology')
    .map((r) => `${r.key}@${r.version}${r.deleted ? ' deleted' : ''}`)
    .sort();

function probe(c: Cluster, tenant: string, key: string): Promise<Reply> {
  return call(c.url, 'POST', `/v1/tenants/${tenant}/streams/probe-${Math.random().toString(36).slice(2)}/events`, { key, body: { events: [{ type: 'Probe', data: {} }] } });
}

test('shards added to a 1-shard cluster hold every tenant and key record at once; with the first shard drained, removed and killed, a wiped Redis is rebuilt from them: keys work, a revoked key stays revoked, the tenant cannot be re-created, and appends resume without the removed shard', async () => {
  const c = await startCluster({ shards: 1, routerEnv: { SKEIN_ROUTER_MOVE_CLEANUP_GRACE_MS: '300' } });
  clusters.push(c);
  const redis = new Redis(c.redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
  redis.on('error', () => undefined);
  clients.push(redis);

  const tenant = tenantName('joined');
  const created = await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 2 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const kept = await admin(c, 'POST', `/v1/admin/tenants/${tenant}/keys`);
  const revoked = await admin(c, 'POST', `/v1/admin/tenants/${tenant}/keys`);
  assert.equal(kept.status, 201);
  assert.equal((await admin(c, 'DELETE', `/v1/admin/tenants/${tenant}/keys/${revoked.body.keyId}`)).status, 204);
  assert.equal((await probe(c, tenant, kept.body.apiKey)).status, 201);

  const first = (await admin(c, 'GET', '/v1/admin/cluster')).body.shards[0] as { id: string; url: string };
  const held = objects(await recordsOn(c, first.url));
  assert.ok(held.some((r) => r.endsWith(' deleted')), 'the first shard holds the revoked key tombstone');
  // A shard that cannot take the records does not join: nothing changes.
  const unreachable = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: 'shard-9', url: 'http://127.0.0.1:1' });
  assert.equal(unreachable.status, 503, JSON.stringify(unreachable.body));
  assert.equal(unreachable.body.code, 'UNAVAILABLE');
  assert.deepEqual(((await admin(c, 'GET', '/v1/admin/cluster')).body.shards as { id: string }[]).map((s) => s.id), [first.id]);
  const joined: { id: string; url: string }[] = [];
  for (let i = 0; i < 2; i++) {
    const shard = await c.startShard();
    const r = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: shard.id, url: shard.url });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    joined.push(shard);
  }
  // On joining, not at some later rebuild: the joiners hold what the first shard holds.
  for (const s of joined) assert.deepEqual(objects(await recordsOn(c, s.url)), held, `${s.id} holds every tenant and key record`);

  // Writers run through the drain, the removal and the wipe.
  const load = startWriters({ url: c.url, key: kept.body.apiKey, tenant, writers: 8 });
  loads.push(load);
  await sleep(500);

  // The first shard leaves its partitions to the joiners and the cluster, then dies; Redis loses everything.
  const drain = await admin(c, 'POST', `/v1/admin/cluster/shards/${first.id}/drain`);
  assert.equal(drain.status, 202, JSON.stringify(drain.body));
  for (let until = Date.now() + 30_000; ; ) {
    const shards = (await admin(c, 'GET', '/v1/admin/cluster')).body.shards as { id: string; partitions: string[] }[];
    if (shards.find((s) => s.id === first.id)!.partitions.length === 0) break;
    if (Date.now() > until) assert.fail(`the drain did not finish: ${JSON.stringify(shards)}`);
    await sleep(200);
  }
  for (const m of drain.body.moves as { id?: string }[]) {
    for (let until = Date.now() + 20_000; m.id; ) {
      const move: { state: string; cleanup?: string } = (await admin(c, 'GET', `/v1/admin/moves/${m.id}`)).body;
      if (move.state === 'done' && move.cleanup !== 'pending') break;
      if (Date.now() > until) assert.fail(`move ${m.id}: ${JSON.stringify(move)}`);
      await sleep(100);
    }
  }
  const removed = await admin(c, 'DELETE', `/v1/admin/cluster/shards/${first.id}`);
  assert.equal(removed.status, 204, JSON.stringify(removed.body));
  // Its id is retired: a tombstone must never hide a later shard of the same id.
  const readded = await admin(c, 'POST', '/v1/admin/cluster/shards', { id: first.id, url: first.url });
  assert.equal(readded.status, 409, JSON.stringify(readded.body));
  assert.equal(readded.body.code, 'CONFLICT');
  const gone = c.shards.find((s) => s.name === first.id)!;
  await gone.kill('SIGKILL');
  await redis.flushall();

  // Rebuilt from the two joiners alone (the first shard is down): the tenant is back.
  // The router rebuilds within its marker watch (500 ms) and clears its caches as it
  // writes the new marker, so nothing below is answered from a cache of before the wipe.
  const started = Date.now();
  while ((await redis.get('skein:control:marker')) === null) {
    assert.ok(Date.now() - started < 10_000, 'the control plane is not rebuilt within 10 s');
    await sleep(50);
  }
  const rebuiltMs = Date.now() - started;
  await sleep(200);
  const info = await admin(c, 'GET', `/v1/admin/tenants/${tenant}`);
  assert.equal(info.status, 200, `the tenant after the rebuild: ${info.status} ${JSON.stringify(info.body)}`);
  assert.equal(info.body.partitions, 2);
  for (const key of [kept.body.apiKey, created.body.apiKey]) {
    const r = await probe(c, tenant, key);
    // 503 only while the sequencer re-seeds.
    assert.ok(r.status === 201 || r.status === 503, `a valid key got ${r.status} ${JSON.stringify(r.body)} after the rebuild`);
  }
  assert.equal((await probe(c, tenant, revoked.body.apiKey)).status, 401, 'the revoked key stays revoked');
  const again = await admin(c, 'POST', '/v1/admin/tenants', { tenant, partitions: 4 });
  assert.equal(again.status, 409, JSON.stringify(again.body));
  assert.equal(again.body.code, 'TENANT_EXISTS');

  // The removed shard stays down. It is no longer a sequencer member (DESIGN.md, "Removed
  // members"): the re-seed waits only for the two joiners, which hold its tombstone.
  for (;;) {
    const r = await probe(c, tenant, kept.body.apiKey);
    if (r.status === 201) break;
    assert.equal(r.status, 503, `a valid key got ${r.status} ${JSON.stringify(r.body)}`);
    assert.ok(Date.now() - started < 10_000, `the key does not append again within 10 s of the wipe, the removed shard down: ${JSON.stringify(r.body)}`);
    await sleep(100);
  }
  const resumedMs = Date.now() - started;
  assert.equal((await probe(c, tenant, created.body.apiKey)).status, 201);
  assert.deepEqual((await redis.smembers('skein:seq:members')).sort(), joined.map((s) => s.id).sort(), 'the re-seeded sequencer\'s members are the shards that stay');
  assert.ok((await redis.sismember('skein:seq:removed', first.id)) === 1, 'the removed shard\'s tombstone is back in Redis');

  // Through drain, removal and wipe: nothing acknowledged lost, no global position twice.
  await sleep(500);
  loads.splice(loads.indexOf(load), 1);
  const report = await load.stop();
  assert.ok(report.acks.length > 0, 'the writers were acknowledged');
  const verified = await verifyAcknowledged({ url: c.url, key: kept.body.apiKey, tenant }, report);
  console.log(`the control plane was rebuilt from the shards that joined ${rebuiltMs} ms after FLUSHALL; appends resumed ${resumedMs} ms after it with the removed shard down; ${report.acks.length} acknowledged appends verified (${verified.events} events, statuses ${JSON.stringify(report.statuses)})`);
});
