import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, type EngineOptions, type EventStore } from './index.ts';
import { BloomFilter, hashOf } from './bloom.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);

function open(dir: string, clock: () => number, extra: Partial<EngineOptions> = {}): EventStore {
  return createEngine({ path: dir, bucketSpan: 'hour', clock, maxOpenBuckets: 8, storageReserveBytes: 1024 * 1024, ...extra });
}

const settle = () => new Promise<void>((r) => setImmediate(r));

test('with 120 hour buckets and 8 environments open at most, stream, log, metadata, snapshot and idempotency lookups read what was written, before and after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-buckets-'));
  let now = T0;
  let e = open(dir, () => now);
  try {
    // One event per hour into a long stream, one short stream per hour, metadata and a snapshot early on.
    for (let h = 0; h < 120; h++) {
      now = T0 + h * HOUR;
      assert.equal((await e.append('acme', 'long', { events: [{ type: 'Tick', data: h }] })).ok, true);
      assert.equal((await e.append('acme', `short-${h}`, { events: [{ type: 'A', data: h }, { type: 'B', data: h }] })).ok, true);
      if (h === 3) {
        assert.deepEqual(await e.setMetadata('acme', 'long', { custom: { h } }), { ok: true });
        assert.deepEqual(await e.putSnapshot('acme', 'long', 4, { upTo: 4 }), { ok: true });
      }
    }
    const first = await e.append('acme', 'idem', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'k-1' });
    assert.equal(e.environmentCount().total, 120);
    for (let round = 0; round < 2; round++) {
      await settle();
      assert.ok(e.environmentCount().open <= 8, `open environments: ${e.environmentCount().open}`);
      const long = e.readStream('acme', 'long', { limit: 1000 });
      if (!long.ok) return assert.fail('long stream missing');
      assert.deepEqual(long.events.map((x) => x.data), Array.from({ length: 120 }, (_, h) => h));
      const back = e.readStream('acme', 'long', { direction: 'backward', limit: 5 });
      if (!back.ok) return assert.fail('long stream missing');
      assert.deepEqual(back.events.map((x) => x.version), [120, 119, 118, 117, 116]);
      const short = e.readStream('acme', 'short-7');
      if (!short.ok) return assert.fail('short stream missing');
      assert.deepEqual(short.events.map((x) => x.type), ['A', 'B']);
      assert.deepEqual(e.getMetadata('acme', 'long'), { custom: { h: 3 } });
      assert.deepEqual(e.latestSnapshot('acme', 'long'), { version: 4, data: { upTo: 4 } });
      assert.equal(e.getMetadata('acme', 'short-7'), null);
      assert.equal(e.latestSnapshot('acme', 'short-7'), null);
      const page = e.readPartitionLog('acme', { fromPosition: 300n, limit: 3 });
      assert.deepEqual(page.events.map((x) => x.position), [300n, 301n, 302n]);
      assert.equal(e.readShardLog({ limit: 1000 }).events.length, 361);
      const again = await e.append('acme', 'idem', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'k-1' });
      assert.deepEqual(again, { ...first, duplicate: true });
      await settle();
      assert.ok(e.environmentCount().open <= 8, `open environments: ${e.environmentCount().open}`);
      await e.close();
      e = open(dir, () => now);
    }
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a head filter holds every stream put in it and rejects about 99% of the others', () => {
  const inside = Array.from({ length: 5000 }, (_, i) => `acme\u0000order-${i}`);
  const filter = BloomFilter.of(inside, inside.length);
  for (const ref of inside) assert.equal(filter.mayHold(hashOf(ref)), true, ref);
  let falsePositives = 0;
  for (let i = 0; i < 20_000; i++) if (filter.mayHold(hashOf(`other\u0000stream-${i}`))) falsePositives++;
  assert.ok(falsePositives < 20_000 * 0.03, `false positives: ${falsePositives}`);
});
