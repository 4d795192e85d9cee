// Property test: random interleavings of appends, reads, deletes, metadata and snapshot
// changes against a plain in-memory model of API.md's semantics. Any difference fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { categoryOf, type ExpectedVersion } from '@skein/protocol';
import { createEngine, type EventStore } from './index.ts';

// ---- the model ----

interface ModelEvent {
  id: string | null;
  type: string;
  data: unknown;
  version: number;
  position: bigint;
  partition: string;
  streamId: string;
}
interface ModelStream {
  version: number;
  start: number;
  del: 'no' | 'soft' | 'hard';
  events: ModelEvent[];
  meta: { maxCount?: number; truncateBefore?: number } | null;
  snapshots: Map<number, unknown>;
}
interface Proposed {
  id?: string;
  type: string;
  data: unknown;
}

class Model {
  streams = new Map<string, ModelStream>();
  /** Idempotency keys are per stream (API.md): `${partition}/${stream}/${key}`. */
  idem = new Map<string, { fp: string; result: object }>();
  log: ModelEvent[] = [];
  counter = 0n;

  stream(p: string, s: string): ModelStream {
    const k = `${p}/${s}`;
    let st = this.streams.get(k);
    if (!st) {
      st = { version: 0, start: 1, del: 'no', events: [], meta: null, snapshots: new Map() };
      this.streams.set(k, st);
    }
    return st;
  }

  static exists(st: ModelStream) {
    return st.version > 0 && st.del !== 'soft';
  }

  static holds(expected: ExpectedVersion, st: ModelStream) {
    if (expected === 'any') return true;
    if (expected === 'no_stream' || expected === 0) return !Model.exists(st);
    if (expected === 'stream_exists') return Model.exists(st);
    return expected === st.version;
  }

  append(p: string, s: string, expected: ExpectedVersion, events: Proposed[], key?: string): object {
    const st = this.stream(p, s);
    if (st.del === 'hard') return { ok: false, code: 'STREAM_DELETED' };
    const fp = JSON.stringify([s, expected, events]);
    if (key !== undefined) {
      const rec = this.idem.get(`${p}/${s}/${key}`);
      if (rec) return rec.fp === fp ? { ...rec.result, duplicate: true } : { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' };
    }
    if (!Model.holds(expected, st)) {
      if ((expected === 'no_stream' || typeof expected === 'number') && events.every((e) => e.id !== undefined)) {
        const base = expected === 'no_stream' ? 0 : expected;
        const slice = st.events.filter((e) => e.version > base && e.version <= base + events.length);
        if (st.version >= base + events.length && slice.length === events.length && slice.every((e, i) => e.id === events[i]!.id)) {
          return { ok: true, streamId: s, firstVersion: base + 1, lastVersion: base + events.length, firstPosition: slice[0]!.position, lastPosition: slice[slice.length - 1]!.position, duplicate: true };
        }
      }
      return { ok: false, code: 'WRONG_EXPECTED_VERSION', expected, actual: st.version };
    }
    const firstVersion = st.version + 1;
    const firstPosition = this.counter + 1n;
    for (const e of events) {
      const ev: ModelEvent = { id: e.id ?? null, type: e.type, data: e.data, version: ++st.version, position: ++this.counter, partition: p, streamId: s };
      st.events.push(ev);
      this.log.push(ev);
    }
    st.del = 'no';
    const result = { ok: true, streamId: s, firstVersion, lastVersion: st.version, firstPosition, lastPosition: this.counter };
    if (key !== undefined) this.idem.set(`${p}/${s}/${key}`, { fp, result });
    return result;
  }

  delete(p: string, s: string, mode: 'soft' | 'hard', expected: ExpectedVersion): object {
    const st = this.stream(p, s);
    if (st.del === 'hard') return { ok: false, code: 'STREAM_DELETED' };
    if (st.version === 0 || (mode === 'soft' && !Model.exists(st))) return { ok: false, code: 'STREAM_NOT_FOUND' };
    if (!Model.holds(expected, st)) return { ok: false, code: 'WRONG_EXPECTED_VERSION', expected, actual: st.version };
    st.start = st.version + 1;
    st.del = mode;
    return { ok: true };
  }

  setMeta(p: string, s: string, meta: { maxCount?: number; truncateBefore?: number }): object {
    const st = this.stream(p, s);
    if (st.del === 'hard') return { ok: false, code: 'STREAM_DELETED' };
    st.meta = { ...meta };
    return { ok: true };
  }

  putSnapshot(p: string, s: string, version: number, data: unknown): object {
    const st = this.stream(p, s);
    if (st.del === 'hard') return { ok: false, code: 'STREAM_DELETED' };
    if (!Model.exists(st)) return { ok: false, code: 'STREAM_NOT_FOUND' };
    if (version > st.version) return { ok: false, code: 'VALIDATION_FAILED' };
    st.snapshots.set(version, data);
    return { ok: true };
  }

  latestSnapshot(p: string, s: string) {
    const st = this.stream(p, s);
    if (st.snapshots.size === 0) return null;
    const version = Math.max(...st.snapshots.keys());
    return { version, data: st.snapshots.get(version) };
  }

  readStream(p: string, s: string, from: number | undefined, direction: 'forward' | 'backward', limit: number) {
    const st = this.stream(p, s);
    if (st.del === 'hard') return { ok: false, code: 'STREAM_DELETED' };
    if (!Model.exists(st)) return { ok: false, code: 'STREAM_NOT_FOUND' };
    let lowest = st.start;
    if (st.meta?.truncateBefore !== undefined) lowest = Math.max(lowest, st.meta.truncateBefore);
    if (st.meta?.maxCount !== undefined) lowest = Math.max(lowest, st.version - st.meta.maxCount + 1);
    const visible = st.events.filter((e) => e.version >= lowest);
    if (direction === 'forward') {
      const f = Math.max(from ?? 1, lowest);
      const list = visible.filter((e) => e.version >= f).slice(0, limit);
      const last = list[list.length - 1]?.version;
      return { ok: true, versions: list.map((e) => [e.version, e.id, e.type, e.position]), version: st.version, next: list.length === limit && last! < st.version ? last! + 1 : null };
    }
    const f = Math.min(from ?? st.version, st.version);
    const list = visible.filter((e) => e.version <= f).reverse().slice(0, limit);
    const last = list[list.length - 1]?.version;
    return { ok: true, versions: list.map((e) => [e.version, e.id, e.type, e.position]), version: st.version, next: list.length === limit && last! > lowest ? last! - 1 : null };
  }

  readLog(p: string | undefined, from: bigint, limit: number, category?: string) {
    const list = this.log.filter((e) => (p === undefined || e.partition === p) && e.position >= from && (category === undefined || categoryOf(e.streamId) === category)).slice(0, limit);
    return { events: list.map((e) => [e.position, e.partition, e.streamId, e.version]), next: list.length ? list[list.length - 1]!.position + 1n : from };
  }
}

// ---- commands ----

const PARTITIONS = ['a', 'b~1'];
const STREAMS = ['order-1', 'order-2', 'user-1'];
const IDS = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003'];

const expectedArb: fc.Arbitrary<ExpectedVersion> = fc.oneof(
  fc.constantFrom<ExpectedVersion>('any', 'no_stream', 'stream_exists'),
  fc.integer({ min: 0, max: 6 }),
);
const eventArb: fc.Arbitrary<Proposed> = fc.record(
  { id: fc.constantFrom(...IDS), type: fc.constantFrom('A', 'B'), data: fc.oneof(fc.constant(null), fc.integer(), fc.record({ n: fc.nat(3) })) },
  { requiredKeys: ['type', 'data'] },
);
const where = { p: fc.constantFrom(...PARTITIONS), s: fc.constantFrom(...STREAMS) };

const writeArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), ...where, expected: expectedArb, events: fc.array(eventArb, { minLength: 1, maxLength: 3 }), key: fc.option(fc.constantFrom('k1', 'k2'), { nil: undefined }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), ...where, mode: fc.constantFrom<'soft' | 'hard'>('soft', 'soft', 'hard'), expected: expectedArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('meta' as const), ...where, meta: fc.record({ maxCount: fc.integer({ min: 1, max: 4 }), truncateBefore: fc.integer({ min: 0, max: 5 }) }, { requiredKeys: [] }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), ...where, version: fc.integer({ min: 1, max: 6 }), data: fc.nat(9) }) },
);
const readArb = fc.oneof(
  fc.record({ kind: fc.constant('readStream' as const), ...where, from: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }), direction: fc.constantFrom<'forward' | 'backward'>('forward', 'backward'), limit: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('readLog' as const), p: fc.option(fc.constantFrom(...PARTITIONS), { nil: undefined }), from: fc.bigInt({ min: 0n, max: 12n }), limit: fc.integer({ min: 1, max: 5 }), category: fc.option(fc.constantFrom('order', 'user'), { nil: undefined }) }),
  fc.record({ kind: fc.constant('state' as const), ...where }),
);
type Write = typeof writeArb extends fc.Arbitrary<infer T> ? T : never;
type Read = typeof readArb extends fc.Arbitrary<infer T> ? T : never;

// A step is a group of writes issued concurrently (one batch), or a read.
const stepArb = fc.oneof(
  { weight: 3, arbitrary: fc.array(writeArb, { minLength: 1, maxLength: 5 }).map((writes) => ({ writes })) },
  { weight: 2, arbitrary: readArb.map((read) => ({ read })) },
);

function applyModel(m: Model, w: Write): object {
  switch (w.kind) {
    case 'append':
      return m.append(w.p, w.s, w.expected, w.events, w.key);
    case 'delete':
      return m.delete(w.p, w.s, w.mode, w.expected);
    case 'meta':
      return m.setMeta(w.p, w.s, w.meta);
    case 'snapshot':
      return m.putSnapshot(w.p, w.s, w.version, w.data);
  }
}

async function applyEngine(e: EventStore, w: Write): Promise<object> {
  switch (w.kind) {
    case 'append':
      return e.append(w.p, w.s, { expectedVersion: w.expected, events: w.events, ...(w.key ? { idempotencyKey: w.key } : {}) });
    case 'delete':
      return e.deleteStream(w.p, w.s, { mode: w.mode, expectedVersion: w.expected });
    case 'meta':
      return e.setMetadata(w.p, w.s, w.meta);
    case 'snapshot': {
      const r = await e.putSnapshot(w.p, w.s, w.version, w.data);
      return r.ok ? r : { ok: false, code: r.code };
    }
  }
}

function compareRead(m: Model, e: EventStore, r: Read) {
  if (r.kind === 'readStream') {
    const got = e.readStream(r.p, r.s, { ...(r.from !== undefined ? { from: r.from } : {}), direction: r.direction, limit: r.limit });
    const want = m.readStream(r.p, r.s, r.from, r.direction, r.limit);
    const normal = got.ok
      ? { ok: true, versions: got.events.map((x) => [x.version, IDS.includes(x.id) ? x.id : null, x.type, x.position]), version: got.version, next: got.next }
      : got;
    assert.deepEqual(normal, want, `readStream ${JSON.stringify(r)}`);
  } else if (r.kind === 'readLog') {
    const page = r.p === undefined
      ? e.readShardLog({ fromPosition: r.from, limit: r.limit, ...(r.category ? { category: r.category } : {}) })
      : e.readPartitionLog(r.p, { fromPosition: r.from, limit: r.limit, ...(r.category ? { category: r.category } : {}) });
    assert.deepEqual(
      { events: page.events.map((x) => [x.position, x.partition, x.streamId, x.version]), next: page.next },
      m.readLog(r.p, r.from, r.limit, r.category),
      `readLog ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    );
  } else {
    const st = m.stream(r.p, r.s);
    const meta = e.getMetadata(r.p, r.s);
    assert.deepEqual(meta, st.meta, 'metadata');
    assert.deepEqual(e.latestSnapshot(r.p, r.s), m.latestSnapshot(r.p, r.s), 'latest snapshot');
    assert.deepEqual(e.streamState(r.p, r.s), { version: st.version, deleted: st.del }, 'stream state');
  }
}

for (const commitThread of [false, true]) test(`the engine behaves like the in-memory model under random interleavings${commitThread ? ' (commits on a thread)' : ''}`, async () => {
  await fc.assert(
    // Once per run, before step `reopenAt`, the store is closed and opened again: nothing is
    // cached then, and every head is read back from disk, where an append that only advanced
    // a version wrote none (one reopen a run: opening a store costs ~50 ms).
    fc.asyncProperty(fc.array(stepArb, { minLength: 10, maxLength: 60, size: 'max' }), fc.nat(), async (steps, reopenSeed) => {
      const dir = mkdtempSync(join(tmpdir(), 'skein-prop-'));
      let engine = createEngine({ path: dir, commitThread });
      const model = new Model();
      const reopenAt = reopenSeed % steps.length;
      try {
        for (const [i, step] of steps.entries()) {
          if (i === reopenAt) {
            await engine.close();
            engine = createEngine({ path: dir, commitThread });
          }
          if ('writes' in step) {
            const got = await Promise.all(step.writes.map((w) => applyEngine(engine, w)));
            const want = step.writes.map((w) => applyModel(model, w));
            assert.deepEqual(got, want, `writes ${JSON.stringify(step.writes)}`);
          } else {
            compareRead(model, engine, step.read);
          }
        }
        // Everything the model holds is in the logs, in order.
        assert.deepEqual(
          engine.readShardLog({ limit: 1000 }).events.map((x) => [x.position, x.partition, x.streamId, x.version]),
          model.readLog(undefined, 0n, 1000).events,
        );
      } finally {
        await engine.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    // Each store with a commit thread starts one: fewer runs of those.
    { numRuns: Math.ceil(Number(process.env.SKEIN_PROPERTY_RUNS ?? 100) / (commitThread ? 5 : 1)) },
  );
});

test('the model itself can fail: a wrong expectation is caught', () => {
  const m = new Model();
  m.append('a', 'order-1', 'any', [{ type: 'A', data: 1 }]);
  assert.deepEqual(m.append('a', 'order-1', 'no_stream', [{ type: 'A', data: 1 }]), { ok: false, code: 'WRONG_EXPECTED_VERSION', expected: 'no_stream', actual: 1 });
});
