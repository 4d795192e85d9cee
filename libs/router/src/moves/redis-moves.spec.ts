// The move step script against a real redis-server: a move whose target is drained or
// removed after the move began is refused at the fence and at the flip (reason 'target'),
// so it rolls back and the partition never lands on a shard that is leaving or gone. A
// removal counts placements only; without this check a move toward a removed shard
// flipped onto it.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { Redis } from 'ioredis';
import { TOPOLOGY_KEY } from '@skein/ring';
import { DEFAULT_KEY_PREFIX } from '@skein/sequencer';
import { startRedis, type RedisServer } from '@skein/testing';
import { CONTROL } from '../control-keys.ts';
import { createRedisMoves, type MoveLock, type RedisMoves } from './redis-moves.ts';

let server: RedisServer;
let redis: Redis;
let moves: RedisMoves;
before(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  moves = createRedisMoves(redis);
});
after(async () => {
  redis.disconnect();
  await server.stop();
});

const MARKER = 'marker-1';
const lock: MoveLock = { key: 'test:lock', token: 'run-1' };
const move = { id: 'm1', partition: 't~0', from: 'shard-0', to: 'shard-2' };
const record = { ...move, state: 'copying', createdAt: '', updatedAt: '', copiedBytes: 0, copiedEntries: 0, cursor: null };

beforeEach(async () => {
  await redis.flushall();
  const shards = ['shard-0', 'shard-1', 'shard-2'].map((id) => ({ id, url: `http://${id}` }));
  await redis.set(TOPOLOGY_KEY, JSON.stringify({ epoch: 1, version: 1, shards, placements: { 't~0': 'shard-0', 't~1': 'shard-1' }, fenced: {}, fences: {} }));
  await redis.set(CONTROL.marker, MARKER);
  await redis.set(`${DEFAULT_KEY_PREFIX}marker`, 'seeded');
  await redis.set(`${DEFAULT_KEY_PREFIX}counter`, '100');
  await redis.set(lock.key, lock.token);
  assert.deepEqual((await moves.step(MARKER, 'begin', move, record, lock)).ok, true);
  assert.equal((await moves.step(MARKER, 'save', move, { ...record, state: 'tailing' }, lock)).ok, true);
});

async function placementOf(partition: string): Promise<string> {
  return JSON.parse((await redis.get(TOPOLOGY_KEY))!).placements[partition];
}

test('a target drained after the move began: the fence is refused, the partition stays with its source', async () => {
  const drained = await moves.membership(MARKER, 'drain', 'shard-2', '');
  assert.equal(drained.ok, true);
  const fence = await moves.step(MARKER, 'fence', move, { partition: move.partition }, lock);
  assert.deepEqual(fence, { ok: false, reason: 'target' });
  assert.equal((await moves.step(MARKER, 'rollback', move, { partition: move.partition, reason: 'target' }, lock)).ok, true);
  assert.equal(await placementOf('t~0'), 'shard-0');
});

test('a target removed between the fence and the flip: the flip is refused and the rollback unfences the source', async () => {
  assert.equal((await moves.step(MARKER, 'fence', move, { partition: move.partition }, lock)).ok, true);
  // The target owns nothing yet, so its removal is allowed.
  const removed = await moves.membership(MARKER, 'remove', 'shard-2', '');
  assert.equal(removed.ok, true);
  assert.deepEqual(await moves.step(MARKER, 'flip', move, { partition: move.partition }, lock), { ok: false, reason: 'target' });
  const back = await moves.step(MARKER, 'rollback', move, { partition: move.partition, reason: 'target' }, lock);
  assert.equal(back.ok, true);
  const topology = JSON.parse((await redis.get(TOPOLOGY_KEY))!);
  assert.equal(topology.placements['t~0'], 'shard-0');
  assert.equal(topology.fenced['t~0'], undefined);
});

test('a live target: fence and flip place the partition on it (the check above can pass)', async () => {
  assert.equal((await moves.step(MARKER, 'fence', move, { partition: move.partition }, lock)).ok, true);
  assert.equal((await moves.step(MARKER, 'flip', move, { partition: move.partition }, lock)).ok, true);
  assert.equal(await placementOf('t~0'), 'shard-2');
});
