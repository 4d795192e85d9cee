import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, type RedisServer } from '@skein/testing';
import { json, secretHeader, startTestShard, type TestShard } from './testing/test-shard.ts';

let redis: RedisServer;
let shards: TestShard[] = [];
before(async () => {
  redis = await startRedis();
  // Random sleeps between allocation and commit widen the window in which another
  // shard's counter read is above a range that is not committed yet.
  shards = await Promise.all(
    ['a', 'b', 'c'].map((id) => startTestShard({ redisUrl: redis.url, id, env: { SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS: '8', SKEIN_SHARD_SAFE_POINT_INTERVAL_MS: '5' } })),
  );
});
after(async () => {
  await Promise.all(shards.map((s) => s.close()));
  await redis?.stop();
});

interface Logged {
  position: string;
  partition: string;
}

test('a reader merging three shards up to the minimum safe point sees every event exactly once, in increasing position order', async () => {
  const acked: bigint[] = [];
  let writing = true;
  const writers = shards.flatMap((s, si) =>
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; writing; i++) {
        const res = await s.shard.app.inject({
          method: 'POST', url: '/internal/v1/append', headers: { ...json, ...secretHeader },
          payload: { appends: Array.from({ length: 1 + (i % 3) }, (_, k) => ({ partition: `p${si}`, streamId: `s-${w}-${k}`, events: [{ type: 'T', data: i }, { type: 'T', data: i }] })) },
        });
        for (const r of res.json().results) {
          assert.equal(r.ok, true, JSON.stringify(r));
          for (let p = BigInt(r.firstPosition); p <= BigInt(r.lastPosition); p++) acked.push(p);
        }
      }
    }),
  );

  const seen: bigint[] = [];
  let cursor = 0n;
  async function readRound(): Promise<void> {
    const points = await Promise.all(shards.map(async (s) => BigInt((await s.shard.app.inject({ method: 'GET', url: '/internal/v1/safe-point', headers: secretHeader })).json().safePoint)));
    const watermark = points.reduce((a, b) => (a < b ? a : b));
    if (watermark < cursor) return;
    const merged: bigint[] = [];
    for (const s of shards) {
      let from = cursor;
      for (;;) {
        const page = (await s.shard.app.inject({ method: 'GET', url: `/internal/v1/log?fromPosition=${from}&toPosition=${watermark}&limit=1000`, headers: secretHeader })).json();
        for (const e of page.events as Logged[]) merged.push(BigInt(e.position));
        if (page.events.length < 1000) break;
        from = BigInt(page.next);
      }
    }
    merged.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    for (const p of merged) {
      assert.ok(seen.length === 0 || p > seen[seen.length - 1]!, `position ${p} after ${seen[seen.length - 1]}`);
      seen.push(p);
    }
    cursor = watermark + 1n;
  }

  const deadline = Date.now() + 4000;
  while (Date.now() < deadline) {
    await readRound();
    await new Promise((r) => setTimeout(r, 2));
  }
  writing = false;
  await Promise.all(writers);
  // Drain: every acknowledged event ends up below the watermark.
  const top = acked.reduce((a, b) => (a > b ? a : b), 0n);
  for (let i = 0; i < 200 && cursor <= top; i++) {
    await readRound();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(acked.length > 2000, `only ${acked.length} events appended`);
  const sortedAcked = [...acked].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  assert.equal(new Set(sortedAcked).size, sortedAcked.length, 'positions are unique across shards');
  assert.deepEqual(seen, sortedAcked);
});
