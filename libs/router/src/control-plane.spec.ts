import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { SkeinError, isSkeinError, supersedes, type ControlRecord } from '@skein/protocol';
import { startRedis, type RedisServer } from '@skein/testing';
import { CONTROL } from './control-keys.ts';
import { createControlPlane, type ControlPlane } from './control-plane.ts';
import type { ControlPeers, ShardAddress } from './rebuilder.ts';
import { createRegistry, type Registry } from './registry.ts';
import { createRouterTopology, type RouterTopology } from './topology.ts';
import { createRedisControlStore } from './redis-control-store.ts';

// The shards' side is stood in for by in-memory copies that apply the same merge rule
// (the shard's LMDB store is covered by libs/shard/src/control-records.spec.ts, the
// whole path by test/e2e/fault/redis-loss.spec.ts). Redis is a real redis-server.
interface MemoryShard extends ShardAddress {
  records: Map<string, ControlRecord>;
  down: boolean;
  reads: number;
}

function memoryShards(n: number): MemoryShard[] {
  return Array.from({ length: n }, (_, i) => ({ id: `s${i}`, url: `http://s${i}`, records: new Map(), down: false, reads: 0 }));
}

function peersOf(list: MemoryShard[]): ControlPeers {
  const byId = (s: ShardAddress) => list.find((m) => m.id === s.id)!;
  const reach = (s: ShardAddress) => {
    const m = byId(s);
    if (m.down) throw new SkeinError('UNAVAILABLE', `${m.id} is down`, { retryAfter: 1 });
    return m;
  };
  return {
    members: async () => list,
    candidates: () => list,
    async read(s) {
      const m = reach(s);
      m.reads++;
      return [...m.records.values()];
    },
    async write(s, records) {
      const m = reach(s);
      for (const r of records) if (supersedes(r, m.records.get(r.key))) m.records.set(r.key, r);
    },
  };
}

interface Router {
  redis: Redis;
  control: ControlPlane;
  registry: Registry;
  topology: RouterTopology;
  close(): void;
}

let server: RedisServer;
const routers: Router[] = [];
before(async () => {
  server = await startRedis();
});
after(async () => {
  for (const r of routers) r.close();
  await server.stop();
});

async function router(shards: MemoryShard[], peers: ControlPeers = peersOf(shards)): Promise<Router> {
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  redis.on('error', () => undefined);
  await new Promise((r) => redis.once('ready', r));
  const control = createControlPlane({ store: createRedisControlStore({ redis }), peers }, { waitForRebuildMs: 2000 });
  const topology = createRouterTopology({ store: createRedisControlStore({ redis }) });
  const registry = createRegistry({ store: createRedisControlStore({ redis }), adminKey: 'a'.repeat(40), control });
  const r = { redis, control, registry, topology, close: () => (control.close(), redis.disconnect()) };
  routers.push(r);
  return r;
}

const flushall = async (r: Router) => void (await r.redis.flushall());
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isSkeinError(e) ? e.code : String(e)));

test('after FLUSHALL, tenants, keys and topology come back from a majority of shards; a revoked key stays revoked even where one shard missed the revocation', async () => {
  await (await router([])).redis.flushall();
  const shards = memoryShards(3);
  const a = await router(shards);
  await a.topology.ensureShards(shards.map(({ id, url }) => ({ id, url })), a.control);
  await a.topology.place(['acme~0', 'acme~1'], a.control);
  const created = await a.registry.createTenant({ tenant: 'acme', partitions: 2, quota: { eventsPerSecond: 50 } });
  const kept = await a.registry.createKey('acme');
  const revoked = await a.registry.createKey('acme');
  // s0 is down while the key is revoked: recorded on s1 and s2 only.
  shards[0]!.down = true;
  assert.equal(await a.registry.deleteKey('acme', revoked.keyId), true);
  shards[0]!.down = false;
  const placementsBefore = a.topology.view!.topology.placements;
  const versionBefore = Number(await a.redis.get(CONTROL.version));

  await flushall(a);
  // A second router that never saw the tenant: after the rebuild it reads everything afresh.
  const b = await router(shards);
  const tenantOf = async (apiKey: string) => {
    const p = await b.registry.authenticate(apiKey);
    return p?.kind === 'tenant' ? p.tenant : p;
  };
  assert.equal(await tenantOf(created.apiKey), 'acme');
  assert.equal(await tenantOf(kept.apiKey), 'acme');
  assert.equal(await b.registry.authenticate(revoked.apiKey), null, 'the revocation recorded on a majority wins over the stale copy');
  assert.deepEqual(await b.registry.getTenant('acme').then((t) => t && { partitions: t.partitions, quota: t.quota }), { partitions: 2, quota: { eventsPerSecond: 50 } });
  assert.deepEqual((await b.topology.refresh()).topology.placements, placementsBefore);
  assert.equal(await code(b.registry.createTenant({ tenant: 'acme', partitions: 4 })), 'TENANT_EXISTS');
  assert.ok(Number(await b.redis.get(CONTROL.version)) >= versionBefore, 'versions never go back');
  // The repair gave the stale shard the tombstone.
  assert.ok([...shards[0]!.records.values()].some((r) => r.deleted), 's0 was repaired');
});

test('while Redis has no marker and a majority of shards cannot be read, lookups fail with UNAVAILABLE, never "unknown key" or "no such tenant"', async () => {
  await (await router([])).redis.flushall();
  const shards = memoryShards(3);
  const a = await router(shards);
  await a.topology.ensureShards(shards.map(({ id, url }) => ({ id, url })), a.control);
  const created = await a.registry.createTenant({ tenant: 'beta' });
  await flushall(a);
  shards[0]!.down = true;
  shards[1]!.down = true;
  const b = await router(shards);
  assert.equal(await code(b.registry.authenticate(created.apiKey)), 'UNAVAILABLE');
  assert.equal(await code(b.registry.getTenant('beta')), 'UNAVAILABLE');
  assert.equal(await code(b.registry.createTenant({ tenant: 'beta', partitions: 3 })), 'UNAVAILABLE');
  shards[1]!.down = false;
  assert.equal((await b.registry.authenticate(created.apiKey))?.kind, 'tenant');
});

test('a change is acknowledged only once a majority of shards stored it', async () => {
  await (await router([])).redis.flushall();
  const shards = memoryShards(3);
  const a = await router(shards);
  await a.topology.ensureShards(shards.map(({ id, url }) => ({ id, url })), a.control);
  shards[0]!.down = true;
  await a.registry.createTenant({ tenant: 'gamma' });
  shards[1]!.down = true;
  const err = await a.registry.createKey('gamma').then(() => null, (e: unknown) => e);
  assert.ok(isSkeinError(err, 'UNAVAILABLE'), String(err));
  assert.equal(err.details.outcome, 'unknown');
  // A revocation that could not be recorded is finished by its retry.
  shards[1]!.down = false;
  const k = await a.registry.createKey('gamma');
  shards[1]!.down = true;
  assert.equal(await code(a.registry.deleteKey('gamma', k.keyId)), 'UNAVAILABLE');
  assert.equal(await a.registry.authenticate(k.apiKey), null, 'revoked in Redis at once');
  const tombstoned = (s: MemoryShard) => [...s.records.values()].some((r) => r.deleted);
  assert.deepEqual(shards.map(tombstoned), [false, false, true], 'sent to every shard reachable, which is not a majority');
  shards[1]!.down = false;
  assert.equal(await a.registry.deleteKey('gamma', k.keyId), true, 'the retry records the tombstone');
  assert.deepEqual(shards.map(tombstoned), [false, true, true]);
  assert.equal(await a.registry.deleteKey('gamma', k.keyId), false, 'then the key is gone: 404');
});

test('a shard joining is given every record from a majority of the members, though no one member holds them all; with fewer than a majority answering it is given nothing', async () => {
  await (await router([])).redis.flushall();
  const shards = memoryShards(5);
  const members = shards.slice(0, 3);
  const a = await router(shards, { ...peersOf(shards), members: async () => members });
  await a.topology.ensureShards(members.map(({ id, url }) => ({ id, url })), a.control);
  shards[0]!.down = true;
  await a.registry.createTenant({ tenant: 'delta' });
  shards[0]!.down = false;
  shards[2]!.down = true;
  await a.registry.createKey('delta');
  shards[2]!.down = false;
  const keys = (s: MemoryShard) => [...s.records.keys()].sort();
  assert.notDeepEqual(keys(shards[0]!), keys(shards[2]!), 'no member was given every change');

  const joiner = shards[3]!;
  assert.deepEqual(await a.control.replicate([joiner]), [joiner]);
  const merged = [...new Set([...keys(shards[0]!), ...keys(shards[2]!)])].sort();
  assert.deepEqual(keys(joiner), merged);
  assert.equal(merged.filter((key) => key.startsWith('apikey/')).length, 2, 'the tenant key and the minted one');

  shards[1]!.down = true;
  shards[2]!.down = true;
  assert.deepEqual(await a.control.replicate([shards[4]!]), [], 'one of three members answered: not a majority');
  assert.equal(shards[4]!.records.size, 0);
});

test('one router rebuilds at a time, and caches of every router follow the new epoch', async () => {
  await (await router([])).redis.flushall();
  const shards = memoryShards(3);
  const a = await router(shards);
  const b = await router(shards);
  await a.topology.ensureShards(shards.map(({ id, url }) => ({ id, url })), a.control);
  await a.registry.createTenant({ tenant: 'delta', partitions: 2 });
  assert.equal((await b.registry.getTenant('delta'))?.partitions, 2);
  const markerBefore = b.control.marker;
  await flushall(a);
  const readsBefore = shards.map((s) => s.reads);
  b.control.observe(null);
  a.control.observe(null);
  const [ma, mb] = await Promise.all([a.control.ready(), b.control.ready()]);
  assert.equal(ma, mb);
  assert.notEqual(mb, markerBefore);
  assert.deepEqual(shards.map((s, i) => s.reads - readsBefore[i]!), [1, 1, 1], 'each shard was read by one rebuild only');
  // b's cached tenant was dropped with the epoch: a tenant Redis no longer holds is not served.
  await b.redis.del('skein:tenant:delta');
  assert.equal(await b.registry.getTenant('delta'), null);
});
