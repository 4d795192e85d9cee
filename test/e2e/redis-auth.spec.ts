// The services against a Redis that requires AUTH (a `requirepass` password, an ACL user)
// and one that speaks TLS only: every client (sequencer, topology, registry, quota, the
// pub/sub subscribers) connects with the credentials in SKEIN_REDIS_URL and the CA in
// SKEIN_REDIS_TLS_CA_FILE; the cluster serves tenants, appends, reads and subscriptions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster, type ClusterOptions } from '@skein/testing';
import { call, readSse, tenantName } from './support.ts';

async function servesTenants(options: ClusterOptions): Promise<void> {
  const cluster = await startCluster(options);
  try {
    const url = new URL(cluster.redis.url);
    assert.ok(url.password.length > 0, 'the services were given a URL with a password');
    for (const s of [...cluster.shards, ...cluster.routers]) {
      assert.ok(!s.output.some((line) => line.includes(url.password)), `${s.name} never logs the Redis password`);
    }

    const tenant = tenantName('redis-auth');
    const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: cluster.adminKey, body: { tenant, partitions: 2 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const key = created.body.apiKey as string;
    const headers = { authorization: `Bearer ${key}` };
    // Subscribed before the appends: the router's subscriber connection and the shards' safe points at work.
    const live = readSse(`${cluster.url}/v1/tenants/${tenant}/events/subscribe?fromPosition=0`, headers, 6);
    for (let i = 0; i < 6; i++) {
      const appended = await call(cluster.url, 'POST', `/v1/tenants/${tenant}/streams/order-${i % 3}/events`, { key, body: { events: [{ type: 'OrderPlaced', data: { i } }] } });
      assert.equal(appended.status, 201, JSON.stringify(appended.body));
    }
    const read = await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/order-0`, { key });
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.events.map((e: { data: { i: number } }) => e.data.i), [0, 3]);
    const log = await call(cluster.url, 'GET', `/v1/tenants/${tenant}/events?fromPosition=0`, { key });
    assert.equal(log.status, 200, JSON.stringify(log.body));
    assert.equal(log.body.events.length, 6);
    assert.equal((await live).length, 6);
    // A second key is minted and announced (registry write and pub/sub), and it works.
    const second = await call(cluster.url, 'POST', `/v1/admin/tenants/${tenant}/keys`, { key: cluster.adminKey });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal((await call(cluster.url, 'GET', `/v1/tenants/${tenant}/streams/order-1`, { key: second.body.apiKey })).status, 200);
    assert.equal((await call(cluster.url, 'GET', '/readyz')).status, 200);
  } finally {
    await cluster.stop();
  }
}

test('a cluster on a redis-server with requirepass: the password travels in SKEIN_REDIS_URL and everything works', { timeout: 120_000 }, async () => {
  await servesTenants({ shards: 2, redis: { password: 'skein-redis-password-0123456789' } });
});

test('a cluster on a TLS-only redis-server with an ACL user: rediss:// with SKEIN_REDIS_TLS_CA_FILE, and everything works', { timeout: 120_000 }, async () => {
  await servesTenants({ shards: 2, redis: { tls: true, user: { name: 'skein', password: 'acl-user-password-0123456789' } } });
});
