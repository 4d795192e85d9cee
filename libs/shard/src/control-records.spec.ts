import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeControlRecords, type ControlRecord } from '@skein/protocol';
import { startRedis, tempDir, type RedisServer } from '@skein/testing';
import { openControlRecordStore } from './control-records.ts';
import { json, secretHeader, startTestShard } from './testing/test-shard.ts';

const key = (digest: string) => `apikey/${digest.repeat(64).slice(0, 64)}`;
const live = (k: string, version: number, tenant = 'acme'): ControlRecord => ({ key: k, version, value: { tenant, keyId: `k${version}` } });
const tombstone = (k: string, version: number): ControlRecord => ({ key: k, version, deleted: true });

function permutations<T>(list: T[]): T[][] {
  if (list.length <= 1) return [list];
  return list.flatMap((x, i) => permutations([...list.slice(0, i), ...list.slice(i + 1)]).map((rest) => [x, ...rest]));
}

test('the highest version wins, a tombstone wins at an equal version, and an older copy never replaces a newer one (real LMDB)', async () => {
  const dir = await tempDir('skein-control-records-');
  try {
    const store = openControlRecordStore(dir.path);
    const a = key('a');
    assert.equal(await store.apply([live(a, 3)]), 1);
    assert.equal(await store.apply([live(a, 2)]), 0, 'older copy ignored');
    assert.equal(await store.apply([tombstone(a, 5)]), 1);
    assert.equal(await store.apply([live(a, 4)]), 0, 'a revoked key is not brought back by an older live copy');
    assert.equal(await store.apply([live(a, 5)]), 0, 'nor by a live copy at the same version');
    const b = key('b');
    await store.apply([live(b, 7)]);
    assert.equal(await store.apply([tombstone(b, 7)]), 1, 'a tombstone at an equal version wins');
    assert.deepEqual(store.all(), [tombstone(a, 5), tombstone(b, 7)]);
    await store.close();

    // Durable: a reopened store holds the same.
    const reopened = openControlRecordStore(dir.path);
    assert.deepEqual(reopened.all(), [tombstone(a, 5), tombstone(b, 7)]);
    await reopened.close();
  } finally {
    await dir.remove();
  }
});

test('copies applied in any order end in the same state, equal to the pure merge', async () => {
  const t = 'tenant/acme';
  const k = key('c');
  const copies: ControlRecord[][] = [
    [live(k, 2), { key: t, version: 1, value: { partitions: 2 } }],
    [tombstone(k, 4)],
    [live(k, 2), { key: t, version: 1, value: { partitions: 2 } }, { key: 'topology', version: 3, value: { epoch: 1, shards: [] } }],
  ];
  const expected = mergeControlRecords(...copies);
  assert.deepEqual(expected.find((r) => r.key === k), tombstone(k, 4));
  for (const order of permutations(copies)) {
    const dir = await tempDir('skein-control-records-');
    try {
      const store = openControlRecordStore(dir.path);
      for (const list of order) await store.apply(list);
      assert.deepEqual(store.all(), expected);
      assert.deepEqual(mergeControlRecords(...order), expected);
      await store.close();
    } finally {
      await dir.remove();
    }
  }
});

let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

test('the internal route stores records durably and refuses a malformed list whole, storing nothing', async () => {
  const shard = await startTestShard({ redisUrl: redis.url });
  try {
    const headers = { ...json, ...secretHeader };
    const good = live(key('d'), 1);
    const bad = await shard.shard.app.inject({ method: 'POST', url: '/internal/v1/control-records', headers, payload: { records: [good, { key: 'tenant/acme', version: 0, value: {} }] } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().field, 'records[1]');
    const empty = await shard.shard.app.inject({ method: 'GET', url: '/internal/v1/control-records', headers });
    assert.deepEqual(empty.json(), { records: [] });
    const ok = await shard.shard.app.inject({ method: 'POST', url: '/internal/v1/control-records', headers, payload: { records: [good, tombstone(key('e'), 2)] } });
    assert.deepEqual(ok.json(), { stored: 2 });
    const again = await shard.shard.app.inject({ method: 'POST', url: '/internal/v1/control-records', headers, payload: { records: [good] } });
    assert.deepEqual(again.json(), { stored: 0 });
    const all = await shard.shard.app.inject({ method: 'GET', url: '/internal/v1/control-records', headers });
    assert.deepEqual(all.json(), { records: [good, tombstone(key('e'), 2)] });
  } finally {
    await shard.close();
  }
});
