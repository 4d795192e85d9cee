import type { CommittedAppend } from './types.ts';
import type { Bucket } from './buckets.ts';
import type { CommitWriter } from './commit-writer.ts';
import type { Decision, AppendOp, PreparedBatch } from './decide.ts';
import { encodeBatch } from './encoded-batch.ts';
import type { StorageGuard } from './faults.ts';
import { globalKeyOf, idemKey, logKeyOf, splitPosition, streamKey, type Key } from './keys.ts';
import type { IdempotencyRecord } from './records.ts';
import type { StoreAccess } from './store-access.ts';

/**
 * Committing a prepared batch (decided, positions allocated): its writes, the
 * transaction (inline, or on the commit thread), and its answers once durable.
 */

/** Where the test-only commit delay sleeps (Atomics.wait on a value that never changes). */
const commitPause = new Int32Array(new SharedArrayBuffer(4));

export type CommitListener = (appends: readonly CommittedAppend[]) => void;

/** The writer's positions: what it allocated and committed, for the floor and the safe point. */
export interface Positions {
  highestCommitted: bigint;
  highestAllocated: bigint;
  /** A sequencer allocation is on the wire (there is at most one). */
  allocating: boolean;
  /** Ranges allocated and not yet committed (their first positions), for the safe point. */
  readonly uncommitted: bigint[];
}

export function release(positions: Positions, range: { first: bigint } | undefined): void {
  if (!range) return;
  const i = positions.uncommitted.indexOf(range.first);
  if (i >= 0) positions.uncommitted.splice(i, 1);
}

/** What a commit works with: the store, its fault state, the writer's positions, the commit listeners. */
export interface CommitContext {
  readonly access: StoreAccess;
  readonly guard: StorageGuard;
  readonly positions: Positions;
  readonly listeners: ReadonlySet<CommitListener>;
}

/**
 * Writes a prepared batch in one synchronous transaction and answers its ops. The
 * commit runs on this thread and returns once LMDB has synced it (fdatasync of the
 * pages, then the meta page through LMDB's O_DSYNC descriptor), so an answer always
 * follows durability. Committing here rather than in an async lmdb-js transaction
 * costs this thread the page writes and the fdatasync (0.2 to 1 ms per batch here)
 * and saves two event-loop hops per batch (about 2 ms under load, since the async
 * transaction's callback must come back to this thread); measured, it gives 10-15%
 * more single-event appends/s at a lower p99 in a process of its own. False when the
 * batch was refused.
 */
export function commit(ctx: CommitContext, batch: PreparedBatch): boolean {
  const ready = readyToCommit(ctx, batch);
  if (typeof ready === 'boolean') return ready;
  const { written, bucket } = ready;
  const db = bucket.db;
  try {
    // Tests only: a slow fdatasync, holding this thread as a real one would.
    if (ctx.access.cfg.testCommitDelayMs > 0) Atomics.wait(commitPause, 0, 0, ctx.access.cfg.testCommitDelayMs);
    db.transactionSync(() => {
      for (const [key, value] of written.puts) db.putSync(key, value);
    });
  } catch (err) {
    commitFailed(ctx, batch, bucket, err);
    return false;
  }
  answer(ctx, batch, written.committed);
  return true;
}

/**
 * The same as `commit`, with the transaction on the commit thread: this thread stays
 * free (in a node process, for the router and the other shards) while it syncs, and
 * answers once it is durable. One hop back per batch (the thread's answer). Resolves
 * false when the batch was refused.
 */
export async function commitOnThread(ctx: CommitContext, writer: CommitWriter, batch: PreparedBatch): Promise<boolean> {
  const ready = readyToCommit(ctx, batch);
  if (typeof ready === 'boolean') return ready;
  const { written, bucket } = ready;
  try {
    // Encoded here, after the guard and with no commit in flight: a shared structure the
    // encoder saves is its own small commit on this thread (encoded-batch.ts).
    await writer.commit(ctx.access.buckets.directoryOf(bucket), encodeBatch(bucket.db, written.puts));
  } catch (err) {
    commitFailed(ctx, batch, bucket, err);
    return false;
  }
  // This thread's read snapshot predates the commit: reads from now on see it.
  bucket.db.resetReadTxn();
  answer(ctx, batch, written.committed);
  return true;
}

/**
 * What both commits start with: the batch's writes and the bucket they go to, guarded
 * (storage.ts). True when the batch writes nothing and was answered; false when it was
 * refused (the guard failed).
 */
function readyToCommit(ctx: CommitContext, batch: PreparedBatch): { written: NonNullable<ReturnType<typeof writesOf>>; bucket: Bucket } | boolean {
  const written = writesOf(batch);
  if (written === null) {
    answer(ctx, batch, []);
    return true;
  }
  const bucket = guardedBucket(ctx, batch);
  return bucket ? { written, bucket } : false;
}

/** Every write of a prepared batch, in order; null when it writes nothing. */
function writesOf(batch: PreparedBatch): { puts: [Key, unknown][]; committed: CommittedAppend[] } | null {
  if (!batch.decisions.some((d) => d.puts || d.records)) return null;
  const puts: [Key, unknown][] = [];
  const committed: CommittedAppend[] = [];
  for (const d of batch.decisions) {
    if (d.records) appendWrites(d, batch.now, puts, committed);
    if (d.puts) for (const put of d.puts) puts.push(put);
  }
  return { puts, committed };
}

/** The bucket the batch is written to, guarded for the commit (storage.ts); undefined when the batch was refused. */
function guardedBucket(ctx: CommitContext, batch: PreparedBatch): Bucket | undefined {
  try {
    const bucket = ctx.access.buckets.current(batch.now);
    ctx.access.buckets.prepareWrite(bucket);
    return bucket;
  } catch (err) {
    release(ctx.positions, batch.range);
    ctx.guard.refuse(batch.ops, ctx.guard.storageFailed(err, 'the disk refused a write before the commit'));
    return undefined;
  }
}

function commitFailed(ctx: CommitContext, batch: PreparedBatch, bucket: Bucket, err: unknown): void {
  // Aborted, nothing of it durable. The environment may be in MDB_FATAL_ERROR,
  // where lmdb-js's next transaction would use an uninitialised txn (storage.ts):
  // it is reopened before anything is written to it again.
  ctx.access.buckets.commitFailed(bucket);
  release(ctx.positions, batch.range);
  ctx.guard.refuse(batch.ops, ctx.guard.storageFailed(err, 'a commit failed'));
}

/** Answers a durable batch's ops and tells the commit listeners. */
function answer(ctx: CommitContext, batch: PreparedBatch, committed: CommittedAppend[]): void {
  const { ops, st, decisions, range } = batch;
  if (committed.length > 0 || decisions.some((d) => d.puts)) {
    for (const [ref, head] of st.heads) ctx.access.heads.set(ref, head);
    if (range) ctx.positions.highestCommitted = range.last;
    release(ctx.positions, range);
  }
  for (const d of decisions) (d.op.resolve as (v: unknown) => void)(d.answer());
  if (committed.length > 0) for (const l of ctx.listeners) l(committed);
  ctx.access.observer?.batch?.({ ops: ops.length, events: batch.eventCount, seconds: (performance.now() - batch.started) / 1000 });
}

function appendWrites(d: Decision, now: number, puts: [Key, unknown][], committed: CommittedAppend[]): void {
  const op = d.op as AppendOp;
  const { partition: p, streamId: s } = op;
  const records = d.records!;
  let version = d.firstVersion!;
  for (const r of records) puts.push([streamKey(p, s, version++), r]);
  const first = records[0]!.pos;
  const last = records[records.length - 1]!.pos;
  // One log entry per append: its positions are consecutive (see keys.ts). Both keys from
  // one split of the position (a bigint division and remainder each).
  const [hi, lo] = splitPosition(first);
  puts.push([logKeyOf(p, hi, lo), [s, d.firstVersion!, records.length]]);
  puts.push([globalKeyOf(hi, lo), [p, s, d.firstVersion!, records.length]]);
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
