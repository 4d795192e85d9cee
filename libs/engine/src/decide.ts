import { randomUUID } from 'node:crypto';
import { SkeinError, type DeleteMode, type ExpectedVersion, type ProposedEvent, type StreamMetadata } from '@skein/protocol';
import { headKey, metaKey, snapshotKey, type Key } from './keys.ts';
import { Deleted, type EventRecord, type HeadRecord } from './records.ts';
import { exists, isDeleted, streamRef, versionRef, type PendingState, type StoreAccess } from './store-access.ts';
import type { AppendOutcome, DeleteOutcome, WriteOutcome } from './types.ts';

// ---- write operations, queued for the group-commit batcher (batcher.ts) ----

export interface Pending<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

export interface AppendOp extends Pending<AppendOutcome> {
  kind: 'append';
  partition: string;
  streamId: string;
  expected: ExpectedVersion;
  events: ProposedEvent[];
  /** Each event's measured size (validation's), kept in its record. */
  sizes: number[];
  idempotencyKey: string | undefined;
  fingerprint: string | undefined;
  /** ParsedAppend.batched: its caller comes back only once the whole batch it sent is answered. */
  batched: boolean;
}
export interface DeleteOp extends Pending<DeleteOutcome> {
  kind: 'delete';
  partition: string;
  streamId: string;
  mode: DeleteMode;
  expected: ExpectedVersion;
}
export interface MetadataOp extends Pending<WriteOutcome> {
  kind: 'metadata';
  partition: string;
  streamId: string;
  metadata: StreamMetadata;
}
export interface SnapshotOp extends Pending<WriteOutcome> {
  kind: 'snapshot';
  partition: string;
  streamId: string;
  version: number;
  data: unknown;
}
export type Op = AppendOp | DeleteOp | MetadataOp | SnapshotOp;

/** What the batch decided for one op: writes to make, and how to answer once durable. */
export interface Decision {
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
export interface BatchState extends PendingState {
  heads: Map<string, HeadRecord>;
  idem: Map<string, { fingerprint: string; decision: Decision }>;
  /** Records accepted in this batch, by stream key and version. */
  records: Map<string, EventRecord>;
  prev?: BatchState | undefined;
}

/** A batch whose ops are decided, waiting for its positions. */
export interface DecidedBatch {
  ops: Op[];
  st: BatchState;
  decisions: Decision[];
  eventCount: number;
  now: number;
  started: number;
}

/** A batch decided and allocated, ready to be written. */
export interface PreparedBatch extends DecidedBatch {
  /** First and last allocated position, when the batch has events. */
  range: { first: bigint; last: bigint } | undefined;
}

export function expectationHolds(expected: ExpectedVersion, head: HeadRecord): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream' || expected === 0) return !exists(head);
  if (expected === 'stream_exists') return exists(head);
  return expected === head.v;
}

/** Decides every op of the batch, in order. Undefined when the batch failed as a whole. */
export function decideBatch(access: StoreAccess, ops: Op[], prev: BatchState | undefined): DecidedBatch | undefined {
  const started = performance.now();
  const now = access.clock();
  const st: BatchState = { heads: new Map(), idem: new Map(), records: new Map(), prev };
  const decisions: Decision[] = [];
  let eventCount = 0;
  for (const op of ops) {
    try {
      const d = decide(access, op, st, now);
      decisions.push(d);
      if (d.records) eventCount += d.records.length;
    } catch (err) {
      // A decision that cannot be made (an LMDB read error, a stream head that does not
      // decode) fails its own op only: every decide* makes all its reads before it records
      // anything in `st`, so a failed op left no effect later ops could have seen.
      access.log.error({ err, kind: op.kind, partition: op.partition, streamId: op.streamId }, 'operation could not be decided');
      op.reject(new SkeinError('INTERNAL', 'the operation could not be decided', {}, { cause: err }));
    }
  }
  return { ops, st, decisions, eventCount, now, started };
}

// ---- decisions: one per op, in queue order, each seeing the ones before it ----

export function decide(access: StoreAccess, op: Op, st: BatchState, now: number): Decision {
  switch (op.kind) {
    case 'append':
      return decideAppend(access, op, st, now);
    case 'delete':
      return decideDelete(access, op, st);
    case 'metadata': {
      const head = access.loadHead(op.partition, op.streamId, st);
      if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
      const newHead: HeadRecord = { ...head, mb: access.buckets.targetId(now) };
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
      const head = access.loadHead(op.partition, op.streamId, st);
      if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
      if (!exists(head)) return answerOnly(op, { ok: false, code: 'STREAM_NOT_FOUND' });
      if (op.version > head.v) {
        return answerOnly(op, { ok: false, code: 'VALIDATION_FAILED', detail: `version ${op.version} is beyond the stream's version ${head.v}` });
      }
      const newHead: HeadRecord = { ...head, sb: access.buckets.targetId(now) };
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

function decideAppend(access: StoreAccess, op: AppendOp, st: BatchState, now: number): Decision {
  const { partition: p, streamId: s, expected, events } = op;
  const head = access.loadHead(p, s, st);
  if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });

  const idemRef = op.idempotencyKey === undefined ? undefined : `${streamRef(p, s)}\u0000${op.idempotencyKey}`;
  if (idemRef !== undefined) {
    const inBatch = st.idem.get(idemRef) ?? st.prev?.idem.get(idemRef);
    if (inBatch) {
      if (inBatch.fingerprint !== op.fingerprint) return answerOnly(op, { ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
      const original = inBatch.decision;
      return { op, answer: () => ({ ...(original.answer() as object), duplicate: true }) };
    }
    const remembered = access.loadIdempotency(p, s, op.idempotencyKey!, now);
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
    const duplicate = duplicateByEventIds(access, op, head, st);
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
  const target = access.buckets.targetId(now);
  // An append revives a soft-deleted stream (its hidden versions stay hidden by `start`).
  // A plain spread when there is no `del` to drop: object rest with an excluded key is a
  // runtime call in V8, per append, for a field almost no head has.
  const v = head.v + events.length;
  const fb = head.fb ?? target;
  let newHead: HeadRecord;
  if (head.del === undefined) newHead = { ...head, v, fb, lb: target };
  else {
    const { del: _revived, ...kept } = head;
    newHead = { ...kept, v, fb, lb: target };
  }
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
  // The head is written when more than its version changes: the stream's first append, its
  // first in this bucket (`lb`), a revival. An append that only advances the version writes
  // none (since 087564e): the stream's last event key is its version (store-access.ts,
  // loadHead), one put of four fewer per append (README, "The whole gap in one run").
  if (head.fb === undefined || head.lb !== target || head.del !== undefined) decision.puts = [[headKey(p, s), newHead]];
  if (idemRef !== undefined) st.idem.set(idemRef, { fingerprint: op.fingerprint!, decision });
  return decision;
}

/**
 * API.md: with `no_stream` or an exact version, a request whose every event id is
 * already in the stream at exactly the versions it would have written is a duplicate.
 */
function duplicateByEventIds(access: StoreAccess, op: AppendOp, head: HeadRecord, st: BatchState): Decision | undefined {
  const { expected, events } = op;
  if (expected !== 'no_stream' && typeof expected !== 'number') return undefined;
  const base = expected === 'no_stream' ? 0 : expected;
  if (head.v < base + events.length) return undefined;
  const found: EventRecord[] = [];
  for (let i = 0; i < events.length; i++) {
    const id = events[i]!.id;
    if (id === undefined) return undefined;
    const record = access.loadRecord(op.partition, op.streamId, base + 1 + i, st);
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

function decideDelete(access: StoreAccess, op: DeleteOp, st: BatchState): Decision {
  const { partition: p, streamId: s, mode, expected } = op;
  const head = access.loadHead(p, s, st);
  if (isDeleted(head, Deleted.Hard)) return answerOnly(op, { ok: false, code: 'STREAM_DELETED' });
  if (head.v === 0 || (mode === 'soft' && !exists(head))) return answerOnly(op, { ok: false, code: 'STREAM_NOT_FOUND' });
  if (!expectationHolds(expected, head)) return answerOnly(op, { ok: false, code: 'WRONG_EXPECTED_VERSION', expected, actual: head.v });
  const newHead: HeadRecord = { ...head, start: head.v + 1, del: mode === 'hard' ? Deleted.Hard : Deleted.Soft };
  st.heads.set(streamRef(p, s), newHead);
  return { op, puts: [[headKey(p, s), newHead]], answer: () => ({ ok: true }) };
}
