import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpack } from 'msgpackr';
import type { PositionRange, Sequencer } from '@skein/protocol';
import { createEngine, partitionTransferOf, type EventStore } from './index.ts';

// Two real engines (LMDB files in temp directories) sharing one counter, as two shards
// share the cluster's sequencer.
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function sharedCounter(): Sequencer {
  let counter = 0n;
  return {
    async allocate(count: number, floor: bigint): Promise<PositionRange> {
      if (floor > counter) counter = floor;
      const first = counter + 1n;
      counter += BigInt(count);
      return { first, last: counter };
    },
    current: async () => counter,
    close: async () => {},
  };
}

function engine(sequencer: Sequencer): EventStore {
  const dir = mkdtempSync(join(tmpdir(), 'skein-transfer-'));
  dirs.push(dir);
  return createEngine({ path: dir, sequencer });
}

function ok<T extends { ok: boolean }>(outcome: T): Extract<T, { ok: true }> {
  assert.equal(outcome.ok, true, `expected success, got ${JSON.stringify(outcome, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return outcome as Extract<T, { ok: true }>;
}

const P = 'acme~1';

/** Copies everything of P from `from` to `to` as a move does: the range in small pages, then changes since. */
async function copy(from: EventStore, to: EventStore, sinceCopy: bigint, during: () => Promise<void>): Promise<bigint> {
  const source = partitionTransferOf(from);
  const target = partitionTransferOf(to);
  let cursor = null;
  let pages = 0;
  do {
    const page = source.exportRange(P, cursor, 300);
    target.importPage(P, page.page);
    cursor = page.next;
    if (pages++ === 1) await during();
  } while (cursor !== null);
  assert.ok(pages > 3, 'the copy took several pages');
  let next = sinceCopy;
  for (;;) {
    const changes = source.exportChanges(P, next, { maxEntries: 2, mutable: true });
    target.importPage(P, changes.page);
    if (changes.appends === 0) return next;
    next = changes.next;
  }
}

test('a partition copied by range and then by changes reads the same on the target: events, versions, positions, heads, tombstones, metadata, snapshots, idempotency', async () => {
  const seq = sharedCounter();
  const a = engine(seq);
  const b = engine(seq);
  ok(await a.append('acme~0', 'other', { events: [{ type: 'X', data: 0 }] }));
  const first = ok(await a.append(P, 'order-1', { events: [{ type: 'A', data: 1 }, { type: 'B', data: 2 }], idempotencyKey: 'k1' }));
  for (let i = 0; i < 10; i++) ok(await a.append(P, `s-${i}`, { expectedVersion: 'no_stream', events: [{ type: 'E', data: { i } }] }));
  ok(await a.setMetadata(P, 'order-1', { maxCount: 100 }));
  ok(await a.putSnapshot(P, 'order-1', 2, { total: 3 }));
  ok(await a.deleteStream(P, 's-3', { mode: 'hard' }));
  ok(await a.deleteStream(P, 's-4', { mode: 'soft' }));

  const copiedUpTo = partitionTransferOf(a).highestPosition(P);
  assert.ok(copiedUpTo > 0n);
  // Writes during the copy: an append, a new stream, metadata, a snapshot, a deletion.
  let late: { firstPosition: bigint; lastPosition: bigint } | undefined;
  await copy(a, b, copiedUpTo + 1n, async () => {
    late = ok(await a.append(P, 'order-1', { expectedVersion: 2, events: [{ type: 'C', data: 3 }], idempotencyKey: 'k2' }));
    ok(await a.append(P, 'late', { events: [{ type: 'L', data: 4 }] }));
    ok(await a.setMetadata(P, 'late', { maxAge: 60 }));
    ok(await a.setMetadata(P, 'order-1', { maxCount: 50 }));
    ok(await a.putSnapshot(P, 'order-1', 3, { total: 6 }));
    ok(await a.deleteStream(P, 's-9', { mode: 'soft' }));
  });

  for (const s of ['order-1', 'late', ...Array.from({ length: 10 }, (_, i) => `s-${i}`)]) {
    assert.deepEqual(b.readStream(P, s), a.readStream(P, s), s);
    assert.deepEqual(b.streamState(P, s), a.streamState(P, s), s);
    assert.deepEqual(b.getMetadata(P, s), a.getMetadata(P, s), s);
  }
  assert.deepEqual(b.latestSnapshot(P, 'order-1'), { version: 3, data: { total: 6 } });
  assert.deepEqual(b.getMetadata(P, 'order-1'), { maxCount: 50 });
  assert.equal(b.streamState(P, 's-9').deleted, 'soft');
  assert.deepEqual(b.readPartitionLog(P, { limit: 1000 }), a.readPartitionLog(P, { limit: 1000 }));
  assert.deepEqual(b.streamState(P, 's-3').deleted, 'hard');
  assert.equal(b.readPartitionLog('acme~0').events.length, 0, 'only the partition moved');
  assert.equal(
    b.readShardLog({ limit: 1000 }).events.filter((e) => e.partition === P).length,
    a.readPartitionLog(P, { limit: 1000 }).events.length,
    "the target's shard log holds the partition's events",
  );

  // An idempotent retry on the target answers the original result.
  const retry = ok(await b.append(P, 'order-1', { events: [{ type: 'A', data: 1 }, { type: 'B', data: 2 }], idempotencyKey: 'k1' }));
  assert.deepEqual([retry.firstPosition, retry.lastPosition, retry.firstVersion, retry.duplicate], [first.firstPosition, first.lastPosition, 1, true]);
  const retryLate = ok(await b.append(P, 'order-1', { expectedVersion: 2, events: [{ type: 'C', data: 3 }], idempotencyKey: 'k2' }));
  assert.equal(retryLate.firstPosition, late!.firstPosition);
  // The stream continues at the next version on the target, at a higher position.
  const next = ok(await b.append(P, 'order-1', { expectedVersion: 3, events: [{ type: 'D', data: 5 }] }));
  assert.equal(next.firstVersion, 4);
  assert.ok(next.firstPosition > late!.lastPosition);

  // Dropping the source's copy removes it from its partition and shard logs, nothing else.
  const dropped = await partitionTransferOf(a).dropPartition(P);
  assert.ok(dropped.entries > 0);
  assert.equal(a.readPartitionLog(P).events.length, 0);
  assert.equal(a.streamState(P, 'order-1').version, 0);
  assert.deepEqual(a.readShardLog({ limit: 100 }).events.map((e) => e.partition), ['acme~0']);
  await a.close();
  await b.close();
});

test('an import refuses entries of another partition, writing nothing', async () => {
  const seq = sharedCounter();
  const a = engine(seq);
  const b = engine(seq);
  ok(await a.append('acme~0', 'x', { events: [{ type: 'X', data: 0 }] }));
  const page = partitionTransferOf(a).exportRange('acme~0', null, 1 << 20);
  assert.throws(() => partitionTransferOf(b).importPage(P, page.page), /another partition/);
  assert.equal(b.readShardLog().events.length, 0);
  await a.close();
  await b.close();
});

test("exported heads carry their stream's version, though appends that only advance it write no head", async () => {
  const a = engine(sharedCounter());
  for (let v = 0; v < 4; v++) ok(await a.append(P, 'order-1', { expectedVersion: v, events: [{ type: 'A', data: v }] }));
  const heads = (page: Uint8Array) => (unpack(page) as [unknown[], { v: number }][]).filter(([key]) => key[1] === 'head').map(([, head]) => head.v);
  const transfer = partitionTransferOf(a);
  assert.deepEqual(heads(transfer.exportRange(P, null, 1 << 20).page), [4], 'a peer that trusts stored heads reads version 4');
  assert.deepEqual(heads(transfer.exportChanges(P, 0n, { maxEntries: 10, mutable: false }).page), [4]);
  assert.deepEqual(heads(transfer.exportChanges(P, 0n, { maxEntries: 10, mutable: true }).page), [4, 4]);
  await a.close();
});
