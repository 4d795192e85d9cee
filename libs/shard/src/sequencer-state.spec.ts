import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createOwnership } from './ownership.ts';
import { startRedis, tempDir as tempDirectory } from '@skein/testing';
import { openSequencerStateFile } from './sequencer-state.ts';
import { startTestShard } from './testing/test-shard.ts';

// Tombstones of removed sequencer members (`@skein/sequencer`, "Removed members"):
// persisted with the high-water that covers them, in one write; restored at open.

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'skein-seq-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a tombstone is written with the high-water observed before it, leaves the members, and is restored at open', async (t) => {
  const dir = tempDir(t);
  const file = openSequencerStateFile(dir);
  file.addMembers(['shard-0', 'shard-1', 'shard-2']);
  await file.flush();
  // What the sequencer's removeMembers does: the covering high-water first, then the tombstone.
  file.observe(5000n);
  file.removeMembers(['shard-0']);
  await file.flush();
  const onDisk = JSON.parse(readFileSync(join(dir, 'sequencer-state.json'), 'utf8')) as { highWater: string; members: string[]; removed: string[] };
  assert.equal(onDisk.highWater, '5000');
  assert.deepEqual(onDisk.members, ['shard-1', 'shard-2']);
  assert.deepEqual(onDisk.removed, ['shard-0']);

  // A member list that still names it (a reply before the tombstone) does not bring it back.
  file.addMembers(['shard-0']);
  await file.flush();
  const reopened = openSequencerStateFile(dir);
  assert.deepEqual(reopened.initial.members, ['shard-1', 'shard-2']);
  assert.deepEqual(reopened.initial.removed, ['shard-0']);
  assert.ok(reopened.initial.highWater >= 5000n);
});

test('a tombstone recorded while a write is under way is written right after it, not within the background interval', async (t) => {
  const dir = tempDir(t);
  const file = openSequencerStateFile(dir);
  file.addMembers(['a', 'b']);
  // The write of the members is under way (it awaits the disk): the tombstone comes now.
  file.observe(900n);
  file.removeMembers(['b']);
  const read = (): { highWater?: string; members?: string[]; removed?: string[] } => {
    try {
      return JSON.parse(readFileSync(join(dir, 'sequencer-state.json'), 'utf8'));
    } catch {
      return {};
    }
  };
  // Well within the background interval (1 s), with no flush.
  const until = Date.now() + 400;
  while (Date.now() < until && read().removed?.length !== 1) await new Promise((r) => setTimeout(r, 10));
  const onDisk = read();
  assert.deepEqual([onDisk.highWater, onDisk.members, onDisk.removed], ['900', ['a'], ['b']]);
});

test('a state file written before tombstones existed opens with none', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'sequencer-state.json'), JSON.stringify({ highWater: '12', bound: '20', members: ['a', 'b'] }));
  const file = openSequencerStateFile(dir);
  assert.deepEqual(file.initial, { highWater: 12n, bound: 20n, members: ['a', 'b'], removed: [] });
});

test('ownership hands the topology\'s removed shards, with the counter read at their removal, to its owner on each apply', () => {
  const seen: Record<string, string>[] = [];
  const o = createOwnership({ shardId: 'a', onRemoved: (removed) => seen.push(removed) });
  o.apply({ epoch: 1, shards: [{ id: 'a', url: 'x' }, { id: 'b', url: 'y' }] });
  assert.deepEqual(seen, [], 'nothing removed yet');
  o.apply({ epoch: 2, shards: [{ id: 'a', url: 'x' }], removed: { b: '731' } });
  o.apply({ epoch: 2, shards: [{ id: 'a', url: 'x' }], removed: { b: '731' } });
  assert.deepEqual(seen, [{ b: '731' }, { b: '731' }], 'again on a refresh (the sequencer skips known tombstones)');
  o.apply({ epoch: 1, shards: [{ id: 'a', url: 'x' }, { id: 'b', url: 'y' }] });
  assert.equal(seen.length, 2, 'an older topology is ignored');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a flush writes the high-water and a bound with headroom above it; a reopen reads both', async () => {
  const dir = await tempDirectory('skein-seq-state-');
  try {
    const file = openSequencerStateFile(dir.path);
    assert.equal(file.initial.bound, 0n);
    file.observe(1_000n);
    await file.flush();
    assert.ok(file.persistedBound() >= 1_000n + 16_384n, `bound ${file.persistedBound()} has headroom above 1000`);
    const onDisk = JSON.parse(readFileSync(join(dir.path, 'sequencer-state.json'), 'utf8')) as { highWater: string; bound: string };
    assert.equal(onDisk.highWater, '1000');
    assert.equal(BigInt(onDisk.bound), file.persistedBound());
    // A value under the bound needs no write before a safe point may use it.
    file.observe(2_000n);
    assert.ok(file.persistedBound() > 2_000n);
    await file.flush();
    const again = openSequencerStateFile(dir.path);
    assert.equal(again.initial.highWater, 2_000n);
    assert.ok(again.initial.bound >= 1_000n + 16_384n, 'the bound on disk never goes down');
  } finally {
    await dir.remove();
  }
});

test('a state file written before the bound existed reads with the bound at its high-water', async () => {
  const dir = await tempDirectory('skein-seq-state-');
  try {
    writeFileSync(join(dir.path, 'sequencer-state.json'), JSON.stringify({ highWater: '777', members: ['a'] }));
    const file = openSequencerStateFile(dir.path);
    assert.equal(file.initial.highWater, 777n);
    assert.equal(file.initial.bound, 777n);
    assert.equal(file.persistedBound(), 777n);
  } finally {
    await dir.remove();
  }
});

test('under a steady stream of new high-waters the file is written about once a second, not back to back', async () => {
  const dir = await tempDirectory('skein-seq-state-');
  try {
    const file = openSequencerStateFile(dir.path);
    const path = join(dir.path, 'sequencer-state.json');
    // Each write renames a newly made file over the old one: a new (inode, ctime) is a write.
    const writes = new Set<string>();
    let value = 0n;
    const until = performance.now() + 2_500;
    while (performance.now() < until) {
      value += 100n;
      file.observe(value);
      if (existsSync(path)) {
        const st = statSync(path, { bigint: true });
        writes.add(`${st.ino}:${st.ctimeNs}`);
      }
      await sleep(1);
    }
    // One background write per second (2, perhaps 3 on a slow disk).
    assert.ok(writes.size <= 4, `${writes.size} writes in 2.5 s: the file was rewritten back to back`);
    assert.ok(writes.size >= 1, 'the background writer wrote within the interval');
  } finally {
    await dir.remove();
  }
});

test('after a restart the shard allocates above the bound it persisted, even with the counter below it, and publishes no safe point above the counter', async () => {
  const redis = await startRedis();
  const dir = await tempDirectory('skein-shard-spec-');
  try {
    // A bound far above the counter (as safe points published before a restart may be).
    writeFileSync(join(dir.path, 'sequencer-state.json'), JSON.stringify({ highWater: '0', bound: '500000', members: ['a'] }));
    const t = await startTestShard({ redisUrl: redis.url, dir });
    try {
      // Not at the bound: a safe point above the counter would let a shard that joins later
      // (allocating from the counter) commit below a watermark already read.
      const published = await t.shard.safePoint.refresh();
      const admin = new Redis(redis.url);
      const counter = BigInt((await admin.get('skein:seq:counter')) ?? '0');
      admin.disconnect();
      assert.ok(published <= counter, `safe point ${published} above the counter ${counter}`);
      const outcome = await t.shard.engine.append('p', 's', { expectedVersion: 'no_stream', events: [{ type: 'T', data: { n: 1 } }] });
      assert.ok(outcome.ok, `the append was refused: ${outcome.ok ? '' : outcome.code}`);
      if (outcome.ok) assert.ok(outcome.firstPosition > 500_000n, `position ${outcome.firstPosition} above the persisted bound`);
    } finally {
      await t.close({ keepDir: true });
    }
  } finally {
    await dir.remove();
    await redis.stop();
  }
});
