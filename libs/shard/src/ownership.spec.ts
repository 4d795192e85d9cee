import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { isSkeinError } from '@skein/protocol';
import { createRing } from '@skein/ring';
import { startRedis, type RedisServer } from '@skein/testing';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY, createOwnership } from './ownership.ts';
import { json, secretHeader, startTestShard } from './testing/test-shard.ts';

const ring = createRing(['a', 'b', 'c']);
/** Partitions the ring gives to `shard`, and to another one. */
function partitionsOf(shard: string, n = 1): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (ring.shardFor(`t${i}`) === shard) out.push(`t${i}`);
  return out;
}
/** Partitions t0..t59 are placed where the ring puts them (as tenant creation records them), then `moved` applies. */
const topology = (epoch: number, moved?: Record<string, string>) => {
  const placements: Record<string, string> = {};
  for (let i = 0; i < 60; i++) placements[`t${i}`] = ring.shardFor(`t${i}`)!;
  return { epoch, shards: ['a', 'b', 'c'].map((id) => ({ id, url: `http://${id}` })), placements: { ...placements, ...moved } };
};

test('without a topology every partition is accepted', () => {
  const o = createOwnership({ shardId: 'a' });
  assert.equal(o.check('anything', undefined), null);
  assert.equal(o.check('anything', 3), null);
});

test('recorded placements decide ownership, and a stale epoch is refused with the current one', () => {
  const o = createOwnership({ shardId: 'a' });
  const [mine] = partitionsOf('a');
  const [theirs] = partitionsOf('b');
  o.apply(topology(4, { [mine!]: 'c' }));
  const moved = o.check(mine, 4);
  assert.ok(isSkeinError(moved, 'NOT_OWNER'));
  assert.equal(moved.status, 421);
  assert.equal(moved.details.epoch, 4);
  assert.ok(isSkeinError(o.check(theirs, 4), 'NOT_OWNER'));
  o.apply(topology(5, { [theirs!]: 'a' }));
  assert.equal(o.check(theirs, 5), null);
  assert.equal(o.check(mine, 5), null);
  const stale = o.check(theirs, 4);
  assert.ok(isSkeinError(stale, 'NOT_OWNER'));
  assert.equal(stale.details.epoch, 5);
  // An older topology never replaces a newer one.
  o.apply(topology(3));
  assert.equal(o.epoch, 5);
});

test('a partition with no recorded placement is refused even where the ring would put it here', () => {
  // Placements are balanced, not the ring's, and a new one takes no new epoch: a shard that
  // fell back to the ring for a placement it has not read yet could accept a partition that
  // its recorded owner accepts too (seen: two writers both won the same version).
  const o = createOwnership({ shardId: 'a' });
  const [unplaced] = partitionsOf('a', 100).filter((p) => Number(p.slice(1)) >= 60);
  o.apply(topology(4));
  assert.ok(isSkeinError(o.check(unplaced, 4), 'NOT_OWNER'));
  o.apply(topology(4, { [unplaced!]: 'a' }));
  assert.equal(o.check(unplaced, 4), null);
});

test('before the topology was read from its source nothing is served', async () => {
  const o = createOwnership({ shardId: 'a', source: { get: async () => { throw new Error('down'); } } });
  assert.ok(isSkeinError(o.check('t', undefined), 'UNAVAILABLE'));
  await o.refresh();
  assert.equal(o.loaded, false);
});

let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

test('a shard answers 421 NOT_OWNER for a partition it does not own or a stale epoch, and follows announced topology changes', async () => {
  const admin = new Redis(redis.url);
  try {
    await admin.set(TOPOLOGY_KEY, JSON.stringify(topology(7)));
    const t = await startTestShard({ redisUrl: redis.url, id: 'a' });
    try {
      const app = t.shard.app;
      const [mine] = partitionsOf('a');
      const [theirs] = partitionsOf('b');
      const append = (p: string, epoch: number) =>
        app.inject({ method: 'POST', url: `/internal/v1/partitions/${p}/streams/s-1/events`, headers: { ...json, ...secretHeader, 'x-skein-epoch': String(epoch) }, payload: { events: [{ type: 'T', data: 1 }] } });

      assert.equal((await append(mine!, 7)).statusCode, 201);
      const refused = await append(theirs!, 7);
      assert.equal(refused.statusCode, 421);
      assert.equal(refused.json().code, 'NOT_OWNER');
      assert.equal(refused.json().epoch, 7);
      const stale = await append(mine!, 6);
      assert.equal(stale.statusCode, 421);
      assert.equal(stale.json().epoch, 7);
      const read = await app.inject({ method: 'GET', url: `/internal/v1/partitions/${theirs}/log`, headers: { ...secretHeader, 'x-skein-epoch': '7' } });
      assert.equal(read.statusCode, 421);

      // A batch refuses only the entries of partitions it does not own.
      const batch = await app.inject({
        method: 'POST', url: '/internal/v1/append', headers: { ...json, ...secretHeader, 'x-skein-epoch': '7' },
        payload: { appends: [{ partition: mine, streamId: 's-2', events: [{ type: 'T', data: 1 }] }, { partition: theirs, streamId: 's-2', events: [{ type: 'T', data: 1 }] }] },
      });
      const results = batch.json().results;
      assert.equal(results[0].ok, true);
      assert.equal(results[1].status, 421);

      // Move `theirs` here, announce it: the shard follows without a restart.
      await admin.set(TOPOLOGY_KEY, JSON.stringify(topology(8, { [theirs!]: 'a' })));
      await admin.publish(TOPOLOGY_CHANNEL, '8');
      const deadline = Date.now() + 3000;
      while (t.shard.ownership.epoch < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal((await append(theirs!, 8)).statusCode, 201);
      assert.equal((await append(theirs!, 7)).statusCode, 421);

      // A caller ahead of the shard makes it re-read the topology at once.
      await admin.set(TOPOLOGY_KEY, JSON.stringify(topology(9)));
      assert.equal((await append(theirs!, 9)).statusCode, 421);
      assert.equal(t.shard.ownership.epoch, 9);
    } finally {
      await t.close();
    }
  } finally {
    await admin.del(TOPOLOGY_KEY);
    admin.disconnect();
  }
});
