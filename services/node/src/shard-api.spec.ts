// The ShardApi contract, run against both implementations on the same real shard (LMDB
// files, a private redis-server): in-process (what a node's router calls) and over the
// internal HTTP API (what a router calls on a shard elsewhere). Same calls, same answers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { isSkeinError, type AppendSuccess, type ShardApi, type ShardAppendResult } from '@skein/protocol';
import { TOPOLOGY_KEY, parseTopology, viewOf } from '@skein/ring';
import { createShardClient, type RouterTopology, type Shards } from '@skein/router';
import { createShard, loadShardConfig, type Shard } from '@skein/shard';
import { startRedis, tempDir, type RedisServer, type TempDir } from '@skein/testing';

const SECRET = 'contract-cluster-secret-0123456789abcdef';
const SHARD = 'contract-0';

let redis: RedisServer;
let dir: TempDir;
let shard: Shard;
let url: string;
/** The epoch both implementations route by (a router's topology epoch). */
let callerEpoch = 0;
let client: Shards;

before(async () => {
  redis = await startRedis();
  dir = await tempDir('skein-contract-');
  const config = loadShardConfig({ SKEIN_SHARD_ID: SHARD, SKEIN_SHARD_DATA_DIR: dir.path, SKEIN_REDIS_URL: redis.url, SKEIN_CLUSTER_SECRET: SECRET, SKEIN_SHARD_SAFE_POINT_INTERVAL_MS: '20' });
  shard = await createShard(config, { logger: pino({ level: 'silent' }), registry: new Registry() });
  url = await shard.app.listen({ host: '127.0.0.1', port: 0 });
  const view = () => viewOf(parseTopology(JSON.stringify({ epoch: callerEpoch, shards: [{ id: SHARD, url }] })));
  const topology: RouterTopology = {
    get view() {
      return view();
    },
    get epoch() {
      return callerEpoch;
    },
    refresh: async () => view(),
    current: async () => view(),
    place: async () => {},
    ensureShards: async () => {},
    listen: async () => {},
  };
  client = createShardClient({ topology, timeoutMs: 5000, clusterSecret: SECRET });
});

after(async () => {
  await client?.close();
  await shard?.close();
  await dir?.remove();
  await redis?.stop();
});

/** The success of an append result, failing the test otherwise. */
function written(result: ShardAppendResult | undefined): AppendSuccess {
  assert.ok(result?.ok, `append refused: ${result && !result.ok ? result.error.message : 'no result'}`);
  return result.success;
}

const implementations: [string, () => ShardApi][] = [
  ['in-process', () => shard.localApi(() => callerEpoch)],
  ['over HTTP', () => client.get(SHARD)],
];

for (const [name, make] of implementations) {
  describe(`ShardApi ${name}`, () => {
    const p = `t${name === 'in-process' ? 'l' : 'r'}`;
    const event = (data: unknown) => ({ type: 'Happened', data });

    test('a batch is answered in order: written, a conflict with the actual version, an idempotent repeat', async () => {
      const api = make();
      const first = await api.append([
        { partition: p, streamId: 'a-1', expectedVersion: 'no_stream', events: [event(1), event(2)], idempotencyKey: `${p}-k1` },
        { partition: p, streamId: 'b-1', expectedVersion: 0, events: [event(3)] },
      ]);
      assert.equal(first.length, 2);
      const [a, b] = first.map(written);
      assert.equal(a!.streamId, 'a-1');
      assert.equal(a!.lastVersion, 2);
      assert.equal(typeof a!.firstPosition, 'bigint');
      assert.equal(a!.duplicate, undefined);
      // One batch, one allocation: the two appends' positions are contiguous.
      assert.equal(b!.firstPosition, a!.lastPosition + 1n);

      const second = await api.append([
        { partition: p, streamId: 'a-1', expectedVersion: 'no_stream', events: [event(1), event(2)], idempotencyKey: `${p}-k1` },
        { partition: p, streamId: 'b-1', expectedVersion: 0, events: [event(4)] },
      ]);
      const repeat = written(second[0]);
      assert.equal(repeat.duplicate, true);
      assert.equal(repeat.firstPosition, a!.firstPosition);
      const conflict = second[1];
      assert.ok(conflict && !conflict.ok && isSkeinError(conflict.error, 'WRONG_EXPECTED_VERSION') && conflict.error.details.actual === 1);
    });

    test('stream reads, as values and as JSON text, agree; a missing stream is STREAM_NOT_FOUND', async () => {
      const api = make();
      const page = await api.readStream(p, 'a-1', { direction: 'forward', limit: 1 });
      assert.deepEqual(page.events.map((e) => e.data), [1]);
      assert.equal(page.version, 2);
      assert.equal(page.next, 2);
      assert.equal(typeof page.events[0]!.position, 'string');
      const text = await api.readStreamJson(p, 'a-1', { from: 2 });
      assert.equal(text.events, 1);
      const parsed = JSON.parse(Buffer.from(typeof text.json === 'string' ? text.json : text.json).toString('utf8')) as { events: { data: unknown }[]; version: number };
      assert.deepEqual(parsed.events.map((e) => e.data), [2]);
      assert.deepEqual(await api.streamState(p, 'a-1'), { version: 2, deleted: 'no' });
      await assert.rejects(api.readStream(p, 'none-1', {}), (err) => isSkeinError(err, 'STREAM_NOT_FOUND'));
    });

    test('metadata, snapshots and hard deletion', async () => {
      const api = make();
      assert.deepEqual(await api.getMetadata(p, 'a-1'), {});
      await api.setMetadata(p, 'a-1', { maxCount: 1, custom: { owner: name } });
      assert.deepEqual(await api.getMetadata(p, 'a-1'), { maxCount: 1, custom: { owner: name } });
      assert.deepEqual((await api.readStream(p, 'a-1', {})).events.map((e) => e.data), [2]);
      await assert.rejects(api.latestSnapshot(p, 'a-1'), (err) => isSkeinError(err, 'SNAPSHOT_NOT_FOUND'));
      await api.putSnapshot(p, 'a-1', 2, { total: 3 });
      assert.deepEqual(await api.latestSnapshot(p, 'a-1'), { version: 2, data: { total: 3 } });
      await assert.rejects(api.putSnapshot(p, 'a-1', 9, {}), (err) => isSkeinError(err, 'VALIDATION_FAILED'));
      await assert.rejects(api.deleteStream(p, 'b-1', { mode: 'hard', expectedVersion: 7 }), (err) => isSkeinError(err, 'WRONG_EXPECTED_VERSION'));
      await api.deleteStream(p, 'b-1', { mode: 'hard', expectedVersion: 1 });
      assert.equal((await api.streamState(p, 'b-1')).deleted, 'hard');
      await assert.rejects(api.readStream(p, 'b-1', {}), (err) => isSkeinError(err, 'STREAM_DELETED'));
    });

    test('logs in position order, the safe point reaching an acknowledged append, and info', async () => {
      const api = make();
      const [result] = await api.append([{ partition: `${p}~1`, streamId: 'c-1', expectedVersion: 'any', events: [event('c')] }]);
      const last = written(result).lastPosition;
      const reading = await api.safePoint({ atLeast: last, waitMs: 5000 });
      assert.ok(reading.safePoint >= last && reading.highestCommitted >= last, `safe point ${reading.safePoint} reached ${last}`);
      const partitionLog = await api.readLog({ partition: `${p}~1`, fromPosition: 0n, limit: 10 });
      assert.deepEqual(partitionLog.events.map((e) => [e.partition, e.data]), [[`${p}~1`, 'c']]);
      assert.equal(partitionLog.next, last + 1n);
      const whole = await api.readLog({ fromPosition: 0n, toPosition: reading.safePoint, limit: 1000, types: ['Happened'] });
      const positions = whole.events.map((e) => BigInt(e.position));
      assert.deepEqual(positions, [...positions].sort((a, b) => (a < b ? -1 : 1)));
      assert.ok(whole.events.some((e) => e.streamId === 'c-1' && e.partition === `${p}~1`));
      const info = await api.info();
      assert.equal(info.shard, SHARD);
      assert.ok(info.highestCommitted >= last);
    });

    test('control records are stored durably and read back; an older copy is ignored', async () => {
      const api = make();
      const key = `tenant/${p}-ctl`;
      const record = { key, version: 2, value: { partitions: 1 } };
      assert.equal(await api.storeControlRecords([record]), 1);
      assert.equal(await api.storeControlRecords([{ ...record, version: 1, value: { partitions: 9 } }]), 0);
      const held = (await api.controlRecords()).find((r) => r.key === key);
      assert.deepEqual(held?.value, { partitions: 1 });
    });

    test('a caller behind the shard\'s topology epoch is refused NOT_OWNER, for a whole batch and for reads', async () => {
      const api = make();
      const store = new Redis(redis.url);
      try {
        // Only recorded placements make partitions the shard's (ownership.ts).
        const placements = Object.fromEntries(['tl', 'tl~1', 'tr', 'tr~1'].map((partition) => [partition, SHARD]));
        await store.set(TOPOLOGY_KEY, JSON.stringify({ epoch: 50, shards: [{ id: SHARD, url }], placements }));
        await shard.ownership.refresh();
        callerEpoch = 49;
        await assert.rejects(api.append([{ partition: p, streamId: 'late-1', expectedVersion: 'any', events: [event(1)] }]), (err) => isSkeinError(err, 'NOT_OWNER'));
        await assert.rejects(api.readStream(p, 'a-1', {}), (err) => isSkeinError(err, 'NOT_OWNER'));
        callerEpoch = 50;
        const [late] = await api.append([{ partition: p, streamId: 'late-1', expectedVersion: 'any', events: [event(1)] }]);
        written(late);
      } finally {
        // The shard keeps epoch 50 (an older or absent topology is ignored): so do the callers.
        callerEpoch = 50;
        store.disconnect();
      }
    });
  });
}
