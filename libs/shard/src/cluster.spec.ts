// Process-level tests: real shard processes (node --import tsx services/shard/src/main.ts)
// against a real redis-server, each test with its own Redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import type { CommittedAppend } from '@skein/engine';
import { CLUSTER_SECRET_HEADER } from '@skein/protocol';
import { startRedis, startShardProcess, type RedisServer, type ShardProcess } from '@skein/testing';

const agent = new Agent({ connections: 32 });
/** Every shard process of these tests shares it, as the shards of one cluster do. */
const secret = randomBytes(32).toString('base64url');
const secretHeader = { [CLUSTER_SECRET_HEADER]: secret };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An acknowledged append, and the shard that acknowledged it. */
type Acked = CommittedAppend & { shard: string };

async function appendBatch(shard: ShardProcess, appends: { partition: string; streamId: string; events: unknown[] }[]): Promise<{ status: number; body: any }> {
  const res = await request(`${shard.url}/internal/v1/append`, {
    method: 'POST',
    dispatcher: agent,
    headers: { ...secretHeader, 'content-type': 'application/json' },
    body: JSON.stringify({ appends }),
  });
  return { status: res.statusCode, body: await res.body.json() };
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await request(url, { dispatcher: agent, headers: secretHeader });
  return { status: res.statusCode, body: await res.body.json() };
}

/** Appends in a loop from `workers` callers per shard until `stop()`; records every acknowledged append. */
function load(shards: ShardProcess[], workers = 4) {
  const acked: Acked[] = [];
  const failures: number[] = [];
  let running = true;
  const loops = shards.flatMap((shard) =>
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; running; i++) {
        const appends = [0, 1].map((k) => ({ partition: `p-${shard.id}`, streamId: `s-${w}-${k}`, events: [{ type: 'T', data: i }, { type: 'T', data: i }] }));
        let res;
        try {
          res = await appendBatch(shard, appends);
        } catch {
          failures.push(0);
          await sleep(20);
          continue;
        }
        if (res.status !== 200) {
          failures.push(res.status);
          await sleep(20);
          continue;
        }
        for (let k = 0; k < appends.length; k++) {
          const r = res.body.results[k];
          if (r.ok) {
            acked.push({ shard: shard.id, partition: appends[k]!.partition, streamId: appends[k]!.streamId, firstVersion: r.firstVersion, lastVersion: r.lastVersion, firstPosition: BigInt(r.firstPosition), lastPosition: BigInt(r.lastPosition) });
          } else {
            failures.push(r.status);
          }
        }
        if (!res.body.results.every((r: { ok: boolean }) => r.ok)) await sleep(20);
      }
    }),
  );
  return {
    acked,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Every position of the acknowledged appends is unique; per shard they increase in ack order of one stream. */
function assertUniquePositions(acked: Acked[]): void {
  const seen = new Set<bigint>();
  for (const a of acked) {
    for (let p = a.firstPosition; p <= a.lastPosition; p++) {
      assert.ok(!seen.has(p), `position ${p} handed out twice`);
      seen.add(p);
    }
  }
}

/** Reads a shard's whole log. */
async function shardLog(shard: ShardProcess): Promise<{ position: string; partition: string; streamId: string; version: number }[]> {
  const out = [];
  let from = '0';
  for (;;) {
    const page = await getJson(`${shard.url}/internal/v1/log?fromPosition=${from}&limit=1000`);
    assert.equal(page.status, 200);
    out.push(...page.body.events);
    if (page.body.events.length < 1000) return out;
    from = page.body.next;
  }
}

async function withCluster(fn: (redis: RedisServer, shards: ShardProcess[]) => Promise<void>, env: Record<string, string> = {}): Promise<void> {
  const redis = await startRedis();
  const shards: ShardProcess[] = [];
  try {
    shards.push(...(await Promise.all(['a', 'b', 'c'].map((id) => startShardProcess({ id, redisUrl: redis.url, secret, env })))));
    await fn(redis, shards);
  } finally {
    await Promise.all(shards.map((s) => s.stop()));
    await redis.stop();
  }
}

test('three shard processes appending concurrently: positions unique cluster-wide, increasing per shard, versions contiguous per stream', async () => {
  await withCluster(async (_redis, shards) => {
    const l = load(shards);
    await sleep(2000);
    await l.stop();
    assert.ok(l.acked.length > 300, `only ${l.acked.length} appends`);
    assert.deepEqual(l.failures, []);
    assertUniquePositions(l.acked);
    for (const shard of shards) {
      const log = await shardLog(shard);
      const positions = log.map((e) => BigInt(e.position));
      for (let i = 1; i < positions.length; i++) assert.ok(positions[i]! > positions[i - 1]!, 'shard log positions increase');
      const versions = new Map<string, number>();
      for (const e of log) {
        const key = `${e.partition}/${e.streamId}`;
        assert.equal(e.version, (versions.get(key) ?? 0) + 1, `${key} versions contiguous`);
        versions.set(key, e.version);
      }
      const mine = l.acked.filter((a) => a.shard === shard.id);
      assert.equal(log.length, mine.reduce((n, a) => n + a.lastVersion - a.firstVersion + 1, 0));
    }
  });
});

test('Redis killed and restarted wiped while shards append: 503 and nothing written while down, no position reused, appends resume without restarting shards', async () => {
  await withCluster(async (redis, shards) => {
    const l = load(shards, 2);
    await sleep(700);
    await redis.kill();
    await sleep(300);
    const before = await Promise.all(shards.map(async (s) => (await getJson(`${s.url}/internal/v1/info`)).body.highestCommitted));
    const ackedWhileDown = l.acked.length;
    const single = await request(`${shards[0]!.url}/internal/v1/partitions/p-a/streams/down-1/events`, {
      method: 'POST', dispatcher: agent, headers: { ...secretHeader, 'content-type': 'application/json' }, body: JSON.stringify({ events: [{ type: 'T', data: 1 }] }),
    });
    assert.equal(single.statusCode, 503);
    assert.ok(Number(single.headers['retry-after']) >= 1);
    assert.equal(((await single.body.json()) as { code: string }).code, 'UNAVAILABLE');
    for (const s of shards) assert.equal((await getJson(`${s.url}/readyz`)).status, 503);
    await sleep(500);
    const during = await Promise.all(shards.map(async (s) => (await getJson(`${s.url}/internal/v1/info`)).body.highestCommitted));
    assert.deepEqual(during, before, 'nothing committed while Redis is down');
    assert.ok(l.acked.length - ackedWhileDown <= shards.length * 2 * 2, 'at most the batches in flight at the kill were acknowledged after it');
    const highestBefore = l.acked.reduce((m, a) => (a.lastPosition > m ? a.lastPosition : m), 0n);

    await redis.restart({ wipe: true });
    const resumedAt = l.acked.length;
    const deadline = Date.now() + 15_000;
    while (l.acked.length < resumedAt + 100 && Date.now() < deadline) await sleep(50);
    await l.stop();
    assert.ok(l.acked.length >= resumedAt + 100, 'appends resumed after Redis came back empty');
    assert.ok(l.failures.some((s) => s === 503), 'appends failed with 503 while Redis was down');
    assertUniquePositions(l.acked);
    for (const a of l.acked.slice(resumedAt)) assert.ok(a.firstPosition > highestBefore, 'positions after the wipe are above every earlier one');
    for (const s of shards) assert.equal((await getJson(`${s.url}/readyz`)).status, 200);
    const read = await getJson(`${shards[0]!.url}/internal/v1/partitions/p-a/streams/down-1`);
    assert.equal(read.status, 404, 'the refused append wrote nothing');
  });
});

test('a shard SIGKILLed under load keeps every acknowledged append, and its safe point moves past the allocations it abandoned', async () => {
  await withCluster(
    async (redis, shards) => {
      const victim = shards[0]!;
      // A kill lands between two batches now and then (nothing abandoned): kill again
      // until one abandons allocations; every round's acknowledged appends must survive.
      const mine: Acked[] = [];
      let abandoned = false;
      for (let round = 0; round < 5 && !abandoned; round++) {
        const l = load([victim], 6);
        await sleep(round === 0 ? 800 : 200 + Math.random() * 200);
        assert.equal(await victim.kill('SIGKILL'), 'SIGKILL');
        await l.stop();
        mine.push(...l.acked);
        const admin = new Redis(redis.url);
        const counter = BigInt((await admin.get('skein:seq:counter')) ?? '0');
        admin.disconnect();
        await victim.restart();
        // The restarted shard publishes its high-water at once, then the counter from its
        // first refresh, up to the bound on disk and past it after its next state-file write
        // (sequencer-state.ts): within moments, not never.
        let info = (await getJson(`${victim.url}/internal/v1/info`)).body;
        for (const until = Date.now() + 5000; BigInt(info.safePoint) < counter && Date.now() < until; await sleep(50)) {
          info = (await getJson(`${victim.url}/internal/v1/info`)).body;
        }
        assert.ok(BigInt(info.safePoint) >= counter, `safe point ${info.safePoint} ≥ counter ${counter} within 5 s of the restart`);
        abandoned = BigInt(info.highestCommitted) < counter;
      }
      assert.ok(abandoned, 'a kill abandoned allocations (a gap above the committed log)');
      assert.ok(mine.length > 50, `only ${mine.length} appends before the kill`);
      const streams = new Map<string, number>();
      for (const a of mine) streams.set(`${a.partition}/${a.streamId}`, Math.max(streams.get(`${a.partition}/${a.streamId}`) ?? 0, a.lastVersion));
      for (const [key, version] of streams) {
        const [p, s] = key.split('/');
        const read = await getJson(`${victim.url}/internal/v1/partitions/${p}/streams/${s}/state`);
        assert.ok(read.body.version >= version, `${key} has version ${read.body.version}, acknowledged ${version}`);
      }
      const log = await shardLog(victim);
      const positions = new Set(log.map((e) => BigInt(e.position)));
      for (const a of mine) for (let p = a.firstPosition; p <= a.lastPosition; p++) assert.ok(positions.has(p), `acknowledged position ${p} present`);

      // SIGTERM drains: in-flight appends are answered, the process exits 0.
      const drain = load([victim], 4);
      await sleep(300);
      assert.equal(await victim.kill('SIGTERM'), 0);
      await drain.stop();
      await victim.restart();
      const after = new Set((await shardLog(victim)).map((e) => BigInt(e.position)));
      for (const a of drain.acked) for (let p = a.firstPosition; p <= a.lastPosition; p++) assert.ok(after.has(p), `acknowledged position ${p} present after SIGTERM`);
    },
    // Allocations stay uncommitted for a few ms: the kill abandons some.
    { SKEIN_SHARD_TEST_ALLOCATION_DELAY_MS: '10' },
  );
});
