import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTopology, viewOf } from './index.ts';

test('a recorded placement wins over the ring, so adding a shard moves no existing partition', () => {
  const before = viewOf({ epoch: 1, shards: [{ id: 'a', url: 'x' }, { id: 'b', url: 'y' }] });
  const placements: Record<string, string> = {};
  for (let i = 0; i < 1000; i++) placements[`t${i}`] = before.ownerOf(`t${i}`)!;
  const after = viewOf({ epoch: 2, shards: [{ id: 'a', url: 'x' }, { id: 'b', url: 'y' }, { id: 'c', url: 'z' }], placements });
  for (let i = 0; i < 1000; i++) assert.equal(after.ownerOf(`t${i}`), placements[`t${i}`]);
  const fresh = Array.from({ length: 3000 }, (_, i) => after.ownerOf(`new${i}`));
  assert.ok(fresh.filter((s) => s === 'c').length > 800, 'new partitions use the new ring');
  assert.equal(after.urlOf('c'), 'z');
});

test('parseTopology refuses malformed topologies and reads cjson empty placements', () => {
  assert.throws(() => parseTopology('{"epoch":-1,"shards":[]}'), /epoch/);
  assert.throws(() => parseTopology('{"epoch":1}'), /shards/);
  assert.deepEqual(parseTopology('{"epoch":1,"shards":[],"placements":[]}').placements, {});
  assert.equal(viewOf(parseTopology('{"epoch":0,"shards":[]}')).ownerOf('x'), null);
});
