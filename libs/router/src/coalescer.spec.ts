import assert from 'node:assert/strict';
import { test } from 'node:test';
import { APPEND_BATCH_LIMITS, isSkeinError, type ShardApi, type ShardAppend, type ShardAppendResult } from '@skein/protocol';
import { parseTopology, viewOf } from '@skein/ring';
import { createAppendCoalescer } from './coalescer.ts';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

// The batching rules only; how a batch is split by bytes for HTTP is shard-client.spec.ts,
// and that a shard accepts what it sends is test/e2e/fault/large-appends.spec.ts.

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

const notAppend = async (): Promise<never> => assert.fail('the coalescer only appends');

/** A shard that records every batch and acknowledges each append in it. */
function recordingShard(answer?: (batch: readonly ShardAppend[]) => Promise<void>) {
  const batches: ShardAppend[][] = [];
  const api: ShardApi = {
    id: 'shard-a',
    async append(batch): Promise<ShardAppendResult[]> {
      batches.push([...batch]);
      await answer?.(batch);
      return batch.map((a) => ({ ok: true, success: { streamId: a.streamId, firstVersion: 1, lastVersion: 1, firstPosition: 1n, lastPosition: 1n } }));
    },
    readStream: notAppend,
    readStreamJson: notAppend,
    streamState: notAppend,
    deleteStream: notAppend,
    getMetadata: notAppend,
    setMetadata: notAppend,
    putSnapshot: notAppend,
    latestSnapshot: notAppend,
    readLog: notAppend,
    safePoint: notAppend,
    info: notAppend,
    controlRecords: notAppend,
    storeControlRecords: notAppend,
  };
  const shards: Shards = { get: () => api, at: () => api, forPartition: notAppend, close: async () => {} };
  return { shards, batches };
}

const item = (i: number): ShardAppend => ({ partition: 't', streamId: `s-${i}`, expectedVersion: 0, events: [{ type: 'A', data: 'x' }] });

test('many small appends travel in batches of at most APPEND_BATCH_LIMITS.maxAppends, each answered with its own result', async () => {
  const { shards, batches } = recordingShard();
  const coalescer = createAppendCoalescer({ shards, topology }, { queueTimeoutMs: 60_000 });
  const answers = await Promise.all(Array.from({ length: 2500 }, (_, i) => coalescer.append(item(i))));
  assert.deepEqual(
    answers.map((a) => a.streamId),
    Array.from({ length: 2500 }, (_, i) => `s-${i}`),
  );
  const sizes = batches.map((b) => b.length);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 2500);
  assert.ok(sizes.length >= 3 && Math.max(...sizes) <= APPEND_BATCH_LIMITS.maxAppends, `batch sizes ${sizes.join(', ')}`);
});

test('an append that waited past the queue timeout behind a stalled shard is answered UNAVAILABLE and never sent', async () => {
  let now = 0;
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  const { shards, batches } = recordingShard(() => stalled);
  const coalescer = createAppendCoalescer({ shards, topology, clock: () => now }, { queueTimeoutMs: 10_000 });
  const first = coalescer.append(item(0));
  await new Promise((r) => setImmediate(r));
  // Queued while the first batch is under way to the stalled shard.
  const second = coalescer.append(item(1));
  await new Promise((r) => setImmediate(r));
  now = 10_001;
  release();
  assert.equal((await first).streamId, 's-0');
  await assert.rejects(second, (err) => isSkeinError(err, 'UNAVAILABLE') && err.details.retryAfter === 1);
  assert.equal(batches.length, 1, 'the stale append was sent');
});

/**
 * Four clients append together (one batch), then each appends again after a pause of its
 * own (0, 5, 10, 15 ms): the sizes of the batches of the second round.
 */
async function secondRound(batchWaitMs: number, comeBack = 4): Promise<number[]> {
  const { shards, batches } = recordingShard(() => new Promise((r) => setTimeout(r, 2)));
  const coalescer = createAppendCoalescer({ shards, topology }, { queueTimeoutMs: 60_000, batchWaitMs });
  const clients = [0, 1, 2, 3];
  await Promise.all(clients.map((c) => coalescer.append(item(c))));
  const before = batches.length;
  await Promise.all(
    clients.slice(0, comeBack).map(async (c) => {
      await new Promise((r) => setTimeout(r, 5 * c));
      await coalescer.append(item(c));
    }),
  );
  return batches.slice(before).map((b) => b.length);
}

test('for a shard taking one batch at a time, clients coming back within batchWaitMs share the next batch; without the wait they split', async () => {
  assert.deepEqual(await secondRound(5_000), [4]);
  assert.ok((await secondRound(0)).length > 1, 'the control: without the wait the round is sent in several batches');
});

test('a batch waits at most batchWaitMs for clients that do not come back', async () => {
  const started = Date.now();
  const round = await secondRound(100, 3);
  assert.equal(round.reduce((a, b) => a + b, 0), 3);
  assert.ok(Date.now() - started < 4_000, 'the wait ends after batchWaitMs, not never');
});
