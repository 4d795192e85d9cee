// A hostile caller who can reach a shard's port: without the cluster secret (or with a
// wrong one) every internal route answers 401 and nothing changes; with it the internal
// API works, and the public API through the router works as before.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLUSTER_SECRET_HEADER } from '@skein/protocol';
import { startCluster, startServiceProcess, type Cluster } from '@skein/testing';
import { assertProblem, call, tenantName, type Reply } from '../support.ts';
import { startWriters, verifyAcknowledged } from './load.ts';

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 2 });
});
after(async () => {
  await cluster?.stop();
});

const events = [{ type: 'OrderPlaced', data: { total: 42 } }];

/** A tenant of one partition with stream `s-1` holding one event; its owner shard's base URL. */
async function seededTenant(): Promise<{ tenant: string; key: string; shardUrl: string }> {
  const tenant = tenantName('auth');
  const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const described = await call(cluster.url, 'GET', `/v1/admin/tenants/${tenant}`, { key: cluster.adminKey });
  const owner = cluster.shards.find((s) => s.name === described.body.placement[tenant]);
  assert.ok(owner, `the owner of ${tenant} is one of the cluster's shards: ${JSON.stringify(described.body)}`);
  const key = created.body.apiKey as string;
  assert.equal((await call(cluster.url, 'POST', `/v1/tenants/${tenant}/streams/s-1/events`, { key, body: { events } })).status, 201);
  return { tenant, key, shardUrl: owner.url };
}

/** Every internal route (and an unknown one), as a caller who knows the paths would try them. */
function internalCalls(partition: string): { method: string; path: string; body?: unknown }[] {
  const stream = `/internal/v1/partitions/${partition}/streams/s-1`;
  return [
    { method: 'POST', path: `${stream}/events`, body: { events } },
    { method: 'POST', path: '/internal/v1/append', body: { appends: [{ partition, streamId: 's-1', events }] } },
    // A write to a tenant that does not exist.
    { method: 'POST', path: '/internal/v1/partitions/no-such-tenant/streams/x/events', body: { events } },
    { method: 'GET', path: stream },
    { method: 'GET', path: `${stream}/state` },
    { method: 'GET', path: `${stream}/metadata` },
    { method: 'PUT', path: `${stream}/metadata`, body: { maxCount: 1 } },
    { method: 'PUT', path: `${stream}/snapshots/1`, body: { total: 0 } },
    { method: 'GET', path: `${stream}/snapshots/latest` },
    { method: 'DELETE', path: `${stream}?mode=hard` },
    { method: 'DELETE', path: stream },
    { method: 'GET', path: `/internal/v1/partitions/${partition}/log` },
    { method: 'GET', path: '/internal/v1/log?fromPosition=0' },
    { method: 'GET', path: '/internal/v1/safe-point' },
    { method: 'GET', path: '/internal/v1/info' },
    { method: 'GET', path: `/internal/v1/subscribe?partition=${partition}&streamId=s-1` },
    { method: 'GET', path: '/internal/v1/no-such-route' },
  ];
}

/** What the router's public API shows of the tenant: the stream, its metadata, its latest snapshot, the tenant log. */
async function publicView(tenant: string, key: string): Promise<unknown> {
  const get = async (path: string) => {
    const r = await call(cluster.url, 'GET', `/v1/tenants/${tenant}${path}`, { key });
    return { status: r.status, body: r.body };
  };
  return {
    stream: await get('/streams/s-1'),
    metadata: await get('/streams/s-1/metadata'),
    snapshot: await get('/streams/s-1/snapshots/latest'),
    log: await get('/events?fromPosition=0'),
  };
}

test('every internal route answers 401 UNAUTHENTICATED without the cluster secret or with a wrong one, and changes nothing', async () => {
  const { tenant, key, shardUrl } = await seededTenant();
  const viewBefore = await publicView(tenant, key);
  const info = () => call(shardUrl, 'GET', '/internal/v1/info', { headers: { [CLUSTER_SECRET_HEADER]: cluster.secret } });
  const infoBefore = await info();
  assert.equal(infoBefore.status, 200);

  const wrongHeaders: Record<string, Record<string, string>> = {
    'no secret': {},
    'a wrong secret': { [CLUSTER_SECRET_HEADER]: 'not-the-cluster-secret-but-as-long-as-it-0' },
    'the secret with a character more': { [CLUSTER_SECRET_HEADER]: `${cluster.secret}x` },
    'an empty secret': { [CLUSTER_SECRET_HEADER]: '' },
    'the secret as a bearer token': { authorization: `Bearer ${cluster.secret}` },
  };
  for (const [label, headers] of Object.entries(wrongHeaders)) {
    for (const c of internalCalls(tenant)) {
      const reply: Reply = await call(shardUrl, c.method, c.path, { headers, ...(c.body !== undefined ? { body: c.body } : {}) });
      assert.doesNotThrow(() => assertProblem(reply, 401, 'UNAUTHENTICATED'), `${c.method} ${c.path} with ${label}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }
  }

  assert.deepEqual(await publicView(tenant, key), viewBefore, 'the stream, its metadata, its snapshots and the tenant log are as they were');
  const infoAfter = await info();
  assert.equal(infoAfter.body.highestCommitted, infoBefore.body.highestCommitted, 'nothing was committed on the shard');
  // The write to a tenant that does not exist left nothing: no shard has it placed, so each refuses it (421).
  const ghost = await Promise.all(cluster.shards.map((s) => call(s.url, 'GET', '/internal/v1/partitions/no-such-tenant/streams/x', { headers: { [CLUSTER_SECRET_HEADER]: cluster.secret } })));
  assert.deepEqual(ghost.map((r) => r.status), [421, 421]);

  // The probes answer without the secret, for orchestrators and Prometheus.
  for (const probe of ['/healthz', '/readyz', '/metrics']) assert.equal((await call(shardUrl, 'GET', probe)).status, 200, probe);
});

test('with the cluster secret the internal API reads, appends and hard-deletes; the public API through the router works as before', async () => {
  const { tenant, key, shardUrl } = await seededTenant();
  const headers = { [CLUSTER_SECRET_HEADER]: cluster.secret };
  const stream = `/internal/v1/partitions/${tenant}/streams`;

  const read = await call(shardUrl, 'GET', `${stream}/s-1`, { headers });
  assert.equal(read.status, 200, JSON.stringify(read.body));
  assert.deepEqual(read.body.events.map((e: { data: unknown }) => e.data), [{ total: 42 }]);
  const appended = await call(shardUrl, 'POST', `${stream}/s-2/events`, { headers, body: { events } });
  assert.equal(appended.status, 201, JSON.stringify(appended.body));
  assert.equal((await call(shardUrl, 'DELETE', `${stream}/s-2?mode=hard`, { headers })).status, 204);
  assertProblem(await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/s-2`, { key }), 410, 'STREAM_DELETED');

  // The router sends the secret on every shard call: appends, reads, metadata, snapshots, logs, admin.
  const appendedPublic = await call(cluster.url, 'POST', `/v1/tenants/${tenant}/streams/s-1/events`, { key, body: { expectedVersion: 1, events } });
  assert.equal(appendedPublic.status, 201, JSON.stringify(appendedPublic.body));
  assert.equal((await call(cluster.url, 'PUT', `/v1/tenants/${tenant}/streams/s-1/metadata`, { key, body: { custom: { owner: 'x' } } })).status, 204);
  assert.deepEqual((await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/s-1/metadata`, { key })).body, { custom: { owner: 'x' } });
  assert.equal((await call(cluster.url, 'PUT', `/v1/tenants/${tenant}/streams/s-1/snapshots/2`, { key, body: { total: 84 } })).status, 204);
  assert.deepEqual((await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/s-1/snapshots/latest`, { key })).body, { version: 2, data: { total: 84 } });
  const publicRead = await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/s-1`, { key });
  assert.equal(publicRead.status, 200);
  assert.equal(publicRead.body.events.length, 2);
  const log = await call(cluster.url, 'GET', `/v1/tenants/${tenant}/events?fromPosition=0`, { key });
  assert.equal(log.status, 200, JSON.stringify(log.body));
  assert.equal(log.body.events.length, 3, 'the seeded event, the one appended directly, and the public append');
  const status = await call(cluster.url, 'GET', '/v1/admin/cluster', { key: cluster.adminKey });
  assert.equal(status.status, 200);
  assert.ok(status.body.shards.every((s: { healthy: boolean }) => s.healthy), JSON.stringify(status.body));
});

test('a router whose cluster secret is not the shards\' answers 503 UNAVAILABLE, never 401 to a client with a good key, and logs why', async () => {
  const { tenant, key } = await seededTenant();
  const router = await startServiceProcess({
    name: 'router-wrong-secret',
    main: fileURLToPath(new URL('../../../services/router/src/main.ts', import.meta.url)),
    listeningMessage: 'router listening',
    env: { SKEIN_ROUTER_PORT: '0', SKEIN_REDIS_URL: cluster.redis.url, SKEIN_ADMIN_KEY: cluster.adminKey, SKEIN_CLUSTER_SECRET: 'a-different-cluster-secret-0123456789', SKEIN_LOG_LEVEL: 'info' },
  });
  try {
    assertProblem(await call(router.url, 'GET', `/v1/tenants/${tenant}/streams/s-1`, { key }), 503, 'UNAVAILABLE');
    assertProblem(await call(router.url, 'POST', `/v1/tenants/${tenant}/streams/s-1/events`, { key, body: { events } }), 503, 'UNAVAILABLE');
    assert.ok(router.output.some((line) => line.includes('SKEIN_CLUSTER_SECRET differs')), router.output.slice(-5).join('\n'));
    assert.ok(!router.output.some((line) => line.includes(cluster.secret)), 'the secret is never logged');
    // Nothing was appended: the right router still sees one event.
    assert.equal((await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/s-1`, { key })).body.events.length, 1);
  } finally {
    await router.kill('SIGKILL');
  }
});

test('unauthenticated internal calls aimed at the streams of 16 writers change none of them: every acknowledgement reads back', async () => {
  const { tenant, key, shardUrl } = await seededTenant();
  const load = startWriters({ url: cluster.url, key, tenant, writers: 16 });
  let hostile = 0;
  let failure: unknown;
  try {
    const until = Date.now() + 2500;
    for (let round = 0; Date.now() < until; round++) {
      // The writers' own streams: appends at the versions they are about to write, hard deletes.
      const stream = `/internal/v1/partitions/${tenant}/streams/w${round % 16}-0`;
      const attempts = [
        call(shardUrl, 'POST', `${stream}/events`, { body: { expectedVersion: 'any', events } }),
        call(shardUrl, 'POST', '/internal/v1/append', { body: { appends: [{ partition: tenant, streamId: `w${round % 16}-1`, events }] }, headers: { [CLUSTER_SECRET_HEADER]: 'x'.repeat(40) } }),
        call(shardUrl, 'DELETE', `${stream}?mode=hard`),
      ];
      for (const reply of await Promise.all(attempts)) {
        assertProblem(reply, 401, 'UNAUTHENTICATED');
        hostile++;
      }
    }
  } catch (err) {
    failure = err;
  }
  const report = await load.stop();
  if (failure) throw failure;
  assert.ok(hostile > 30, `only ${hostile} hostile calls were made`);
  assert.ok(report.acks.length > 50, `only ${report.acks.length} appends were acknowledged`);
  assert.deepEqual(Object.keys(report.statuses).filter((s) => s !== '201'), [], `the writers saw ${JSON.stringify(report.statuses)}`);
  await verifyAcknowledged({ url: cluster.url, key, tenant }, report);
});
