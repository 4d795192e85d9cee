import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine } from '@skein/engine';
import { isSkeinError } from '@skein/protocol';
import { createOwnership } from './ownership.ts';
import { createWriteGate } from './write-gate.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const topology = (epoch: number, extra: { fenced?: Record<string, string>; fences?: Record<string, number> } = {}) => ({
  epoch,
  shards: [{ id: 'a', url: 'http://a' }, { id: 'b', url: 'http://b' }],
  placements: { p1: 'a', p2: 'a' },
  ...extra,
});

test('a fenced partition takes no write; writes admitted before the fence hold the generation down until they settle', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-gate-'));
  dirs.push(dir);
  const engine = createEngine({ path: dir });
  const ownership = createOwnership({ shardId: 'a' });
  ownership.apply(topology(1));
  const gate = createWriteGate(engine, ownership);
  assert.equal(gate.generation(), 0);

  const before = gate.store.append('p1', 's', { events: [{ type: 'E', data: 1 }] });
  // The fence arrives while that append is pending.
  ownership.apply(topology(2, { fenced: { p1: 'move-1' }, fences: { a: 1 } }));
  assert.equal(gate.generation(), 0, 'a write admitted under generation 0 is pending');
  let settled = false;
  const handshake = gate.settled(1).then(() => (settled = true));
  await assert.rejects(gate.store.append('p1', 's', { events: [{ type: 'E', data: 2 }] }), (err: unknown) => isSkeinError(err, 'NOT_OWNER'));
  await assert.rejects(gate.store.setMetadata('p1', 's', { maxCount: 1 }), (err: unknown) => isSkeinError(err, 'NOT_OWNER'));
  assert.equal((await before).ok, true);
  await handshake;
  assert.equal(settled, true);
  assert.equal(gate.generation(), 1);
  // Other partitions of the shard keep taking writes, under the new generation.
  assert.equal((await gate.store.append('p2', 's', { events: [{ type: 'E', data: 3 }] })).ok, true);
  // Not owned any more after the flip.
  ownership.apply({ ...topology(3, { fences: { a: 1 } }), placements: { p1: 'b', p2: 'a' } });
  await assert.rejects(gate.store.append('p1', 's', { events: [{ type: 'E', data: 4 }] }), (err: unknown) => isSkeinError(err, 'NOT_OWNER'));
  assert.equal(engine.streamState('p1', 's').version, 1);
  await engine.close();
});
