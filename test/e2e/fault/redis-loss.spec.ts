import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName, type Reply } from '../support.ts';
import { startWriters, verifyAcknowledged, type LoadReport } from './load.ts';

// Issue 8, item 5: after FLUSHALL every tenant, key and placement was gone (401s), a new
// tenant got 503 "no topology", routers cached tenants forever, and a Redis down for 5 s
// gave 500s with stack traces. Now the shards keep the control records, a wiped Redis is
// rebuilt from them with no operator, and Redis being away is 503 with Retry-After.

let cluster: Cluster;
let redis: Redis;
before(async () => {
  cluster = await startCluster({ shards: 3, routers: 2 });
  redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
  redis.on('error', () => undefined);
});
after(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createTenant(partitions: number): Promise<{ tenant: string; apiKey: string }> {
  const tenant = tenantName('rl');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { tenant, apiKey: created.body.apiKey };
}

async function mintKey(tenant: string): Promise<{ keyId: string; apiKey: string }> {
  const k = await call(cluster.url, 'POST', `/v1/admin/tenants/${tenant}/keys`, { key: cluster.adminKey });
  assert.equal(k.status, 201, JSON.stringify(k.body));
  return k.body;
}

/** One append to a fresh stream through `router`. */
function probe(router: string, tenant: string, key: string): Promise<Reply> {
  return call(router, 'POST', `/v1/tenants/${tenant}/streams/probe-${Math.random().toString(36).slice(2)}/events`, { key, body: { events: [{ type: 'Probe', data: {} }] } });
}

/** Waits until every (router, tenant, key) appends with 201; returns how long it took. Fails on any 401/403/500 meanwhile. */
async function untilAllAppend(targets: { tenant: string; key: string }[], withinMs: number): Promise<number> {
  const started = Date.now();
  const pending = new Set(cluster.routers.flatMap((r) => targets.map((t) => ({ router: r.url, ...t }))));
  while (pending.size > 0) {
    for (const p of [...pending]) {
      const reply = await probe(p.router, p.tenant, p.key);
      if (reply.status === 201) pending.delete(p);
      else assert.equal(reply.status, 503, `a valid key got ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    assert.ok(Date.now() - started < withinMs, `not every tenant and key appends again within ${withinMs} ms`);
    if (pending.size > 0) await sleep(100);
  }
  return Date.now() - started;
}

function assertOnly503WithRetryAfter(report: LoadReport, what: string): void {
  const errors = Object.entries(report.statuses).filter(([s]) => s !== '201' && s !== '200');
  for (const [status, n] of errors) assert.equal(status, '503', `${what}: ${n} answers with ${status} (${JSON.stringify(report.statuses)}, codes ${JSON.stringify(report.codes)})`);
  assert.equal(report.retryableWithoutRetryAfter, 0, `${what}: 503 without Retry-After`);
}

test('FLUSHALL under load: within 10 s every tenant and key works again, a revoked key stays revoked, no tenant can be re-created, nothing acknowledged is lost', async () => {
  const one = await createTenant(2);
  const two = await createTenant(1);
  const oneKey = await mintKey(one.tenant);
  const twoKey = await mintKey(two.tenant);
  const revoked = await mintKey(one.tenant);
  assert.equal((await call(cluster.url, 'DELETE', `/v1/admin/tenants/${one.tenant}/keys/${revoked.keyId}`, { key: cluster.adminKey })).status, 204);
  assert.equal((await probe(cluster.url, one.tenant, revoked.apiKey)).status, 401);

  const [r0, r1] = cluster.routers.map((r) => r.url) as [string, string];
  const loads = [
    startWriters({ url: r0, key: oneKey.apiKey, tenant: one.tenant, writers: 8, streamPrefix: 'a' }),
    startWriters({ url: r1, key: oneKey.apiKey, tenant: one.tenant, writers: 4, streamPrefix: 'b' }),
    startWriters({ url: r1, key: twoKey.apiKey, tenant: two.tenant, writers: 4, streamPrefix: 'c' }),
  ];
  await sleep(2000);
  assert.ok(loads.every((l) => l.acks.length > 0), 'the writers were appending before the wipe');
  await redis.flushall();

  // A tenant created right after the wipe: the topology and the tenants come back first, never "no topology".
  const fresh = tenantName('rl');
  let created: Reply;
  for (;;) {
    created = await call(r1, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant: fresh } });
    if (created.status !== 503) break;
    assert.doesNotMatch(String(created.body.detail), /no topology/);
    await sleep(100);
  }
  assert.equal(created.status, 201, JSON.stringify(created.body));

  const tookMs = await untilAllAppend(
    [
      { tenant: one.tenant, key: one.apiKey },
      { tenant: one.tenant, key: oneKey.apiKey },
      { tenant: two.tenant, key: two.apiKey },
      { tenant: two.tenant, key: twoKey.apiKey },
      { tenant: fresh, key: created.body.apiKey },
    ],
    10_000,
  );
  await sleep(1500);
  const reports = await Promise.all(loads.map((l) => l.stop()));
  for (const report of reports) {
    assert.equal(report.statuses['401'] ?? 0, 0, 'no valid key was refused');
    assertOnly503WithRetryAfter(report, 'appends across the wipe');
  }

  for (const router of [r0, r1]) {
    const r = await probe(router, one.tenant, revoked.apiKey);
    assert.equal(r.status, 401, `the key revoked before the wipe stays revoked (${router}): ${r.status}`);
    for (const t of [one.tenant, two.tenant, fresh]) {
      const again = await call(router, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant: t, partitions: 4 } });
      assert.equal(again.status, 409, `tenant ${t} re-created after the wipe: ${again.status}`);
      assert.equal(again.body.code, 'TENANT_EXISTS');
    }
  }
  const info = await call(r0, 'GET', `/v1/admin/tenants/${one.tenant}`, { key: cluster.adminKey });
  assert.equal(info.body.partitions, 2);

  await verifyAcknowledged({ url: r0, key: cluster.adminKey, tenant: one.tenant }, { ...reports[0]!, acks: [...reports[0]!.acks, ...reports[1]!.acks] });
  await verifyAcknowledged({ url: r1, key: cluster.adminKey, tenant: two.tenant }, reports[2]!);
  console.log(`# every tenant and key appended again ${tookMs} ms after FLUSHALL; acks: ${reports.map((r) => r.acks.length).join(', ')}`);
});

test('Redis down for 5 s under load: every error is 503 with Retry-After (no 500, no 401), and everything recovers with nothing lost', async () => {
  const t = await createTenant(2);
  const [r0, r1] = cluster.routers.map((r) => r.url) as [string, string];
  const loads = [
    startWriters({ url: r0, key: t.apiKey, tenant: t.tenant, writers: 8, streamPrefix: 'a' }),
    startWriters({ url: r1, key: t.apiKey, tenant: t.tenant, writers: 8, streamPrefix: 'b' }),
  ];
  await sleep(1500);
  await cluster.redis.kill('SIGKILL');
  // Reads, admin calls and a fresh key's first request meanwhile: 503 too, never 500 or 401.
  const other = await call(r0, 'GET', `/v1/tenants/${t.tenant}/events?fromPosition=0`, { key: t.apiKey });
  const admin = await call(r1, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant: tenantName('rl') } });
  const unknownKey = await probe(r0, t.tenant, `sk_${'z'.repeat(40)}`);
  await sleep(5000);
  await cluster.redis.restart();
  for (const reply of [other, admin, unknownKey]) {
    if (reply.status >= 400) {
      assert.equal(reply.status, 503, JSON.stringify(reply.body));
      assert.ok(reply.headers.get('retry-after'), 'Retry-After');
      assert.doesNotMatch(JSON.stringify(reply.body), /\bat \S+:\d+/, 'no stack trace');
    }
  }
  await untilAllAppend([{ tenant: t.tenant, key: t.apiKey }], 15_000);
  await sleep(1000);
  const reports = await Promise.all(loads.map((l) => l.stop()));
  for (const report of reports) assertOnly503WithRetryAfter(report, 'appends while Redis was down');
  assert.ok(reports.some((r) => (r.statuses['503'] ?? 0) > 0), 'the outage was seen by the writers');
  await verifyAcknowledged({ url: r0, key: t.apiKey, tenant: t.tenant }, { ...reports[0]!, acks: [...reports[0]!.acks, ...reports[1]!.acks] });
});

test('a key revoked while one shard is down stays revoked after the shard is back and Redis is wiped and rebuilt', async () => {
  const t = await createTenant(3);
  const keep = await mintKey(t.tenant);
  const doomed = await mintKey(t.tenant);
  const down = cluster.shards[2]!;
  await down.kill('SIGKILL');
  const revoke = await call(cluster.url, 'DELETE', `/v1/admin/tenants/${t.tenant}/keys/${doomed.keyId}`, { key: cluster.adminKey });
  assert.equal(revoke.status, 204, 'recorded on the two shards up: a majority');
  assert.equal((await probe(cluster.url, t.tenant, doomed.apiKey)).status, 401);
  await down.restart();

  await redis.flushall();
  await untilAllAppend([{ tenant: t.tenant, key: keep.apiKey }], 10_000);
  for (const router of cluster.routers) {
    assert.equal((await probe(router.url, t.tenant, doomed.apiKey)).status, 401, 'the shard that missed the revocation does not bring the key back');
  }
});
