import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partitionOf, partitionsOf } from './index.ts';

test('a single-partition tenant keeps every stream in the partition named after it', () => {
  assert.equal(partitionOf('acme', 1, 'order-1'), 'acme');
  assert.deepEqual(partitionsOf('acme', 1), ['acme']);
});

test('streams of a multi-partition tenant spread over its partitions, stably', () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 8000; i++) {
    const p = partitionOf('acme', 8, `order-${i}`);
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), partitionsOf('acme', 8).sort());
  for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `balanced: ${n}`);
  // Pinned: the mapping may never change for existing tenants.
  assert.deepEqual(['order-1', 'user-42', 'é'].map((s) => partitionOf('acme', 8, s)), ['acme~' + (fnv('order-1') % 8), 'acme~' + (fnv('user-42') % 8), 'acme~' + (fnv('é') % 8)]);
  assert.equal(partitionOf('acme', 8, 'order-1'), 'acme~5');
});

function fnv(s: string) {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}
