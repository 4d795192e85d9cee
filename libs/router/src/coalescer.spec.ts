import assert from 'node:assert/strict';
import { test } from 'node:test';
import { APPEND_BATCH_LIMITS, isSkeinError } from '@skein/protocol';
import { parseTopology, viewOf } from '@skein/ring';
import { createAppendCoalescer, type AppendItem } from './coalescer.ts';
import type { ShardClient, ShardRequest, ShardResponse } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

// The batching rules only; that a shard accepts what they send is the e2e fault case
// test/e2e/fault/large-appends.spec.ts, against real processes.

const view = viewOf(parseTopology(JSON.stringify({ epoch: 1, shards: [{ id: 'shard-a', url: 'http://127.0.0.1:1' }] })));
const topology: RouterTopology = {
  view,
  epoch: 1,
  refresh: async () => view,
  current: async () => view,
  place: async () => {},
  ensureShards: async () => {},
  listen: async () => {},
};

/** A shard that records every batch body and acknowledges each append in it. */
function recordingShard(answer?: (request: ShardRequest) => Promise<void>) {
  const bodies: string[] = [];
  const shards: ShardClient = {
    async call(_shardId, request): Promise<ShardResponse> {
      assert.equal(request.path, '/append');
      assert.notEqual(request.json, undefined);
      const body = typeof request.json === 'string' ? request.json : request.json!.join('');
      bodies.push(body);
      await answer?.(request);
      const { appends } = JSON.parse(body) as { appends: AppendItem[] };
      return { status: 200, body: { results: appends.map((a) => ({ ok: true, status: 201, streamId: a.streamId })) } };
    },
    callAt: async () => assert.fail('appends go through call()'),
    forPartition: async () => assert.fail('appends go through call()'),
    close: async () => {},
  };
  return { shards, bodies };
}

const item = (i: number, dataBytes: number): AppendItem => ({ partition: 't', streamId: `s-${i}`, expectedVersion: 0, events: [{ type: 'A', data: 'x'.repeat(dataBytes) }] });

test('appends of 1 MB arriving together travel in batches no larger than a shard accepts, in order, each answered', async () => {
  const { shards, bodies } = recordingShard();
  const coalescer = createAppendCoalescer({ shards, topology }, { queueTimeoutMs: 60_000 });
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => coalescer.append(item(i, 1_000_000))));
  assert.deepEqual(
    replies.map((r) => r.body.streamId),
    Array.from({ length: 40 }, (_, i) => `s-${i}`),
  );
  assert.ok(bodies.length >= 3, `40 MB in ${bodies.length} batches`);
  for (const body of bodies) assert.ok(Buffer.byteLength(body) <= APPEND_BATCH_LIMITS.maxBytes, `a batch of ${Buffer.byteLength(body)} bytes`);
  assert.deepEqual(
    bodies.flatMap((b) => (JSON.parse(b) as { appends: AppendItem[] }).appends.map((a) => a.streamId)),
    Array.from({ length: 40 }, (_, i) => `s-${i}`),
  );
});

test('many small appends travel in batches of at most APPEND_BATCH_LIMITS.maxAppends', async () => {
  const { shards, bodies } = recordingShard();
  const coalescer = createAppendCoalescer({ shards, topology }, { queueTimeoutMs: 60_000 });
  await Promise.all(Array.from({ length: 2500 }, (_, i) => coalescer.append(item(i, 10))));
  const sizes = bodies.map((b) => (JSON.parse(b) as { appends: unknown[] }).appends.length);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 2500);
  assert.ok(Math.max(...sizes) <= APPEND_BATCH_LIMITS.maxAppends, `batch sizes ${sizes.join(', ')}`);
});

test('an append that waited past the queue timeout behind a stalled shard is answered UNAVAILABLE and never sent', async () => {
  let now = 0;
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  const { shards, bodies } = recordingShard(() => stalled);
  const coalescer = createAppendCoalescer({ shards, topology, clock: () => now }, { queueTimeoutMs: 10_000 });
  const first = coalescer.append(item(0, 10));
  await new Promise((r) => setImmediate(r));
  // Queued while the first batch is under way to the stalled shard.
  const second = coalescer.append(item(1, 10));
  await new Promise((r) => setImmediate(r));
  now = 10_001;
  release();
  assert.equal((await first).status, 201);
  await assert.rejects(second, (err) => isSkeinError(err, 'UNAVAILABLE') && err.details.retryAfter === 1);
  assert.equal(bodies.length, 1, 'the stale append was sent');
});

test('an append whose encoding alone exceeds a batch is PAYLOAD_TOO_LARGE, never sent', async () => {
  const { shards, bodies } = recordingShard();
  const coalescer = createAppendCoalescer({ shards, topology }, { queueTimeoutMs: 60_000 });
  await assert.rejects(coalescer.append(item(0, APPEND_BATCH_LIMITS.maxBytes)), (err) => isSkeinError(err, 'PAYLOAD_TOO_LARGE'));
  assert.equal(bodies.length, 0);
});
