import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Topology } from '@skein/ring';
import { planMoves } from './coordinator.ts';

function topologyOf(shards: string[], placements: Record<string, string>, draining: string[] = []): Topology {
  return { epoch: 1, shards: shards.map((id) => ({ id, url: `http://${id}`, ...(draining.includes(id) ? { state: 'draining' as const } : {}) })), placements };
}

function after(t: Topology, plan: ReturnType<typeof planMoves>): Map<string, number> {
  const placements = { ...t.placements };
  for (const m of plan) {
    assert.equal(placements[m.partition], m.from, `${m.partition} moves from where it is`);
    placements[m.partition] = m.to;
  }
  const counts = new Map<string, number>();
  for (const s of Object.values(placements)) counts.set(s, (counts.get(s) ?? 0) + 1);
  return counts;
}

const evenly = (shards: string[], n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`t~${i}`, shards[i % shards.length]!]));

test('after a shard joins, only partitions that go to it move, and every shard ends within ±1 of even', () => {
  for (const n of [4, 12, 13, 30]) {
    const t = topologyOf(['a', 'b', 'c', 'd'], evenly(['a', 'b', 'c'], n));
    const plan = planMoves(t);
    assert.ok(plan.every((m) => m.to === 'd'), `n=${n}: ${JSON.stringify(plan)}`);
    const counts = [...['a', 'b', 'c', 'd'].map((s) => after(t, plan).get(s) ?? 0)];
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `n=${n}: ${counts.join('/')}`);
    assert.equal(plan.length, Math.floor(n / 4), `n=${n}: no more moves than the new shard's share`);
  }
});

test('a balanced topology plans nothing; a draining shard is emptied', () => {
  assert.deepEqual(planMoves(topologyOf(['a', 'b', 'c'], evenly(['a', 'b', 'c'], 9))), []);
  const t = topologyOf(['a', 'b', 'c'], evenly(['a', 'b', 'c'], 9), ['b']);
  const plan = planMoves(t);
  assert.equal(plan.length, 3);
  assert.ok(plan.every((m) => m.from === 'b' && m.to !== 'b'));
  const counts = after(t, plan);
  assert.equal(counts.get('b'), undefined);
  assert.ok(Math.abs((counts.get('a') ?? 0) - (counts.get('c') ?? 0)) <= 1);
});
