import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { partitionsOf } from '@skein/protocol';
import { TOPOLOGY_KEY, balancedPlacements, parseTopology } from '@skein/ring';
import { startRedis, type RedisServer } from '@skein/testing';
import { createControlPlane, type ControlPlane } from './control-plane.ts';
import type { ControlPeers } from './rebuilder.ts';
import { createRedisControlStore } from './redis-control-store.ts';
import { createRouterTopology, type RouterTopology } from './topology.ts';

// Placement runs in Redis (place-partitions-3.lua) against a real redis-server; the
// shards' record copies are not what is tested here: three in-memory copies that accept everything.
const members = ['s0', 's1', 's2'].map((id) => ({ id, url: `http://${id}` }));
const peers: ControlPeers = { members: async () => members, candidates: () => members, read: async () => [], write: async () => {} };

let server: RedisServer;
const clients: Redis[] = [];
const planes: ControlPlane[] = [];
before(async () => {
  server = await startRedis();
});
after(async () => {
  for (const c of planes) c.close();
  for (const r of clients) r.disconnect();
  await server.stop();
});

async function fresh(shards: string[]): Promise<{ topology: RouterTopology; control: ControlPlane; redis: Redis }> {
  const redis = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  clients.push(redis);
  await new Promise((r) => redis.once('ready', r));
  await redis.flushall();
  const store = createRedisControlStore({ redis });
  const control = createControlPlane({ store, peers });
  planes.push(control);
  const topology = createRouterTopology({ store });
  await topology.ensureShards(shards.map((id) => ({ id, url: `http://${id}` })), control);
  return { topology, control, redis };
}

function perShard(topology: RouterTopology, partitions: readonly string[], shards: readonly string[]): number[] {
  const placements = topology.view!.topology.placements ?? {};
  return shards.map((s) => partitions.filter((p) => placements[p] === s).length);
}

const spread = (counts: number[]) => Math.max(...counts) - Math.min(...counts);

test('every tenant lands within ±1 of even per shard, and the cluster stays within ±1 over many tenants', async () => {
  const shards = ['s0', 's1', 's2'];
  const { topology, control } = await fresh(shards);
  const all: string[] = [];
  for (let t = 0; t < 30; t++) {
    const n = 1 + (t % 7);
    const partitions = partitionsOf(`tenant-${t}`, n);
    await topology.place(partitions, control);
    all.push(...partitions);
    const counts = perShard(topology, partitions, shards);
    assert.equal(counts.reduce((a, b) => a + b), n);
    assert.ok(spread(counts) <= 1, `tenant-${t} (${n} partitions) landed ${counts.join('/')}`);
    assert.ok(spread(perShard(topology, all, shards)) <= 1, `cluster after tenant-${t}: ${perShard(topology, all, shards).join('/')}`);
  }
});

test('a 4-partition tenant on 3 shards lands 2/1/1 (never 2/2/0), and 6 partitions land 2/2/2', async () => {
  const shards = ['a', 'b', 'c'];
  for (const [n, name] of [[4, 'four'], [6, 'six']] as const) {
    const { topology, control } = await fresh(shards);
    const partitions = partitionsOf(name, n);
    await topology.place(partitions, control);
    const counts = perShard(topology, partitions, shards).sort();
    assert.deepEqual(counts, n === 4 ? [1, 1, 2] : [2, 2, 2]);
  }
});

test('placements are kept when placed again, and the choice is stored in Redis with a new record version', async () => {
  const { topology, control, redis } = await fresh(['a', 'b', 'c']);
  const partitions = partitionsOf('kept', 5);
  await topology.place(partitions, control);
  const first = JSON.parse((await redis.get(TOPOLOGY_KEY))!) as { placements: Record<string, string>; version: number };
  await topology.place(partitions, control);
  const second = JSON.parse((await redis.get(TOPOLOGY_KEY))!) as { placements: Record<string, string>; version: number };
  assert.deepEqual(second.placements, first.placements);
  assert.equal(second.version, first.version);
  assert.equal(Object.keys(first.placements).length, 5);
});

test('a draining shard takes no new partitions', async () => {
  const { topology, control, redis } = await fresh(['a', 'b', 'c']);
  const stored = JSON.parse((await redis.get(TOPOLOGY_KEY))!) as { shards: { id: string; state?: string }[] };
  stored.shards.find((s) => s.id === 'b')!.state = 'draining';
  await redis.set(TOPOLOGY_KEY, JSON.stringify(stored));
  await topology.refresh();
  const partitions = partitionsOf('busy', 8);
  await topology.place(partitions, control);
  const counts = perShard(topology, partitions, ['a', 'b', 'c']);
  assert.deepEqual(counts, [4, 0, 4]);
});

test('balancedPlacements (the embedded rule) chooses what the Redis script chooses', async () => {
  const shards = ['a', 'b', 'c', 'd'];
  const { topology, control, redis } = await fresh(shards);
  for (let t = 0; t < 12; t++) {
    const before = parseTopology((await redis.get(TOPOLOGY_KEY))!);
    const ring = topology.view!.ring!;
    const partitions = partitionsOf(`same-${t}`, 1 + (t % 6));
    const expected = balancedPlacements(before, partitions.map((p) => ({ p, prefs: ring.preference(p, shards.length) })));
    await topology.place(partitions, control);
    const after = parseTopology((await redis.get(TOPOLOGY_KEY))!);
    assert.deepEqual(Object.fromEntries(partitions.map((p) => [p, after.placements![p]])), expected);
  }
});
