import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOwnership } from './ownership.ts';
import { openSequencerStateFile } from './sequencer-state.ts';

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
