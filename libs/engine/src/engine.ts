import { createHash, randomUUID } from 'node:crypto';
import {
  DEFAULT_LIMITS,
  SkeinError,
  isSkeinError,
  parseDeleteMode,
  parseExpectedVersion,
  parseLimit,
  validateIdempotencyKey,
  validateJsonValue,
  validatePartition,
  validateProposedEvents,
  validateStreamId,
  validateStreamMetadata,
  validationError,
  type AppendSuccess,
  type DeleteMode,
  type ExpectedVersion,
  type LoggedEvent,
  type ProposedEvent,
  type RecordedEvent,
  type Sequencer,
  type StreamMetadata,
  categoryOf,
} from '@skein/protocol';
import { BucketSet, spanEndOf, type Bucket } from './buckets.ts';
import { startCommitThread, type CommitWriter } from './commit-writer.ts';
import { encodeBatch } from './encoded-batch.ts';
import { createEmbeddedSequencer } from './embedded-sequencer.ts';
import {
  GLOBAL,
  MAX_VERSION,
  globalKey,
  headKey,
  idemKey,
  legacyIdemKey,
  logKey,
  metaKey,
  positionOfKey,
  snapshotKey,
  streamKey,
  type Key,
} from './keys.ts';
import { LruCache } from './lru.ts';
import { attachPartitionTransfer } from './partition-transfer.ts';
import { attachMaintenance } from './maintenance.ts';
import { hashOf } from './bloom.ts';
import { storageFaultOf, storageUnavailable, type StorageFault } from './storage.ts';
import { Deleted, type EventRecord, type HeadRecord, type IdempotencyRecord } from './records.ts';
import type {
  SkippedRecord,
  AppendOutcome,
  AppendRequest,
  CommittedAppend,
  DeleteOutcome,
  EngineLogger,
  EngineOptions,
  EventStore,
  LogPage,
  ReadLogOptions,
  ReadStreamOptions,
  ReadStreamOutcome,
  WriteOutcome,
  WriterState,
} from './types.ts';

/** Defaults of every EngineOptions field that has one. */
export const defaultEngineOptions = Object.freeze({
  bucketSpan: 'month' as const,
  mapSizeBytes: 1024 * 1024 * 1024,
  idempotencyWindowMs: 24 * 60 * 60 * 1000,
  maxBatchOps: 4096,
  headCacheSize: 100_000,
  maxEventBytes: DEFAULT_LIMITS.maxEventBytes,
  maxEventsPerAppend: DEFAULT_LIMITS.maxEventsPerAppend,
  storageReserveBytes: 64 * 1024 * 1024,
  storageProbeIntervalMs: 1000,
  readPageBytes: 4 * 1024 * 1024,
  maxOpenBuckets: 64,
  commitThread: false,
  testCommitDelayMs: 0,
});

/** Where the test-only commit delay sleeps (Atomics.wait on a value that never changes). */
const commitPause = new Int32Array(new SharedArrayBuffer(4));
const noopLogger: EngineLogger = { debug() {}, info() {}, warn() {}, error() {} };
const EMPTY_HEAD: HeadRecord = Object.freeze({ v: 0 });

// ---- write operations, queued for the group-commit batcher ----

interface Pending<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

interface AppendOp extends Pending<AppendOutcome> {
  kind: 'append';
  partition: string;
  streamId: string;
  expected: ExpectedVersion;
  events: ProposedEvent[];
  /** Each event's measured size (validation's), kept in its record. */
  sizes: number[];
  idempotencyKey: string | undefined;
  fingerprint: string | undefined;
}
interface DeleteOp extends Pending<DeleteOutcome> {
  kind: 'delete';
  partition: string;
  streamId: string;
  mode: DeleteMode;
  expected: ExpectedVersion;
}
interface MetadataOp extends Pending<WriteOutcome> {
  kind: 'metadata';
  partition: string;
  streamId: string;
  metadata: StreamMetadata;
}
interface SnapshotOp extends Pending<WriteOutcome> {
  kind: 'snapshot';
  partition: string;
  streamId: string;
  version: number;
  data: unknown;
}
type Op = AppendOp | DeleteOp | MetadataOp | SnapshotOp;

/** What the batch decided for one op: writes to make, and how to answer once durable. */
interface Decision {
  op: Op;
  /** Records of an accepted append; positions are assigned after allocation. */
  records?: EventRecord[];
  firstVersion?: number;
  /** Other writes of the op (head, idempotency key, metadata, snapshot). Computed after allocation for appends. */
  puts?: [Key, unknown][];
  /** The answer, computed after positions are assigned (duplicates may refer to records of this batch). */
  answer: () => unknown;
}

/**
 * State of the batch being decided: what earlier ops of the same batch changed, and what
 * the batch still committing on the commit thread (`prev`, at most one) will have
 * changed. Lookups see both before the committed state.
 */
interface BatchState {
  heads: Map<string, HeadRecord>;
  idem: Map<string, { fingerprint: string; decision: Decision }>;
  /** Records accepted in this batch, by stream key and version. */
  records: Map<string, EventRecord>;
  prev?: BatchState | undefined;
}

/** A batch whose ops are decided, waiting for its positions. */
interface DecidedBatch {
  ops: Op[];
  st: BatchState;
  decisions: Decision[];
  eventCount: number;
  now: number;
  started: number;
}

/** A batch decided and allocated, ready to be written. */
interface PreparedBatch extends DecidedBatch {
  /** First and last allocated position, when the batch has events. */
  range: { first: bigint; last: bigint } | undefined;
}

const streamRef = (p: string, s: string) => `${p}\u0000${s}`;
const versionRef = (p: string, s: string, v: number) => `${p}\u0000${s}\u0000${v}`;

/** Partition log entry: one append's stream, first version and event count. */
type LogEntry = [streamId: string, firstVersion: number, count: number];
/** Shard log entry: the same, with the partition. */
type GlobalEntry = [partition: string, streamId: string, firstVersion: number, count: number];

function fingerprintOf(streamId: string, expected: ExpectedVersion, events: ProposedEvent[]): string {
  return createHash('sha256').update(JSON.stringify([streamId, expected, events])).digest('base64');
}

/** The shape every stored event record has; anything else read at an event key is undecodable. */
function isEventRecord(value: unknown): value is EventRecord {
  if (value === null || typeof value !== 'object') return false;
  const r = value as Partial<EventRecord>;
  return typeof r.id === 'string' && typeof r.type === 'string' && typeof r.ts === 'number' && typeof r.pos === 'bigint';
}

/**
 * What an event weighs in a read page: its measured size (or, for records written before
 * sizes were kept, a measurement now) plus its envelope (id, stream, type, position, …).
 */
function pageBytesOf(streamId: string, r: EventRecord): number {
  const measured = r.n ?? Buffer.byteLength(r.type) + jsonBytes(r.data) + jsonBytes(r.metadata);
  return measured + streamId.length + 160;
}

function jsonBytes(value: unknown): number {
  const text = value === undefined ? undefined : JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text);
}

/** A read outcome with the records it skipped, when there were any (no allocation otherwise). */
function withSkipped<T extends object>(outcome: T, skipped: SkippedRecord[]): T & { skipped?: SkippedRecord[] } {
  return skipped.length === 0 ? outcome : { ...outcome, skipped };
}

function isDeleted(head: HeadRecord, kind: Deleted): boolean {
  return (head.del ?? Deleted.No) === kind;
}

/** Whether the stream counts as existing for expected-version checks (a soft-deleted one does not). */
function exists(head: HeadRecord): boolean {
  return head.v > 0 && !isDeleted(head, Deleted.Soft);
}

function expectationHolds(expected: ExpectedVersion, head: HeadRecord): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream' || expected === 0) return !exists(head);
  if (expected === 'stream_exists') return exists(head);
  return expected === head.v;
}

function toUnavailable(err: unknown): SkeinError {
  if (isSkeinError(err)) return err;
  return new SkeinError('UNAVAILABLE', 'global positions could not be allocated', { retryAfter: 1 }, { cause: err });
}

/**
 * Opens (or creates) the embedded event store at `options.path`.
 *
 * Durability: every write is answered only after the transaction holding it is synced
 * to disk: batches commit with a synchronous LMDB transaction, which returns after the
 * fdatasync of its pages and the synchronous write of its meta page. Nothing is
 * answered, and no commit listener hears of a write, before that.
 */
export function createEngine(options: EngineOptions): EventStore {
  const cfg = { ...defaultEngineOptions, ...stripUndefined(options) };
  const clock = options.clock ?? Date.now;
  const log = options.logger ?? noopLogger;
  const buckets = new BucketSet({ path: options.path, span: cfg.bucketSpan, mapSizeBytes: cfg.mapSizeBytes, reserveBytes: cfg.storageReserveBytes, maxOpen: cfg.maxOpenBuckets });
  const ownSequencer = options.sequencer === undefined;
  const sequencer: Sequencer = options.sequencer ?? createEmbeddedSequencer(buckets.catalog);
  const heads = new LruCache<string, HeadRecord>(cfg.headCacheSize);
  const listeners = new Set<(appends: readonly CommittedAppend[]) => void>();
  const limits = { maxEventBytes: cfg.maxEventBytes, maxEventsPerAppend: cfg.maxEventsPerAppend };
  const writer: CommitWriter | null = cfg.commitThread ? startCommitThread({ mapSizeBytes: cfg.mapSizeBytes, testCommitDelayMs: cfg.testCommitDelayMs }) : null;

  let highestCommitted = recoverHighestCommitted();
  /** A sequencer allocation is on the wire (there is at most one). */
  let allocating = false;
  let queue: Op[] = [];
  let running: Promise<void> | null = null;
  let closed = false;
  /** Set while storage is faulted: writes are refused until a probe succeeds. */
  let fault: StorageFault | null = null;
  let probeTimer: NodeJS.Timeout | null = null;

  function recoverHighestCommitted(): bigint {
    for (const b of buckets.newestFirst()) {
      for (const { key, value } of b.db.getRange({ start: [GLOBAL, Infinity], end: [GLOBAL], reverse: true, limit: 1 })) {
        const count = (value as GlobalEntry)[3];
        return positionOfKey(key as Key) + BigInt(count - 1);
      }
    }
    return 0n;
  }

  // ---- lookups (committed state; the batch overlay comes first where given) ----

  function loadHead(p: string, s: string, st?: BatchState): HeadRecord {
    const ref = streamRef(p, s);
    const pending = st?.heads.get(ref) ?? st?.prev?.heads.get(ref);
    if (pending) return pending;
    const cached = heads.get(ref);
    if (cached) return cached;
    let head: HeadRecord = EMPTY_HEAD;
    const hash = hashOf(ref);
    for (const b of buckets.newestFirst()) {
      if (!buckets.mayHoldHead(b, hash)) continue;
      const found = b.db.get(headKey(p, s)) as HeadRecord | undefined;
      if (found) {
        head = found;
        break;
      }
    }
    heads.set(ref, head);
    return head;
  }

  /**
   * The buckets that may hold the stream's events, oldest first: those from its head's
   * first to its last event bucket, or every bucket in a store written before heads
   * recorded them.
   */
  function streamBuckets(head: HeadRecord): readonly Bucket[] {
    if (!buckets.indexed || head.fb === undefined) return buckets.all;
    return buckets.between(head.fb, head.lb ?? head.fb);
  }

  function loadRecord(p: string, s: string, v: number, st?: BatchState): EventRecord | undefined {
    const ref = versionRef(p, s, v);
    const pending = st?.records.get(ref) ?? st?.prev?.records.get(ref);
    if (pending) return pending;
    for (const b of streamBuckets(loadHead(p, s, st)).slice().reverse()) {
      const found = getRecord(b, p, s, v);
      if (found) return found;
    }
    return undefined;
  }

  /** An idempotency key's record for this stream, within the window (API.md: keys are per stream). */
  function loadIdempotency(p: string, s: string, key: string, now: number): IdempotencyRecord | undefined {
    // A bucket whose span ended before the window began holds no record within it.
    const windowStart = now - cfg.idempotencyWindowMs;
    const inWindow: Bucket[] = [];
    for (const b of buckets.newestFirst()) {
      if (spanEndOf(b.id) <= windowStart) break;
      inWindow.push(b);
    }
    for (const b of inWindow) {
      const found = b.db.get(idemKey(p, s, key)) as IdempotencyRecord | undefined;
      if (found) return now - found.at < cfg.idempotencyWindowMs ? found : undefined;
    }
    for (const b of inWindow) {
      const legacy = b.db.get(legacyIdemKey(p, key)) as IdempotencyRecord | undefined;
      if (legacy) return legacy.streamId === s && now - legacy.at < cfg.idempotencyWindowMs ? legacy : undefined;
    }
    return undefined;
  }

  // ---- stored records that cannot be read back ----

  /**
   * A stored record that does not decode, or decodes to something that is not an event
   * record, is reported (log line and observer count) and skipped: it fails no read and
   * no append but its own. Its bytes stay on disk for inspection.
   */
  function noteUndecodable(record: SkippedRecord, err: unknown, skipped: SkippedRecord[] | undefined): void {
    log.error({ err, ...record }, 'stored event record cannot be decoded; skipped');
    options.observer?.undecodableRecord?.(record);
    skipped?.push(record);
  }

  /** The event record at a key of bucket `b`, undefined when absent or undecodable (reported). */
  function getRecord(b: Bucket, p: string, s: string, v: number, skipped?: SkippedRecord[], position?: bigint): EventRecord | undefined {
    let value: unknown;
    let err: unknown = new Error('not an event record');
    try {
      value = b.db.get(streamKey(p, s, v));
      if (value === undefined || isEventRecord(value)) return value;
    } catch (e) {
      err = e;
    }
    noteUndecodable({ partition: p, streamId: s, version: v, ...(position === undefined ? {} : { position }) }, err, skipped);
    return undefined;
  }

  /**
   * `db.getRange` that survives values it cannot decode: each one is handed to `onUndecodable`
   * with its key and the range goes on after it. lmdb-js decodes each value as the cursor
   * reaches it and, when decoding throws, leaves its cursor and read transaction open:
   * the iterator is closed here by hand (a for-of would not) before the range resumes.
   */
  function* decodedRange(
    db: Bucket['db'],
    range: { start: Key; end: Key; reverse?: boolean },
    onUndecodable: (key: Key, err: unknown) => void,
  ): Generator<{ key: Key; value: unknown }> {
    let resumeAfter: Key | undefined;
    for (;;) {
      const it = db.getRange(resumeAfter === undefined ? range : { ...range, start: resumeAfter, exclusiveStart: true })[Symbol.iterator]();
      let lastKey = resumeAfter;
      try {
        for (;;) {
          const step = it.next();
          if (step.done) return;
          lastKey = step.value.key;
          yield step.value;
        }
      } catch (err) {
        it.return?.();
        // The value that failed is the one after the last key read.
        let failed: Key | undefined;
        for (const key of db.getKeys({ ...range, ...(lastKey === undefined ? {} : { start: lastKey, exclusiveStart: true }), limit: 1 })) failed = key;
        if (failed === undefined || decodes(db, failed)) throw err;
        onUndecodable(failed, err);
        resumeAfter = failed;
      } finally {
        it.return?.();
      }
    }
  }

  function decodes(db: Bucket['db'], key: Key): boolean {
    try {
      db.get(key);
      return true;
    } catch {
      return false;
    }
  }

  function getMetadata(p: string, s: string): StreamMetadata | null {
    if (buckets.indexed) {
      const at = loadHead(p, s).mb;
      if (at === undefined) return null;
      const found = buckets.byId(at)?.db.get(metaKey(p, s)) as StreamMetadata | undefined;
      if (found) return found;
    }
    for (const b of buckets.newestFirst()) {
      const found = b.db.get(metaKey(p, s)) as StreamMetadata | undefined;
      if (found) return found;
    }
    return null;
  }

  // ---- decisions: one per op, in queue order, each seeing the ones before it ----

  function decide(op: Op, st: BatchState, now: number): Decision {
    switch (op.kind) {
      case 'append':
        return decideAppend(op, st, now);
      case 'delete':
        return decideDelete(op, st);
      case 'metadata': {
        const head = loadHead(op.partition, op.streamId, st);
        if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
        const newHead: HeadRecord = { ...head, mb: buckets.targetId(now) };
        st.heads.set(streamRef(op.partition, op.streamId), newHead);
        return {
          op,
          puts: [
            [metaKey(op.partition, op.streamId), op.metadata],
            [headKey(op.partition, op.streamId), newHead],
          ],
          answer: () => ({ ok: true }),
        };
      }
      case 'snapshot': {
        const head = loadHead(op.partition, op.streamId, st);
        if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
        if (!exists(head)) return answerOnly(op, { ok: false, code: 'STREAM_NOT_FOUND' });
        if (op.version > head.v) {
          return answerOnly(op, { ok: false, code: 'VALIDATION_FAILED', detail: `version ${op.version} is beyond the stream's version ${head.v}` });
        }
        const newHead: HeadRecord = { ...head, sb: buckets.targetId(now) };
        st.heads.set(streamRef(op.partition, op.streamId), newHead);
        return {
          op,
          puts: [
            [snapshotKey(op.partition, op.streamId, op.version), op.data],
            [headKey(op.partition, op.streamId), newHead],
          ],
          answer: () => ({ ok: true }),
        };
      }
    }
  }

  function answerOnly(op: Op, value: unknown): Decision {
    return { op, answer: () => value };
  }

  function decideAppend(op: AppendOp, st: BatchState, now: number): Decision {
    const { partition: p, streamId: s, expected, events } = op;
    const head = loadHead(p, s, st);
    if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });

    const idemRef = op.idempotencyKey === undefined ? undefined : `${streamRef(p, s)}\u0000${op.idempotencyKey}`;
    if (idemRef !== undefined) {
      const inBatch = st.idem.get(idemRef) ?? st.prev?.idem.get(idemRef);
      if (inBatch) {
        if (inBatch.fingerprint !== op.fingerprint) return answerOnly(op, { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
        const original = inBatch.decision;
        return { op, answer: () => ({ ...(original.answer() as object), duplicate: true }) };
      }
      const remembered = loadIdempotency(p, s, op.idempotencyKey!, now);
      if (remembered) {
        if (remembered.h !== op.fingerprint) return answerOnly(op, { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
        return answerOnly(op, {
          ok: true,
          streamId: remembered.streamId,
          firstVersion: remembered.firstVersion,
          lastVersion: remembered.lastVersion,
          firstPosition: remembered.firstPosition,
          lastPosition: remembered.lastPosition,
          duplicate: true,
        });
      }
    }

    if (!expectationHolds(expected, head)) {
      const duplicate = duplicateByEventIds(op, head, st);
      if (duplicate) return duplicate;
      return answerOnly(op, { ok: false, code: 'WRONG_EXPECTED_VERSION', expected, actual: head.v });
    }

    const firstVersion = head.v + 1;
    const records: EventRecord[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const record: EventRecord = { id: e.id ?? randomUUID(), type: e.type, data: e.data, metadata: e.metadata ?? null, ts: now, pos: 0n, n: op.sizes[i]! };
      records[i] = record;
      st.records.set(versionRef(p, s, firstVersion + i), record);
    }
    const target = buckets.targetId(now);
    // An append revives a soft-deleted stream (its hidden versions stay hidden by `start`).
    const { del: _revived, ...kept } = head;
    const newHead: HeadRecord = { ...kept, v: head.v + events.length, fb: head.fb ?? target, lb: target };
    st.heads.set(streamRef(p, s), newHead);

    const decision: Decision = {
      op,
      records,
      firstVersion,
      answer: () => ({
        ok: true,
        streamId: s,
        firstVersion,
        lastVersion: newHead.v,
        firstPosition: records[0]!.pos,
        lastPosition: records[records.length - 1]!.pos,
      }),
    };
    decision.puts = [[headKey(p, s), newHead]];
    if (idemRef !== undefined) st.idem.set(idemRef, { fingerprint: op.fingerprint!, decision });
    return decision;
  }

  /**
   * API.md: with `no_stream` or an exact version, a request whose every event id is
   * already in the stream at exactly the versions it would have written is a duplicate.
   */
  function duplicateByEventIds(op: AppendOp, head: HeadRecord, st: BatchState): Decision | undefined {
    const { expected, events } = op;
    if (expected !== 'no_stream' && typeof expected !== 'number') return undefined;
    const base = expected === 'no_stream' ? 0 : expected;
    if (head.v < base + events.length) return undefined;
    const found: EventRecord[] = [];
    for (let i = 0; i < events.length; i++) {
      const id = events[i]!.id;
      if (id === undefined) return undefined;
      const record = loadRecord(op.partition, op.streamId, base + 1 + i, st);
      if (!record || record.id !== id) return undefined;
      found.push(record);
    }
    return {
      op,
      answer: () => ({
        ok: true,
        streamId: op.streamId,
        firstVersion: base + 1,
        lastVersion: base + events.length,
        firstPosition: found[0]!.pos,
        lastPosition: found[found.length - 1]!.pos,
        duplicate: true,
      }),
    };
  }

  function decideDelete(op: DeleteOp, st: BatchState): Decision {
    const { partition: p, streamId: s, mode, expected } = op;
    const head = loadHead(p, s, st);
    if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
    if (head.v === 0 || (mode === 'soft' && !exists(head))) return answerOnly(op, { ok: false, code: 'STREAM_NOT_FOUND' });
    if (!expectationHolds(expected, head)) return answerOnly(op, { ok: false, code: 'WRONG_EXPECTED_VERSION', expected, actual: head.v });
    const newHead: HeadRecord = { ...head, start: head.v + 1, del: mode === 'hard' ? Deleted.Hard : Deleted.Soft };
    st.heads.set(streamRef(p, s), newHead);
    return { op, puts: [[headKey(p, s), newHead]], answer: () => ({ ok: true }) };
  }

  // ---- the group-commit batcher ----

  /** Maintenance writes to one bucket, each run alone between batches (maintenance.ts). */
  interface MaintenanceWrite extends Pending<unknown> {
    bucket: Bucket;
    run: (db: Bucket['db']) => unknown;
  }
  let maintenanceWrites: MaintenanceWrite[] = [];

  /**
   * Runs `run` in one synchronous transaction of `bucket`, between two batches of the
   * batcher: it never races an append's writes, and it passes the same storage guard.
   */
  function exclusiveWrite<T>(bucket: Bucket, run: (db: Bucket['db']) => T): Promise<T> {
    if (closed) return Promise.reject(new SkeinError('UNAVAILABLE', 'the store is closing', { retryAfter: 1 }));
    return new Promise<T>((resolve, reject) => {
      maintenanceWrites.push({ bucket, run, resolve: resolve as (v: unknown) => void, reject });
      if (!running) running = drain();
    });
  }

  async function runMaintenanceWrite(w: MaintenanceWrite): Promise<void> {
    if (fault && !(await probeStorage())) return w.reject(storageUnavailable(fault, 1));
    // The commit thread holds no environment a maintenance write changes or swaps.
    if (writer) await writer.release().catch(() => undefined);
    try {
      buckets.prepareWrite(w.bucket);
    } catch (err) {
      return w.reject(storageFailed(err, 'the disk refused a write before a maintenance commit'));
    }
    const db = w.bucket.db;
    let result: unknown;
    let failedInside = false;
    try {
      db.transactionSync(() => {
        try {
          result = w.run(db);
        } catch (err) {
          failedInside = true;
          throw err;
        }
      });
    } catch (err) {
      if (failedInside) return w.reject(err);
      buckets.commitFailed(w.bucket);
      return w.reject(storageFailed(err, 'a maintenance commit failed'));
    }
    w.resolve(result);
  }

  function enqueue<T>(make: (pending: Pending<T>) => Op): Promise<T> {
    if (closed) return Promise.reject(new SkeinError('UNAVAILABLE', 'the store is closing', { retryAfter: 1 }));
    return new Promise<T>((resolve, reject) => {
      queue.push(make({ resolve, reject } as Pending<T>));
      if (!running) running = drain();
    });
  }

  /**
   * The batcher loop: take every queued op, decide them in order against the committed
   * state, allocate the batch's positions (one sequencer round trip, during which new
   * ops queue up for the next batch), commit, answer, repeat.
   *
   * Inline (the default), the commit is synchronous on this thread (see `commit`): one
   * batch at a time, since a second batch allocating meanwhile would only make batches
   * smaller and fsyncs more frequent (measured: a two-deep pipeline cut single-event
   * throughput by about 10%, three-deep by 30%; sending the next batch's allocation just
   * before this commit, to overlap the two, gained nothing).
   *
   * With a commit thread (`commitThread`), the next batch is decided (seeing the
   * committing batch's state through `BatchState.prev`) and allocated while one commits,
   * and committed once that one is durable; if it failed, the next is refused as well
   * (it was decided against writes that never happened).
   */
  async function drain(): Promise<void> {
    // Let callers of the same tick join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    let inFlight: { st: BatchState; durable: Promise<boolean> } | null = null;
    const settled = async (): Promise<boolean> => {
      if (!inFlight) return true;
      const ok = await inFlight.durable;
      inFlight = null;
      return ok;
    };
    try {
      // The periodic probe runs here too, so it never overlaps a batch.
      if (fault) await probeStorage();
      for (;;) {
        if (maintenanceWrites.length > 0) {
          await settled();
          const [w, ...rest] = maintenanceWrites;
          maintenanceWrites = rest;
          await runMaintenanceWrite(w!);
          continue;
        }
        if (queue.length === 0) {
          if (!inFlight) break;
          await settled();
          continue;
        }
        const ops = queue.length <= cfg.maxBatchOps ? queue : queue.slice(0, cfg.maxBatchOps);
        queue = queue.length <= cfg.maxBatchOps ? [] : queue.slice(cfg.maxBatchOps);
        if (fault) await settled();
        if (fault && !(await probeStorage())) {
          refuse(ops, storageUnavailable(fault, 1));
          continue;
        }
        const decided = decideBatch(ops, inFlight?.st);
        const prepared = decided && (await allocate(decided));
        if (!writer) {
          if (prepared) commit(prepared);
          continue;
        }
        if (!(await settled())) {
          if (prepared) {
            release(prepared.range);
            refuse(prepared.ops, fault ? storageUnavailable(fault, 1) : new SkeinError('UNAVAILABLE', 'the batch before this one failed to commit', { retryAfter: 1 }));
          }
          continue;
        }
        if (!prepared) continue;
        // The batch before is durable and cached: nothing needs to see through to it any more.
        prepared.st.prev = undefined;
        inFlight = { st: prepared.st, durable: commitOnThread(writer, prepared) };
      }
    } finally {
      running = null;
    }
  }

  function failAll(ops: Op[], err: unknown): void {
    for (const op of ops) op.reject(err);
  }

  // ---- storage faults (storage.ts: why LMDB must not meet a failing write) ----

  /** Fails a batch because of a storage fault; nothing of it was written. */
  function refuse(ops: Op[], err: SkeinError): void {
    options.observer?.storageRefused?.({ code: fault?.code ?? 'UNKNOWN', ops: ops.length });
    failAll(ops, err);
  }

  /** Enters the faulted state (logged once, when it begins); returns what the batch is failed with. */
  function storageFailed(err: unknown, what: string): SkeinError {
    if (!fault) {
      fault = storageFaultOf(err, what, clock());
      log.error({ err, code: fault.code }, 'storage faulted; writes are refused until it recovers');
      options.observer?.storageFault?.(fault);
      probeTimer = setInterval(() => {
        if (!running && !closed) running = drain();
      }, cfg.storageProbeIntervalMs);
      probeTimer.unref();
    }
    return storageUnavailable(fault, 1, err);
  }

  /**
   * Whether storage takes writes again: reopens environments whose commit failed and
   * readies the current bucket (space allocated past its pages, a write probe). Runs
   * only from `drain`, between batches.
   */
  async function probeStorage(): Promise<boolean> {
    if (!fault) return true;
    try {
      await buckets.reopenFailed();
      buckets.prepareWrite(buckets.current(clock()));
    } catch (err) {
      log.debug({ err, code: fault.code }, 'storage still faulted');
      return false;
    }
    log.info({ code: fault.code, faultedMs: clock() - fault.since }, 'storage recovered; writes are accepted again');
    fault = null;
    if (probeTimer) clearInterval(probeTimer);
    probeTimer = null;
    options.observer?.storageFault?.(null);
    return true;
  }

  /** Ranges allocated and not yet committed (their first positions), for the safe point. */
  const uncommitted: bigint[] = [];
  function release(range: { first: bigint } | undefined): void {
    if (!range) return;
    const i = uncommitted.indexOf(range.first);
    if (i >= 0) uncommitted.splice(i, 1);
  }
  let highestAllocated = highestCommitted;

  /** Decides every op of the batch, in order. Undefined when the batch failed as a whole. */
  function decideBatch(ops: Op[], prev: BatchState | undefined): DecidedBatch | undefined {
    const started = performance.now();
    const now = clock();
    const st: BatchState = { heads: new Map(), idem: new Map(), records: new Map(), prev };
    const decisions: Decision[] = [];
    let eventCount = 0;
    for (const op of ops) {
      try {
        const d = decide(op, st, now);
        decisions.push(d);
        if (d.records) eventCount += d.records.length;
      } catch (err) {
        // A decision that cannot be made (an LMDB read error, a stream head that does not
        // decode) fails its own op only: every decide* makes all its reads before it records
        // anything in `st`, so a failed op left no effect later ops could have seen.
        log.error({ err, kind: op.kind, partition: op.partition, streamId: op.streamId }, 'operation could not be decided');
        op.reject(new SkeinError('INTERNAL', 'the operation could not be decided', {}, { cause: err }));
      }
    }
    return { ops, st, decisions, eventCount, now, started };
  }

  /** Allocates the batch's positions (one sequencer round trip). Undefined when the batch failed. */
  async function allocate(batch: DecidedBatch): Promise<PreparedBatch | undefined> {
    const { ops, decisions, eventCount } = batch;
    if (eventCount === 0) return { ...batch, range: undefined };
    // The floor keeps the counter above everything this writer allocated or committed.
    const floor = highestAllocated > highestCommitted ? highestAllocated : highestCommitted;
    allocating = true;
    let range;
    try {
      range = await sequencer.allocate(eventCount, floor);
    } catch (err) {
      failAll(ops, toUnavailable(err));
      return undefined;
    } finally {
      allocating = false;
    }
    if (range.last - range.first + 1n !== BigInt(eventCount) || range.first <= floor || range.first <= highestAllocated) {
      log.error({ first: range.first, last: range.last, count: eventCount, floor, highestAllocated }, 'sequencer returned a range that does not fit');
      failAll(ops, new SkeinError('INTERNAL', 'the sequencer returned a range that does not fit the batch'));
      return undefined;
    }
    uncommitted.push(range.first);
    highestAllocated = range.last;
    let position = range.first;
    for (const d of decisions) {
      if (!d.records) continue;
      for (const r of d.records) r.pos = position++;
    }
    return { ...batch, range };
  }

  /**
   * Writes a prepared batch in one synchronous transaction and answers its ops. The
   * commit runs on this thread and returns once LMDB has synced it (fdatasync of the
   * pages, then the meta page through LMDB's O_DSYNC descriptor), so an answer always
   * follows durability. Committing here rather than in an async lmdb-js transaction
   * costs this thread the page writes and the fdatasync (0.2 to 1 ms per batch here)
   * and saves two event-loop hops per batch (about 2 ms under load, since the async
   * transaction's callback must come back to this thread); measured, it gives 10-15%
   * more single-event appends/s at a lower p99 in a process of its own.
   */
  function commit(batch: PreparedBatch): void {
    const written = writesOf(batch);
    if (written === null) return answer(batch, []);
    const bucket = guardedBucket(batch);
    if (!bucket) return;
    const db = bucket.db;
    try {
      // Tests only: a slow fdatasync, holding this thread as a real one would.
      if (cfg.testCommitDelayMs > 0) Atomics.wait(commitPause, 0, 0, cfg.testCommitDelayMs);
      db.transactionSync(() => {
        for (const [key, value] of written.puts) db.putSync(key, value);
      });
    } catch (err) {
      return commitFailed(batch, bucket, err);
    }
    answer(batch, written.committed);
  }

  /**
   * The same as `commit`, with the transaction on the commit thread: this thread stays
   * free (in a node process, for the router and the other shards) while it syncs, and
   * answers once it is durable. One hop back per batch (the thread's answer). Resolves
   * false when the batch was refused.
   */
  async function commitOnThread(writer: CommitWriter, batch: PreparedBatch): Promise<boolean> {
    const written = writesOf(batch);
    if (written === null) {
      answer(batch, []);
      return true;
    }
    const bucket = guardedBucket(batch);
    if (!bucket) return false;
    try {
      // Encoded here, after the guard and with no commit in flight: a shared structure the
      // encoder saves is its own small commit on this thread (encoded-batch.ts).
      await writer.commit(buckets.directoryOf(bucket), encodeBatch(bucket.db, written.puts));
    } catch (err) {
      commitFailed(batch, bucket, err);
      return false;
    }
    // This thread's read snapshot predates the commit: reads from now on see it.
    bucket.db.resetReadTxn();
    answer(batch, written.committed);
    return true;
  }

  /** Every write of a prepared batch, in order; null when it writes nothing. */
  function writesOf(batch: PreparedBatch): { puts: [Key, unknown][]; committed: CommittedAppend[] } | null {
    if (!batch.decisions.some((d) => d.puts)) return null;
    const puts: [Key, unknown][] = [];
    const committed: CommittedAppend[] = [];
    for (const d of batch.decisions) {
      if (d.records) appendWrites(d, batch.now, puts, committed);
      if (d.puts) for (const put of d.puts) puts.push(put);
    }
    return { puts, committed };
  }

  /** The bucket the batch is written to, guarded for the commit (storage.ts); undefined when the batch was refused. */
  function guardedBucket(batch: PreparedBatch): Bucket | undefined {
    try {
      const bucket = buckets.current(batch.now);
      buckets.prepareWrite(bucket);
      return bucket;
    } catch (err) {
      release(batch.range);
      refuse(batch.ops, storageFailed(err, 'the disk refused a write before the commit'));
      return undefined;
    }
  }

  function commitFailed(batch: PreparedBatch, bucket: Bucket, err: unknown): void {
    // Aborted, nothing of it durable. The environment may be in MDB_FATAL_ERROR,
    // where lmdb-js's next transaction would use an uninitialised txn (storage.ts):
    // it is reopened before anything is written to it again.
    buckets.commitFailed(bucket);
    release(batch.range);
    refuse(batch.ops, storageFailed(err, 'a commit failed'));
  }

  /** Answers a durable batch's ops and tells the commit listeners. */
  function answer(batch: PreparedBatch, committed: CommittedAppend[]): void {
    const { ops, st, decisions, range } = batch;
    if (committed.length > 0 || decisions.some((d) => d.puts)) {
      for (const [ref, head] of st.heads) heads.set(ref, head);
      if (range) highestCommitted = range.last;
      release(range);
    }
    for (const d of decisions) (d.op.resolve as (v: unknown) => void)(d.answer());
    if (committed.length > 0) for (const l of listeners) l(committed);
    options.observer?.batch?.({ ops: ops.length, events: batch.eventCount, seconds: (performance.now() - batch.started) / 1000 });
  }

  function appendWrites(d: Decision, now: number, puts: [Key, unknown][], committed: CommittedAppend[]): void {
    const op = d.op as AppendOp;
    const { partition: p, streamId: s } = op;
    const records = d.records!;
    let version = d.firstVersion!;
    for (const r of records) puts.push([streamKey(p, s, version++), r]);
    const first = records[0]!.pos;
    const last = records[records.length - 1]!.pos;
    // One log entry per append: its positions are consecutive (see keys.ts).
    puts.push([logKey(p, first), [s, d.firstVersion!, records.length]]);
    puts.push([globalKey(first), [p, s, d.firstVersion!, records.length]]);
    if (op.idempotencyKey !== undefined) {
      const idem: IdempotencyRecord = {
        h: op.fingerprint!,
        at: now,
        streamId: s,
        firstVersion: d.firstVersion!,
        lastVersion: version - 1,
        firstPosition: first,
        lastPosition: last,
      };
      puts.push([idemKey(p, s, op.idempotencyKey), idem]);
    }
    committed.push({ partition: p, streamId: s, firstVersion: d.firstVersion!, lastVersion: version - 1, firstPosition: first, lastPosition: last });
  }

  // ---- reads ----

  function readStream(p: string, s: string, opts: ReadStreamOptions = {}): ReadStreamOutcome {
    validatePartition(p);
    validateStreamId(s);
    const limit = parseLimit(opts.limit);
    const maxBytes = opts.maxBytes ?? cfg.readPageBytes;
    let bytes = 0;
    /** Set when the page stopped before an event because of its byte budget. */
    let full = false;
    const head = loadHead(p, s);
    if (isDeleted(head, Deleted.Hard)) return { ok: false, code: 'STREAM_DELETED' };
    if (!exists(head)) return { ok: false, code: 'STREAM_NOT_FOUND' };
    const meta = getMetadata(p, s);
    let lowest = head.start ?? 1;
    if (meta?.truncateBefore !== undefined) lowest = Math.max(lowest, meta.truncateBefore);
    if (meta?.maxCount !== undefined) lowest = Math.max(lowest, head.v - meta.maxCount + 1);
    const cutoff = meta?.maxAge !== undefined ? clock() - meta.maxAge * 1000 : -Infinity;
    const events: RecordedEvent[] = [];
    const skipped: SkippedRecord[] = [];
    const onUndecodable = (key: Key, err: unknown) => noteUndecodable({ partition: p, streamId: s, version: key[3] as number }, err, skipped);
    const backward = opts.direction === 'backward';

    /** Adds the range's events, in its order, until the page is full. */
    const collect = (buckets: readonly Bucket[], range: { start: Key; end: Key; reverse?: boolean }): void => {
      for (const b of buckets) {
        for (const { key, value } of decodedRange(b.db, range, onUndecodable)) {
          if (!isEventRecord(value)) {
            onUndecodable(key, new Error('not an event record'));
            continue;
          }
          if (value.ts < cutoff) continue;
          bytes += pageBytesOf(s, value);
          if (bytes > maxBytes && events.length > 0) {
            full = true;
            return;
          }
          events.push(toRecorded(s, key[3] as number, value));
          if (events.length === limit) return;
        }
      }
    };

    if (!backward) {
      const from = Math.max(opts.from ?? 1, lowest);
      collect(streamBuckets(head), { start: streamKey(p, s, from), end: streamKey(p, s, head.v + 1) });
      const last = events[events.length - 1]?.version;
      return withSkipped({ ok: true, events, version: head.v, next: (full || events.length === limit) && last! < head.v ? last! + 1 : null }, skipped);
    }

    const from = Math.min(opts.from ?? head.v, head.v);
    if (from >= lowest) collect(streamBuckets(head).slice().reverse(), { start: streamKey(p, s, from), end: streamKey(p, s, lowest - 1), reverse: true });
    const last = events[events.length - 1]?.version;
    return withSkipped({ ok: true, events, version: head.v, next: (full || events.length === limit) && last! > lowest ? last! - 1 : null }, skipped);
  }

  function toRecorded(streamId: string, version: number, r: EventRecord): RecordedEvent {
    return { id: r.id, type: r.type, data: r.data, metadata: r.metadata, streamId, version, position: r.pos, timestamp: r.ts };
  }

  function readLog(partition: string | undefined, opts: ReadLogOptions): LogPage {
    const limit = parseLimit(opts.limit);
    const maxBytes = opts.maxBytes ?? cfg.readPageBytes;
    let bytes = 0;
    let truncated = false;
    const from = opts.fromPosition ?? 0n;
    const to = opts.toPosition;
    const events: LoggedEvent[] = [];
    if (to !== undefined && to < from) return { events, next: from };
    const keyOf = partition === undefined ? globalKey : (pos: bigint) => logKey(partition, pos);
    const lowest: Key = partition === undefined ? [GLOBAL] : [partition, 'log'];
    const end: Key = to !== undefined ? keyOf(to + 1n) : partition === undefined ? [GLOBAL, Infinity] : [partition, 'log', Infinity];
    const types = opts.types && opts.types.length > 0 ? new Set(opts.types) : undefined;
    const skipped: SkippedRecord[] = [];
    const include = opts.includePartition;
    // The highest position of an entry left out by `include`: every position up to it was
    // examined (an event within the range either was taken or failed a filter).
    let passed = -1n;
    outer: for (const b of buckets.fromPosition(from)) {
      // An entry covers one append's consecutive positions; start at the one holding `from`.
      let start = keyOf(from);
      for (const key of b.db.getKeys({ start, end: lowest, reverse: true, limit: 1 })) start = key as Key;
      const onBadEntry = (key: Key, err: unknown) => log.error({ err, partition, position: positionOfKey(key) }, 'log entry cannot be decoded; skipped');
      for (const { key, value } of decodedRange(b.db, { start, end }, onBadEntry)) {
        const first = positionOfKey(key);
        let p: string, s: string, v0: number, count: number;
        if (partition === undefined) [p, s, v0, count] = value as GlobalEntry;
        else {
          p = partition;
          [s, v0, count] = value as LogEntry;
        }
        if (include !== undefined && !include(p)) {
          const lastOfEntry = first + BigInt(count) - 1n;
          passed = to !== undefined && to < lastOfEntry ? to : lastOfEntry;
          continue;
        }
        if (opts.category !== undefined && categoryOf(s) !== opts.category) continue;
        const skip = from > first ? Number(from - first) : 0;
        if (skip >= count) continue;
        // The append's events are consecutive versions of one stream at consecutive
        // positions: one get for a single event, one range read for several.
        if (count === 1) {
          if (to !== undefined && first > to) break outer;
          const r = getRecord(b, p, s, v0, skipped, first);
          if (!r || (types && !types.has(r.type))) continue;
          bytes += pageBytesOf(s, r);
          if (bytes > maxBytes && events.length > 0) {
            truncated = true;
            break outer;
          }
          events.push(toLogged(p, s, v0, r));
          if (events.length === limit) break outer;
          continue;
        }
        const onUndecodable = (k: Key, err: unknown) => {
          const version = k[3] as number;
          noteUndecodable({ partition: p, streamId: s, version, position: first + BigInt(version - v0) }, err, skipped);
        };
        for (const { key: k, value: r } of decodedRange(b.db, { start: streamKey(p, s, v0 + skip), end: streamKey(p, s, v0 + count) }, onUndecodable)) {
          const version = k[3] as number;
          const position = first + BigInt(version - v0);
          if (to !== undefined && position > to) break outer;
          if (!isEventRecord(r)) {
            onUndecodable(k, new Error('not an event record'));
            continue;
          }
          if (types && !types.has(r.type)) continue;
          bytes += pageBytesOf(s, r);
          if (bytes > maxBytes && events.length > 0) {
            truncated = true;
            break outer;
          }
          events.push(toLogged(p, s, version, r));
          if (events.length === limit) break outer;
        }
      }
    }
    const last = events[events.length - 1];
    let next = last ? last.position + 1n : from;
    if (passed >= next) next = passed + 1n;
    const page: LogPage = { events, next };
    if (skipped.length > 0) page.skipped = skipped;
    if (truncated) page.truncated = true;
    return page;
  }

  function toLogged(p: string, s: string, version: number, r: EventRecord): LoggedEvent {
    return { id: r.id, type: r.type, data: r.data, metadata: r.metadata, streamId: s, version, position: r.pos, timestamp: r.ts, partition: p };
  }

  // ---- the public surface ----

  const store: EventStore = {
    appendParsed(partition, streamId, append) {
      const { events, sizes, expectedVersion: expected, idempotencyKey } = append;
      if (events.length > limits.maxEventsPerAppend) return Promise.reject(validationError('events', `at most ${limits.maxEventsPerAppend} events per append`));
      for (let i = 0; i < sizes.length; i++) {
        if (sizes[i]! > limits.maxEventBytes) {
          return Promise.reject(new SkeinError('PAYLOAD_TOO_LARGE', `events[${i}] is ${sizes[i]} bytes; at most ${limits.maxEventBytes} allowed`, { field: `events[${i}]`, limit: limits.maxEventBytes }));
        }
      }
      const fingerprint = idempotencyKey === undefined ? undefined : fingerprintOf(streamId, expected, events);
      return enqueue<AppendOutcome>((pending) => ({ kind: 'append', partition, streamId, expected, events, sizes: sizes as number[], idempotencyKey, fingerprint, ...pending }));
    },

    append(partition: string, streamId: string, request: AppendRequest): Promise<AppendOutcome> {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const expected = parseExpectedVersion(request.expectedVersion);
        const sizes: number[] = [];
        const events = validateProposedEvents(request.events, limits, sizes);
        const idempotencyKey = request.idempotencyKey === undefined ? undefined : validateIdempotencyKey(request.idempotencyKey);
        const fingerprint = idempotencyKey === undefined ? undefined : fingerprintOf(streamId, expected, events);
        return enqueue<AppendOutcome>((pending) => ({
          kind: 'append',
          partition,
          streamId,
          expected,
          events,
          sizes,
          idempotencyKey,
          fingerprint,
          ...pending,
        }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    readStream,
    readPartitionLog(partition, opts = {}) {
      validatePartition(partition);
      return readLog(partition, opts);
    },
    readShardLog(opts = {}) {
      return readLog(undefined, opts);
    },

    deleteStream(partition, streamId, opts = {}) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const mode = parseDeleteMode(opts.mode);
        const expected = parseExpectedVersion(opts.expectedVersion);
        return enqueue<DeleteOutcome>((pending) => ({ kind: 'delete', partition, streamId, mode, expected, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    getMetadata(partition, streamId) {
      validatePartition(partition);
      validateStreamId(streamId);
      return getMetadata(partition, streamId);
    },

    setMetadata(partition, streamId, metadata) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const valid = validateStreamMetadata(metadata);
        return enqueue<WriteOutcome>((pending) => ({ kind: 'metadata', partition, streamId, metadata: valid, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    putSnapshot(partition, streamId, version, data) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        if (!Number.isSafeInteger(version) || version < 1) throw new SkeinError('VALIDATION_FAILED', 'version must be an integer ≥ 1', { field: 'version' });
        if (data === undefined) throw new SkeinError('VALIDATION_FAILED', 'snapshot data is required', { field: 'data' });
        validateJsonValue(data, 'data');
        return enqueue<WriteOutcome>((pending) => ({ kind: 'snapshot', partition, streamId, version, data, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    latestSnapshot(partition, streamId) {
      validatePartition(partition);
      validateStreamId(streamId);
      const at = buckets.indexed ? loadHead(partition, streamId).sb : undefined;
      const candidates = !buckets.indexed ? buckets.newestFirst() : at === undefined ? [] : [buckets.byId(at) ?? buckets.newestFirst()].flat();
      for (const b of candidates) {
        for (const { key, value } of b.db.getRange({
          start: snapshotKey(partition, streamId, MAX_VERSION),
          end: snapshotKey(partition, streamId, 0),
          reverse: true,
          limit: 1,
        })) {
          return { version: (key as Key)[3] as number, data: value };
        }
      }
      return null;
    },

    streamState(partition, streamId) {
      const head = loadHead(partition, streamId);
      const del = head.del ?? Deleted.No;
      return { version: head.v, deleted: del === Deleted.Hard ? 'hard' : del === Deleted.Soft ? 'soft' : 'no' };
    },

    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    writerState(): WriterState {
      let lowestUncommitted: bigint | null = null;
      for (const first of uncommitted) if (lowestUncommitted === null || first < lowestUncommitted) lowestUncommitted = first;
      return { allocating, lowestUncommitted, highestCommitted };
    },

    storageFault() {
      return fault;
    },

    environmentSizes() {
      return buckets.sizes();
    },

    environmentCount() {
      return { total: buckets.all.length, open: buckets.openEnvironments };
    },

    async close() {
      if (closed) return;
      closed = true;
      if (probeTimer) clearInterval(probeTimer);
      while (running) await running;
      await writer?.close();
      if (ownSequencer) await sequencer.close();
      await buckets.close();
    },
  };
  // Partition moves (partition-transfer.ts): range copies in and out of the buckets.
  attachPartitionTransfer(store, { buckets, clock, forgetCachedState: () => heads.clear() });
  attachMaintenance(store, {
    buckets,
    clock,
    idempotencyWindowMs: cfg.idempotencyWindowMs,
    exclusiveWrite,
    loadHead: (p, s) => loadHead(p, s),
    cacheHead: (p, s, head) => heads.set(streamRef(p, s), head),
    getMetadata,
    log,
  });
  return store;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Converts a failed outcome into the registry error a service answers with. */
export function outcomeError(outcome: { ok: false; code: string; expected?: ExpectedVersion; actual?: number; detail?: string }): SkeinError {
  switch (outcome.code) {
    case 'WRONG_EXPECTED_VERSION':
      return new SkeinError('WRONG_EXPECTED_VERSION', `expected version ${String(outcome.expected)}, stream is at ${outcome.actual}`, {
        expected: outcome.expected,
        actual: outcome.actual,
      });
    case 'STREAM_DELETED':
      return new SkeinError('STREAM_DELETED', 'the stream was hard-deleted');
    case 'STREAM_NOT_FOUND':
      return new SkeinError('STREAM_NOT_FOUND', 'no such stream');
    case 'IDEMPOTENCY_KEY_REUSED':
      return new SkeinError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
    case 'VALIDATION_FAILED':
      return new SkeinError('VALIDATION_FAILED', outcome.detail ?? 'invalid request', { field: 'version' });
    default:
      return new SkeinError('INTERNAL', 'unexpected outcome');
  }
}

export type { AppendSuccess };
