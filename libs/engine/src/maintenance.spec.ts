import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { open } from 'lmdb';
import { createEngine, listBackups, maintenanceOf, restoreBackup, type EngineOptions, type EventStore } from './index.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1);

function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `skein-${name}-`));
}

function engineAt(dir: string, clock: () => number, extra: Partial<EngineOptions> = {}): EventStore {
  return createEngine({ path: dir, bucketSpan: 'day', clock, storageReserveBytes: 1024 * 1024, ...extra });
}

function must<T extends { ok: boolean }>(outcome: T): Extract<T, { ok: true }> {
  assert.equal(outcome.ok, true, JSON.stringify(outcome, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  return outcome as Extract<T, { ok: true }>;
}

/** Keys of the store's bucket environments matching `prefix`, counted on the files (the engine closed). */
function countKeys(dir: string, prefix: (string | number)[]): number {
  let n = 0;
  for (const name of readdirSync(dir).filter((d) => d.startsWith('bucket-'))) {
    const db = open<unknown, (string | number)[]>({ path: join(dir, name), readOnly: true, keyEncoding: 'ordered-binary' });
    for (const key of db.getKeys({ start: prefix })) {
      if (prefix.some((p, i) => key[i] !== p)) break;
      n++;
    }
    void db.close();
  }
  return n;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x));

test('maxCount 10 on a stream of 10,000 events leaves 10 of its records on disk; stream reads are unchanged and the partition log lists only those', async () => {
  const dir = tempDir('retain-count');
  let now = T0;
  let e = engineAt(dir, () => now);
  try {
    for (let i = 0; i < 100; i++) must(await e.append('acme', 'big', { events: Array.from({ length: 100 }, (_, j) => ({ type: 'T', data: i * 100 + j })) }));
    must(await e.append('acme', 'other', { events: [{ type: 'O', data: 1 }] }));
    assert.deepEqual(await e.setMetadata('acme', 'big', { maxCount: 10 }), { ok: true });
    const before = json(e.readStream('acme', 'big', { limit: 1000 }));
    const backward = json(e.readStream('acme', 'big', { direction: 'backward', limit: 5 }));
    const result = await maintenanceOf(e).retain('acme', { maxKeysPerTxn: 500 });
    assert.equal(result.events, 9990);
    assert.ok(result.bytes > 9990 * 10);
    assert.equal(json(e.readStream('acme', 'big', { limit: 1000 })), before);
    assert.equal(json(e.readStream('acme', 'big', { direction: 'backward', limit: 5 })), backward);
    const log = e.readPartitionLog('acme', { limit: 1000 });
    assert.deepEqual(log.events.map((x) => `${x.streamId}@${x.version}`), [...Array.from({ length: 10 }, (_, i) => `big@${9991 + i}`), 'other@1']);
    assert.equal(e.readShardLog({ limit: 1000 }).events.length, 11);
    await e.close();
    assert.equal(countKeys(dir, ['acme', 'stream', 'big']), 10);
    e = engineAt(dir, () => now);
    assert.equal(json(e.readStream('acme', 'big', { limit: 1000 })), before);
    // The numbering goes on.
    assert.equal(must(await e.append('acme', 'big', { expectedVersion: 10_000, events: [{ type: 'T', data: 'next' }] })).firstVersion, 10_001);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tenant maxAge drops a whole old bucket without compaction; heads, tombstones, metadata and snapshots carry forward and no version restarts', async () => {
  const dir = tempDir('retain-age');
  let now = T0;
  let e = engineAt(dir, () => now);
  try {
    must(await e.append('acme', 'kept', { events: [{ type: 'A', data: 1 }, { type: 'A', data: 2 }] }));
    assert.deepEqual(await e.setMetadata('acme', 'kept', { custom: { owner: 'x' } }), { ok: true });
    assert.deepEqual(await e.putSnapshot('acme', 'kept', 2, { sum: 3 }), { ok: true });
    must(await e.append('acme', 'gone', { events: [{ type: 'A', data: 1 }] }));
    assert.deepEqual(await e.deleteStream('acme', 'gone', { mode: 'hard' }), { ok: true });
    must(await e.append('acme', 'soft', { events: [{ type: 'A', data: 1 }] }));
    assert.deepEqual(await e.deleteStream('acme', 'soft', { mode: 'soft' }), { ok: true });
    must(await e.append('acme', 'keyed', { events: [{ type: 'A', data: 1 }], idempotencyKey: 'k-1' }));
    now = T0 + 3 * DAY;
    must(await e.append('acme', 'fresh', { events: [{ type: 'B', data: 1 }] }));
    assert.equal(e.environmentCount().total, 2);
    const oldDir = join(dir, 'bucket-2026-03-01');
    assert.ok(existsSync(oldDir));
    const result = await maintenanceOf(e).retain('acme', { maxAgeMs: DAY });
    assert.deepEqual(result.bucketsDropped, ['2026-03-01']);
    assert.equal(result.events, 5);
    assert.equal(result.idempotencyKeys, 1);
    assert.equal(existsSync(oldDir), false);
    assert.equal(e.environmentCount().total, 1);
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(e.streamState('acme', 'kept'), { version: 2, deleted: 'no' });
      assert.deepEqual(e.getMetadata('acme', 'kept'), { custom: { owner: 'x' } });
      assert.deepEqual(e.latestSnapshot('acme', 'kept'), { version: 2, data: { sum: 3 } });
      assert.deepEqual(must(e.readStream('acme', 'kept')).events, []);
      assert.deepEqual(e.readStream('acme', 'gone'), { ok: false, code: 'STREAM_DELETED' });
      assert.deepEqual(e.streamState('acme', 'soft'), { version: 1, deleted: 'soft' });
      assert.deepEqual(e.readPartitionLog('acme').events.map((x) => x.streamId), ['fresh']);
      await e.close();
      e = engineAt(dir, () => now);
    }
    assert.deepEqual(await e.append('acme', 'gone', { events: [{ type: 'A', data: 1 }] }), { ok: false, code: 'STREAM_DELETED' });
    assert.equal(must(await e.append('acme', 'kept', { expectedVersion: 2, events: [{ type: 'A', data: 3 }] })).firstVersion, 3);
    assert.equal(must(await e.append('acme', 'soft', { expectedVersion: 'no_stream', events: [{ type: 'A', data: 2 }] })).firstVersion, 2);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("retention that removes all of a stream's events in the current bucket keeps its version across a reopen (appends that only advance a version write no head)", async () => {
  const dir = tempDir('retain-last');
  let now = T0;
  let e = engineAt(dir, () => now);
  try {
    for (let v = 0; v < 5; v++) must(await e.append('acme', 'old', { expectedVersion: v, events: [{ type: 'A', data: v }] }));
    now = T0 + 2 * 3_600_000;
    must(await e.append('acme', 'fresh', { events: [{ type: 'B', data: 1 }] }));
    const result = await maintenanceOf(e).retain('acme', { maxAgeMs: 3_600_000 });
    assert.equal(result.events, 5);
    assert.deepEqual(result.bucketsDropped, []);
    await e.close();
    assert.equal(countKeys(dir, ['acme', 'stream', 'old']), 0, 'no event of the stream is left to read its version from');
    e = engineAt(dir, () => now);
    assert.deepEqual(e.streamState('acme', 'old'), { version: 5, deleted: 'no' });
    assert.deepEqual(await e.append('acme', 'old', { expectedVersion: 4, events: [{ type: 'A', data: 5 }] }), { ok: false, code: 'WRONG_EXPECTED_VERSION', expected: 4, actual: 5 });
    assert.equal(must(await e.append('acme', 'old', { expectedVersion: 5, events: [{ type: 'A', data: 5 }] })).firstVersion, 6);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('200,000 events, 90% removed by retention, then compaction: the bucket file shrinks by 70% or more, what remains reads back identical, and 16 concurrent appenders lose no acknowledged event', async () => {
  const dir = tempDir('compact');
  let now = T0;
  const e = engineAt(dir, () => now, { storageReserveBytes: 4 * 1024 * 1024 });
  let stop = false;
  let writers: Promise<void>[] = [];
  try {
    const payload = { text: 'p'.repeat(150) };
    for (let s = 0; s < 2000; s++) {
      must(await e.append('acme', `s-${s}`, { events: Array.from({ length: 100 }, (_, j) => ({ type: 'T', data: { ...payload, j } })) }));
    }
    for (let s = 0; s < 2000; s++) assert.deepEqual(await e.setMetadata('acme', `s-${s}`, { maxCount: 10 }), { ok: true });
    const kept = new Map<string, string>();
    for (let s = 0; s < 2000; s += 37) kept.set(`s-${s}`, json(e.readStream('acme', `s-${s}`, { limit: 1000 })));
    const usedBefore = e.environmentSizes().find((b) => b.id === '2026-03-01')!.bytes;
    now = T0 + DAY;

    const acks: { streamId: string; version: number; position: bigint; data: number }[] = [];
    writers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const r = must(await e.append('acme', `w-${w}`, { expectedVersion: i === 0 ? 'no_stream' : i, events: [{ type: 'W', data: i }] }));
        acks.push({ streamId: `w-${w}`, version: r.firstVersion, position: r.firstPosition, data: i });
      }
    });
    const retained = await maintenanceOf(e).retain('acme', { maxKeysPerTxn: 2000 });
    assert.equal(retained.events, 180_000);
    const compacted = await maintenanceOf(e).compact('2026-03-01');
    stop = true;
    await Promise.all(writers);

    const after = statSync(join(dir, 'bucket-2026-03-01', 'data.mdb')).size;
    assert.equal(compacted.bytesAfter, after);
    assert.ok(after <= usedBefore * 0.3, `bucket file ${after} bytes, ${usedBefore} used before retention`);
    for (const [s, read] of kept) assert.equal(json(e.readStream('acme', s, { limit: 1000 })), read);
    assert.ok(acks.length > 16, `appends during maintenance: ${acks.length}`);
    for (const ack of acks) {
      const read = must(e.readStream('acme', ack.streamId, { from: ack.version, limit: 1 }));
      assert.deepEqual([read.events[0]?.version, read.events[0]?.position, read.events[0]?.data], [ack.version, ack.position, ack.data]);
    }
    assert.equal(e.readPartitionLog('acme', { limit: 1000 }).events.length, 1000);
  } finally {
    stop = true;
    await Promise.allSettled(writers);
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a backup taken during continuous appends restores into a new directory that reads like the source up to the backup position; later backups reuse closed buckets', async () => {
  const dir = tempDir('backup-src');
  const backups = tempDir('backup-dst');
  const restored = join(tempDir('backup-restore'), 'data');
  let now = T0;
  const e = engineAt(dir, () => now);
  let r: EventStore | undefined;
  let stop = false;
  let writers: Promise<void>[] = [];
  try {
    for (let d = 0; d < 3; d++) {
      now = T0 + d * DAY;
      for (let s = 0; s < 20; s++) must(await e.append('acme', `s-${s}`, { events: [{ type: 'T', data: { d, s } }, { type: 'T', data: { d, s, n: 2 } }] }));
    }
    writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) must(await e.append('acme', `live-${w}`, { events: [{ type: 'L', data: i }] }));
    });
    await new Promise((r) => setTimeout(r, 50));
    const manifest = await maintenanceOf(e).backup(backups);
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await Promise.all(writers);
    assert.equal(manifest.buckets.filter((b) => b.reused).length, 0);
    const second = await maintenanceOf(e).backup(backups);
    assert.deepEqual(second.buckets.map((b) => b.reused), [true, true, false]);

    restoreBackup(backups, restored, manifest.id);
    r = engineAt(restored, () => now);
    const upTo = BigInt(manifest.highestPosition);
    assert.ok(upTo > 120n);
    const source = e.readShardLog({ toPosition: upTo, limit: 1000 });
    const copy = r.readShardLog({ limit: 1000 });
    assert.ok(source.events.length < 1000);
    assert.equal(json(copy.events), json(source.events));
    for (const s of ['s-0', 's-19', 'live-0', 'live-7']) {
      const want = must(e.readStream('acme', s, { limit: 1000 })).events.filter((x) => x.position <= upTo);
      const got = r.readStream('acme', s, { limit: 1000 });
      assert.equal(json(got.ok ? got.events : []), json(want));
    }
    assert.throws(() => restoreBackup(backups, restored), /not empty/);
  } finally {
    stop = true;
    await Promise.allSettled(writers);
    await e.close();
    await r?.close();
    for (const d of [dir, backups, join(restored, '..')]) rmSync(d, { recursive: true, force: true });
  }
});

test('a closed bucket unchanged since its last compaction is not copied again; retention changing it makes the next compaction copy it', async () => {
  const dir = tempDir('compact-again');
  let now = T0;
  const e = engineAt(dir, () => now);
  try {
    for (let s = 0; s < 20; s++) must(await e.append('acme', `s-${s}`, { events: Array.from({ length: 50 }, (_, j) => ({ type: 'T', data: { j, pad: 'p'.repeat(100) } })) }));
    now = T0 + DAY;
    must(await e.append('acme', 'later', { events: [{ type: 'T', data: 1 }] }));
    const m = maintenanceOf(e);
    assert.deepEqual(m.closedBuckets(), ['2026-03-01']);
    const file = join(dir, 'bucket-2026-03-01', 'data.mdb');
    const before = json(e.readStream('acme', 's-3', { limit: 100 }));

    const first = await m.compact('2026-03-01');
    assert.equal(first.copied, true);
    assert.ok(first.entries > 1000);
    const inode = statSync(file).ino;
    const second = await m.compact('2026-03-01');
    assert.deepEqual([second.copied, second.entries, second.bytesAfter], [false, 0, first.bytesAfter]);
    assert.equal(statSync(file).ino, inode, 'the data file was not replaced');
    assert.equal(existsSync(`${dirname(file)}-compacting`), false, 'no compacting copy was made');
    assert.equal(json(e.readStream('acme', 's-3', { limit: 100 })), before);

    assert.deepEqual(await e.setMetadata('acme', 's-0', { maxCount: 1 }), { ok: true });
    assert.equal((await m.retain('acme')).events, 49);
    const third = await m.compact('2026-03-01');
    assert.equal(third.copied, true, 'retention changed the bucket: compacted again');
    assert.notEqual(statSync(file).ino, inode);
    assert.equal((await m.compact('2026-03-01')).copied, false);
    assert.equal(json(e.readStream('acme', 's-3', { limit: 100 })), before);
  } finally {
    await e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a backup directory holds one store: a second store backing up into it is refused and changes nothing there; a store restored from it backs up into it again', async () => {
  const backups = tempDir('backup-shared');
  const dirs = [tempDir('backup-one'), tempDir('backup-two')];
  const restored = join(tempDir('backup-restored'), 'data');
  let now = T0;
  const [one, two] = dirs.map((d) => engineAt(d, () => now));
  let r: EventStore | undefined;
  try {
    // Closed buckets of the same ids in both stores: their copies would share names.
    for (const [i, e] of [one!, two!].entries()) {
      now = T0;
      must(await e.append('acme', `s-${i}`, { events: [{ type: 'T', data: { store: i, day: 0 } }] }));
      now = T0 + DAY;
      must(await e.append('acme', `s-${i}`, { events: [{ type: 'T', data: { store: i, day: 1 } }] }));
    }
    const first = await maintenanceOf(one!).backup(backups, { id: 'b1' });
    const before = readdirSync(backups).sort();
    await assert.rejects(maintenanceOf(two!).backup(backups, { id: 'b2' }), /holds the backups of another store/);
    assert.deepEqual(readdirSync(backups).sort(), before);
    assert.deepEqual(listBackups(backups).map((m) => m.id), [first.id]);

    restoreBackup(backups, restored, first.id);
    r = engineAt(restored, () => now);
    const again = await maintenanceOf(r).backup(backups, { id: 'b3' });
    assert.deepEqual(again.buckets.map((b) => b.reused), [true, false]);
    const events = must(r.readStream('acme', 's-0', { limit: 10 })).events.map((e) => e.data);
    assert.deepEqual(events, [{ store: 0, day: 0 }, { store: 0, day: 1 }]);
  } finally {
    for (const e of [one, two, r]) await e?.close();
    for (const d of [...dirs, backups, join(restored, '..')]) rmSync(d, { recursive: true, force: true });
  }
});
