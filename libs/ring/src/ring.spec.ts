import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRing, type Ring } from './index.ts';

/** 100,000 partition ids: plain tenants and numbered partitions of tenants. */
const KEYS = Array.from({ length: 100_000 }, (_, i) => (i % 2 ? `tenant-${i}` : `t${i}~${i % 7}`));

function countByShard(ring: Ring): Map<string, number> {
  const counts = new Map<string, number>(ring.shards.map((s) => [s, 0]));
  for (const key of KEYS) {
    const shard = ring.shardFor(key);
    counts.set(shard, counts.get(shard)! + 1);
  }
  return counts;
}

function assertShares(counts: Map<string, number>, shares: Record<string, number>, tolerance: number) {
  for (const [shard, share] of Object.entries(shares)) {
    const expected = KEYS.length * share;
    const actual = counts.get(shard) ?? 0;
    assert.ok(
      Math.abs(actual - expected) <= expected * tolerance,
      `${shard} holds ${actual} keys, expected ${expected.toFixed(0)} ± ${tolerance * 100}%`,
    );
  }
}

test('spreads 100,000 partitions over 3 shards within ±10% of a third each', () => {
  const counts = countByShard(createRing(['shard-a', 'shard-b', 'shard-c']));
  assertShares(counts, { 'shard-a': 1 / 3, 'shard-b': 1 / 3, 'shard-c': 1 / 3 }, 0.1);
});

test('spreads partitions evenly over 10 shards whose names differ in one character', () => {
  const shards = Array.from({ length: 10 }, (_, i) => `shard-${i}`);
  const counts = countByShard(createRing(shards));
  assertShares(counts, Object.fromEntries(shards.map((s) => [s, 1 / 10])), 0.1);
});

test('adding a 4th shard moves at most 30% of partitions, all of them to the new shard', () => {
  const before = createRing(['shard-a', 'shard-b', 'shard-c']);
  const after = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d']);
  let moved = 0;
  for (const key of KEYS) {
    const from = before.shardFor(key);
    const to = after.shardFor(key);
    if (from === to) continue;
    moved++;
    assert.equal(to, 'shard-d', `${key} moved from ${from} to ${to}, between old shards`);
  }
  assert.ok(moved > 0, 'the new shard received no partitions');
  assert.ok(moved <= KEYS.length * 0.3, `${moved} of ${KEYS.length} partitions moved`);
});

test('removing a shard moves only the partitions it held', () => {
  const before = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d']);
  const after = createRing(['shard-a', 'shard-c', 'shard-d']);
  for (const key of KEYS) {
    const from = before.shardFor(key);
    const to = after.shardFor(key);
    if (from === 'shard-b') assert.notEqual(to, 'shard-b');
    else assert.equal(to, from, `${key} moved from ${from} to ${to} though ${from} stayed`);
  }
});

test('places partitions the same way in every ring instance and for any order of shard names', () => {
  const a = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d']);
  const b = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d']);
  const c = createRing(['shard-d', 'shard-b', 'shard-a', 'shard-c']);
  assert.deepEqual(c.shards, a.shards);
  for (const key of KEYS) {
    const shard = a.shardFor(key);
    assert.equal(b.shardFor(key), shard, key);
    assert.equal(c.shardFor(key), shard, key);
  }
  for (const key of KEYS.slice(0, 1000)) assert.deepEqual(c.preference(key, 4), a.preference(key, 4), key);
});

test('keeps the placement of a pinned set of partitions, which a hash change would move', () => {
  // A change here remaps partitions of running clusters: it needs a data migration, not an update of this table.
  const ring = createRing(['shard-0', 'shard-1', 'shard-2', 'shard-3']);
  const pinned = {
    acme: 'shard-0',
    'acme~1': 'shard-2',
    'acme~2': 'shard-2',
    'acme~3': 'shard-1',
    globex: 'shard-2',
    initech: 'shard-0',
    'umbrella~12': 'shard-2',
    'é~0': 'shard-2',
  };
  for (const [key, shard] of Object.entries(pinned)) assert.equal(ring.shardFor(key), shard, key);
  assert.deepEqual(ring.preference('acme', 4), ['shard-0', 'shard-3', 'shard-1', 'shard-2']);
});

test('preference lists hold distinct shards and start with shardFor', () => {
  const ring = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d', 'shard-e']);
  for (const key of KEYS.slice(0, 5000)) {
    for (const n of [1, 3, 5]) {
      const list = ring.preference(key, n);
      assert.equal(list.length, n);
      assert.equal(new Set(list).size, n, `${key}: ${list.join(', ')}`);
      assert.equal(list[0], ring.shardFor(key), key);
      for (const shard of list) assert.ok(ring.shards.includes(shard), shard);
    }
  }
});

test('preference lists are prefixes of one another, hold every shard at most, and are empty for n = 0', () => {
  const ring = createRing(['shard-a', 'shard-b', 'shard-c']);
  assert.deepEqual(ring.preference('acme', 0), []);
  const all = ring.preference('acme', 3);
  assert.deepEqual(ring.preference('acme', 2), all.slice(0, 2));
  assert.deepEqual(ring.preference('acme', 10), all);
  assert.deepEqual([...all].sort(), ring.shards);
  for (const bad of [-1, 1.5, Number.NaN]) assert.throws(() => ring.preference('acme', bad), RangeError);
});

test('without its first choice, a partition goes to the second shard of its preference list', () => {
  const ring = createRing(['shard-a', 'shard-b', 'shard-c', 'shard-d']);
  for (const key of KEYS.slice(0, 5000)) {
    const [first, second] = ring.preference(key, 2);
    const survivors = createRing(ring.shards.filter((s) => s !== first));
    assert.equal(survivors.shardFor(key), second, key);
  }
});

test('a ring of one shard sends every partition to it', () => {
  const ring = createRing(['only']);
  for (const key of KEYS.slice(0, 100)) assert.equal(ring.shardFor(key), 'only');
  assert.deepEqual(ring.preference('acme', 3), ['only']);
});

test('weighted shards receive partitions in proportion to their weight', () => {
  const ring = createRing(['shard-a', 'shard-b', 'shard-c'], { weights: { 'shard-b': 2 } });
  assertShares(countByShard(ring), { 'shard-a': 0.25, 'shard-b': 0.5, 'shard-c': 0.25 }, 0.1);
});

test('equal weights place partitions exactly as an unweighted ring', () => {
  const plain = createRing(['shard-a', 'shard-b', 'shard-c']);
  const weighted = createRing(['shard-a', 'shard-b', 'shard-c'], { weights: { 'shard-a': 3, 'shard-b': 3, 'shard-c': 3 } });
  for (const key of KEYS.slice(0, 20_000)) assert.equal(weighted.shardFor(key), plain.shardFor(key), key);
});

test('rejects an empty shard list', () => {
  assert.throws(() => createRing([]), /shard list is empty/);
});

test('rejects duplicate shard names, naming the duplicate', () => {
  assert.throws(() => createRing(['shard-a', 'shard-b', 'shard-a']), /duplicate shard name "shard-a"/);
});

test('rejects empty shard names', () => {
  assert.throws(() => createRing(['shard-a', '']), /non-empty strings/);
});

test('rejects weights for unknown shards and weights that are not positive integers', () => {
  assert.throws(() => createRing(['shard-a'], { weights: { 'shard-z': 1 } }), /options\.weights names "shard-z"/);
  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => createRing(['shard-a'], { weights: { 'shard-a': bad } }), /must be a positive integer/);
  }
});
