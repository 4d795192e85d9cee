import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asBinary, open } from 'lmdb';
import { isSkeinError } from '@skein/protocol';
import { bucketIdOf, createEngine, type EngineOptions, type EventStore, type SkippedRecord } from './index.ts';
import { headKey, legacyIdemKey, streamKey, type Key } from './keys.ts';

// Records written by hand go into the engine's real bucket environment, opened with the
// engine's own settings while the engine is closed: what an older version, a bug or a
// damaged disk could have left there.
const NOW = Date.UTC(2026, 0, 15);
const clock = () => NOW;

/** msgpack for 100,000 nested one-element arrays: valid, and too deep for msgpackr to decode. */
const TOO_DEEP = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0x01])]);
/** A reserved msgpack byte: it decodes, to something that is not an event record. */
const NOT_A_RECORD = Buffer.from([0xc1]);

interface Harness {
  dir: string;
  engine: EventStore;
  reported: SkippedRecord[];
  errors: { obj: Record<string, unknown>; msg: string | undefined }[];
  batches: { ops: number; events: number }[];
}

function options(h: Pick<Harness, 'dir' | 'reported' | 'errors' | 'batches'>): EngineOptions {
  return {
    path: h.dir,
    clock,
    observer: { undecodableRecord: (r) => h.reported.push(r), batch: (b) => h.batches.push(b) },
    logger: { debug() {}, info() {}, warn() {}, error: (obj, msg) => h.errors.push({ obj: obj as Record<string, unknown>, msg }) },
  };
}

async function withStore(fn: (h: Harness) => Promise<void>): Promise<void> {
  const base = { dir: mkdtempSync(join(tmpdir(), 'skein-hostile-')), reported: [], errors: [], batches: [] };
  const h: Harness = { ...base, engine: createEngine(options(base)) };
  try {
    await fn(h);
  } finally {
    await h.engine.close();
    rmSync(h.dir, { recursive: true, force: true });
  }
}

/** Closes the engine, writes into its bucket with lmdb-js directly, reopens it. */
async function writeBehindTheEngine(h: Harness, writes: [Key, unknown][]): Promise<void> {
  await h.engine.close();
  const db = open<unknown, Key>({
    path: join(h.dir, `bucket-${bucketIdOf(NOW, 'month')}`),
    encoding: 'msgpack',
    keyEncoding: 'ordered-binary',
    compression: false,
    sharedStructuresKey: Symbol.for('skein.structures'),
  });
  for (const [key, value] of writes) db.putSync(key, value instanceof Buffer ? asBinary(value) : value);
  await db.close();
  h.engine = createEngine(options(h));
}

function ok<T extends { ok: boolean }>(outcome: T): Extract<T, { ok: true }> {
  assert.equal(outcome.ok, true, `expected success, got ${JSON.stringify(outcome, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return outcome as Extract<T, { ok: true }>;
}

function nested(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = { n: v };
  return v;
}

test('data nested 64 levels is stored and read back; 65 and 100,000 levels are refused with VALIDATION_FAILED', () =>
  withStore(async ({ engine }) => {
    const deepest = nested(64);
    ok(await engine.append('acme', 'deep-1', { events: [{ type: 'A', data: deepest, metadata: nested(64) }] }));
    assert.deepEqual(ok(engine.readStream('acme', 'deep-1')).events[0]!.data, deepest);
    const hundredThousand: unknown = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000));
    for (const [data, field] of [[nested(65), 'events[0].data'], [hundredThousand, 'events[0].data']] as const) {
      await assert.rejects(engine.append('acme', 'deep-2', { events: [{ type: 'A', data }] }), (err: unknown) => isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === field);
    }
    await assert.rejects(engine.append('acme', 'deep-2', { events: [{ type: 'A', data: 1, metadata: nested(65) }] }), (err: unknown) => isSkeinError(err, 'VALIDATION_FAILED') && err.details.field === 'events[0].metadata');
    await assert.rejects(engine.putSnapshot('acme', 'deep-1', 1, hundredThousand), (err: unknown) => isSkeinError(err, 'VALIDATION_FAILED'));
    assert.equal(engine.streamState('acme', 'deep-2').version, 0);
  }));

test('an Idempotency-Key is scoped to its stream: on another stream it is a new append', () =>
  withStore(async ({ engine }) => {
    const req = { idempotencyKey: 'same-key', events: [{ type: 'A', data: { n: 1 } }] };
    const first = ok(await engine.append('acme', 'order-1', req));
    const other = ok(await engine.append('acme', 'order-2', req));
    assert.equal(other.duplicate, undefined);
    assert.equal(other.firstVersion, 1);
    assert.notEqual(other.firstPosition, first.firstPosition);
    // Same key, same stream, same body: the original answer.
    assert.deepEqual(await engine.append('acme', 'order-1', req), { ...first, duplicate: true });
    assert.deepEqual(await engine.append('acme', 'order-2', req), { ...other, duplicate: true });
    // Same key, same stream, another body: refused.
    assert.deepEqual(await engine.append('acme', 'order-1', { ...req, events: [{ type: 'A', data: { n: 2 } }] }), { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
    // In one batch too: the second stream's use of the key is not the first's duplicate.
    const [a, b] = await Promise.all([engine.append('acme', 'order-3', { ...req, idempotencyKey: 'k2' }), engine.append('acme', 'order-4', { ...req, idempotencyKey: 'k2' })]);
    assert.equal(ok(a).duplicate, undefined);
    assert.equal(ok(b).duplicate, undefined);
    assert.equal(engine.streamState('acme', 'order-4').version, 1);
  }));

test('an idempotency record stored per partition by an older version still answers for its own stream only', () =>
  withStore(async (h) => {
    const req = { idempotencyKey: 'old-key', events: [{ type: 'A', data: { n: 1 } }] };
    // What the per-partition layout held for an append to order-1 (fingerprint as the engine computes it).
    const written = ok(await h.engine.append('acme', 'order-1', { events: req.events }));
    const { createHash } = await import('node:crypto');
    const h64 = createHash('sha256').update(JSON.stringify(['order-1', 'any', req.events.map((e) => ({ ...e, metadata: null }))])).digest('base64');
    await writeBehindTheEngine(h, [
      [legacyIdemKey('acme', 'old-key'), { h: h64, at: NOW, streamId: 'order-1', firstVersion: 1, lastVersion: 1, firstPosition: written.firstPosition, lastPosition: written.lastPosition }],
    ]);
    assert.deepEqual(await h.engine.append('acme', 'order-1', req), { ...written, duplicate: true });
    assert.equal(h.engine.streamState('acme', 'order-1').version, 1);
    const elsewhere = ok(await h.engine.append('acme', 'order-9', req));
    assert.equal(elsewhere.duplicate, undefined);
  }));

test('an undecodable record is skipped and reported by stream reads, the partition log and the shard log', () =>
  withStore(async (h) => {
    // s: three single-event appends (log reads get each record); m: one three-event append (log reads take a range).
    for (let i = 1; i <= 3; i++) ok(await h.engine.append('acme', 'order-s', { events: [{ type: 'S', data: i }] }));
    ok(await h.engine.append('acme', 'order-m', { events: [1, 2, 3].map((i) => ({ type: 'M', data: i })) }));
    ok(await h.engine.append('acme', 'order-z', { events: [{ type: 'Z', data: 'after' }] }));
    await writeBehindTheEngine(h, [
      [streamKey('acme', 'order-s', 2), TOO_DEEP],
      [streamKey('acme', 'order-m', 2), NOT_A_RECORD],
    ]);
    const { engine } = h;

    const forward = ok(engine.readStream('acme', 'order-s'));
    assert.deepEqual(forward.events.map((e) => [e.version, e.data]), [[1, 1], [3, 3]]);
    assert.deepEqual(forward.skipped, [{ partition: 'acme', streamId: 'order-s', version: 2 }]);
    const backward = ok(engine.readStream('acme', 'order-m', { direction: 'backward' }));
    assert.deepEqual(backward.events.map((e) => e.version), [3, 1]);
    assert.deepEqual(backward.skipped, [{ partition: 'acme', streamId: 'order-m', version: 2 }]);

    const good = ['order-s@1', 'order-s@3', 'order-m@1', 'order-m@3', 'order-z@1'];
    const expectedSkips = [
      { partition: 'acme', streamId: 'order-s', version: 2, position: 2n },
      { partition: 'acme', streamId: 'order-m', version: 2, position: 5n },
    ];
    for (const read of [(from: bigint, limit: number) => engine.readPartitionLog('acme', { fromPosition: from, limit }), (from: bigint, limit: number) => engine.readShardLog({ fromPosition: from, limit })]) {
      const page = read(0n, 100);
      assert.deepEqual(page.events.map((e) => `${e.streamId}@${e.version}`), good);
      assert.deepEqual(page.skipped, expectedSkips);
      // Paging one event at a time walks past both records to the end.
      const seen: string[] = [];
      let from = 0n;
      for (let guard = 0; guard < 20; guard++) {
        const p = read(from, 1);
        if (p.events.length === 0) break;
        seen.push(...p.events.map((e) => `${e.streamId}@${e.version}`));
        from = p.next;
      }
      assert.deepEqual(seen, good);
    }
    // Reported: an observer count and an error line naming partition, stream and version, for each meeting.
    assert.ok(h.reported.length >= 6);
    assert.ok(h.reported.every((r) => r.partition === 'acme' && r.version === 2));
    const line = h.errors.find((e) => e.obj.streamId === 'order-s');
    assert.ok(line, 'an error line names the stream');
    assert.equal(line.obj.partition, 'acme');
    assert.equal(line.obj.version, 2);

    // Appends go on around it, and a duplicate check that meets it answers a conflict, not a failure.
    assert.deepEqual(
      await engine.append('acme', 'order-s', { expectedVersion: 1, events: [{ id: '6f1c2b4e-8f0a-4a57-9d7e-2b1c3d4e5f60', type: 'S', data: 2 }] }),
      { ok: false, code: 'WRONG_EXPECTED_VERSION', expected: 1, actual: 3 },
    );
    assert.equal(ok(await engine.append('acme', 'order-s', { expectedVersion: 3, events: [{ type: 'S', data: 4 }] })).firstVersion, 4);
    assert.deepEqual(ok(engine.readStream('acme', 'order-s', { from: 3 })).events.map((e) => e.version), [3, 4]);
  }));

test('one append of a batch that cannot be decided or is invalid fails alone; the others of its batch commit', () =>
  withStore(async (h) => {
    ok(await h.engine.append('acme', 'broken-1', { events: [{ type: 'A', data: 1 }] }));
    // The stream's head record no longer decodes: every append to it must fail, and only those.
    await writeBehindTheEngine(h, [[headKey('acme', 'broken-1'), TOO_DEEP]]);
    const { engine } = h;
    h.batches.length = 0;
    const tooDeep: unknown = JSON.parse('{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000));
    const settled = await Promise.allSettled([
      engine.append('acme', 'good-1', { events: [{ type: 'A', data: 1 }] }),
      engine.append('acme', 'broken-1', { events: [{ type: 'A', data: 2 }] }),
      engine.append('acme', 'good-2', { idempotencyKey: 'k', events: [{ type: 'A', data: 3 }] }),
      engine.append('acme', 'good-3', { events: [{ type: 'A', data: tooDeep }] }),
      engine.append('acme', 'good-1', { expectedVersion: 1, events: [{ type: 'B', data: 4 }] }),
    ]);
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    assert.ok(isSkeinError((settled[1] as PromiseRejectedResult).reason, 'INTERNAL'));
    assert.ok(isSkeinError((settled[3] as PromiseRejectedResult).reason, 'VALIDATION_FAILED'));
    // The undecidable append was in the same batch as the good ones.
    assert.deepEqual(h.batches.map(({ ops, events }) => ({ ops, events })), [{ ops: 4, events: 3 }]);
    assert.deepEqual(ok(engine.readStream('acme', 'good-1')).events.map((e) => e.type), ['A', 'B']);
    assert.equal(ok(engine.readStream('acme', 'good-2')).version, 1);
    assert.equal(engine.streamState('acme', 'good-3').version, 0);
    assert.deepEqual(engine.readShardLog({ fromPosition: 2n }).events.map((e) => e.streamId), ['good-1', 'good-2', 'good-1']);
  }));
