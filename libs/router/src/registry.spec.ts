import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { isSkeinError, supersedes, type ControlRecord } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { createControlPlane, type ControlPlane } from './control-plane.ts';
import { createRegistry } from './registry.ts';
import { createRouterTopology } from './topology.ts';
import { createRedisControlStore } from './redis-control-store.ts';

/** One shard's copy of the control records, in memory (control-plane.spec.ts covers the rebuild). */
function oneShardControlPlane(redis: Redis): ControlPlane {
  const shard = { id: 'a', url: 'http://a' };
  const records = new Map<string, ControlRecord>();
  return createControlPlane({
    store: createRedisControlStore({ redis }),
    peers: {
      members: async () => [shard],
      candidates: () => [shard],
      read: async () => [...records.values()],
      write: async (_s, list) => {
        for (const r of list) if (supersedes(r, records.get(r.key))) records.set(r.key, r);
      },
    },
  });
}

let server: RedisServer;
let redis: Redis;
before(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

test('API keys are stored as digests only, and a deleted key stops authenticating at once', async () => {
  const registry = createRegistry({ store: createRedisControlStore({ redis }), adminKey: 'a'.repeat(40), control: oneShardControlPlane(redis) });
  const { apiKey } = await registry.createTenant({ tenant: 'acme', partitions: 2 });
  const dump = JSON.stringify(await Promise.all((await redis.keys('*')).map(async (k) => [k, await redis.type(k) === 'hash' ? await redis.hgetall(k) : await redis.get(k)])));
  assert.doesNotMatch(dump, new RegExp(apiKey));
  assert.match(dump, new RegExp(createHash('sha256').update(apiKey).digest('hex')));
  assert.deepEqual(await registry.authenticate(apiKey).then((p) => p && p.kind === 'tenant' && p.tenant), 'acme');
  assert.deepEqual(await registry.authenticate('a'.repeat(40)), { kind: 'admin' });
  assert.equal(await registry.authenticate('b'.repeat(40)), null);
  const second = await registry.createKey('acme');
  assert.ok(await registry.authenticate(second.apiKey));
  assert.equal(await registry.deleteKey('acme', second.keyId), true);
  assert.equal(await registry.authenticate(second.apiKey), null);
  // The guard's synchronous path sees exactly what authenticate's cache holds.
  assert.equal(registry.cachedPrincipal(second.apiKey), undefined);
  assert.deepEqual(registry.cachedPrincipal(apiKey), await registry.authenticate(apiKey));
  assert.equal(registry.cachedPrincipal('b'.repeat(40)), undefined);
  assert.equal(await registry.deleteKey('acme', second.keyId), false);
  await assert.rejects(registry.createTenant({ tenant: 'acme' }), (e: unknown) => isSkeinError(e, 'TENANT_EXISTS'));
  await assert.rejects(registry.createTenant({ tenant: 'x', partitions: 999 }), (e: unknown) => isSkeinError(e, 'VALIDATION_FAILED'));
});

test('requests that miss the key cache together share one store read, and a revoked key stops authenticating at once', async () => {
  const store = createRedisControlStore({ redis });
  let reads = 0;
  const counting = { ...store, readApiKey: (digest: string) => (reads++, store.readApiKey(digest)) };
  const registry = createRegistry({ store: counting, adminKey: 'a'.repeat(40), control: oneShardControlPlane(redis) });
  const { apiKey } = await registry.createTenant({ tenant: 'herd' });
  reads = 0;
  const principals = await Promise.all(Array.from({ length: 8 }, () => registry.authenticate(apiKey)));
  assert.equal(reads, 1);
  for (const p of principals) assert.deepEqual(p && p.kind === 'tenant' && p.tenant, 'herd');
  const second = await registry.createKey('herd');
  const early = registry.authenticate(second.apiKey);
  assert.equal(await registry.deleteKey('herd', second.keyId), true);
  assert.equal(await registry.authenticate(second.apiKey), null);
  await early;
});

test('placements are recorded once; adding a shard bumps the epoch and moves no placed partition', async () => {
  const topology = createRouterTopology({ store: createRedisControlStore({ redis }) });
  const control = oneShardControlPlane(redis);
  await topology.ensureShards([{ id: 'a', url: 'http://a' }, { id: 'b', url: 'http://b' }], control);
  assert.equal(topology.epoch, 1);
  const old = Array.from({ length: 200 }, (_, i) => `p${i}`);
  await topology.place(old, control);
  const before = old.map((p) => topology.view!.ownerOf(p));
  await topology.ensureShards([{ id: 'a', url: 'http://a' }, { id: 'b', url: 'http://b' }, { id: 'c', url: 'http://c' }], control);
  assert.equal(topology.epoch, 2);
  // Another router reading the topology sees the same.
  const otherRedis = new Redis(server.url);
  const other = createRouterTopology({ store: createRedisControlStore({ redis: otherRedis }) });
  const view = await other.refresh();
  assert.deepEqual(old.map((p) => view.ownerOf(p)), before);
  const fresh = Array.from({ length: 60 }, (_, i) => `fresh-${i}`);
  await other.place(fresh, control);
  const onC = fresh.filter((p) => other.view!.ownerOf(p) === 'c').length;
  assert.ok(onC > 5, `new partitions land on the new shard too (${onC} of 60)`);
  await topology.ensureShards([{ id: 'a', url: 'http://a' }], control);
  assert.equal((await topology.refresh()).topology.shards.length, 3, 'no shard is ever removed');
  otherRedis.disconnect();
});
