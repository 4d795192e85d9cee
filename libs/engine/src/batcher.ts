import { SkeinError, isSkeinError, type PositionRange, type Sequencer } from '@skein/protocol';
import type { Bucket, BucketSet } from './buckets.ts';
import { commit, commitOnThread, release, type CommitContext, type CommitListener, type Positions } from './commit.ts';
import { startCommitThread, type CommitWriter } from './commit-writer.ts';
import { decideBatch, type BatchState, type DecidedBatch, type Op, type Pending, type PreparedBatch } from './decide.ts';
import { StorageGuard, failAll } from './faults.ts';
import { GLOBAL, positionOfKey, type Key } from './keys.ts';
import type { GlobalEntry } from './reads.ts';
import { ReturnTally } from './return-tally.ts';
import { storageUnavailable, type StorageFault } from './storage.ts';
import type { StoreAccess } from './store-access.ts';
import type { WriterState } from './types.ts';

/** The group-commit batcher: queued writes, in batches, through decide → allocate → commit. */
export interface Batcher {
  /** Queues one write op; it is answered once its batch is durable (or refused). */
  enqueue<T>(make: (pending: Pending<T>) => Op): Promise<T>;
  /**
   * Runs `run` in one synchronous transaction of `bucket`, between two batches of the
   * batcher: it never races an append's writes, and it passes the same storage guard.
   */
  exclusiveWrite<T>(bucket: Bucket, run: (db: Bucket['db']) => T): Promise<T>;
  onCommit(listener: CommitListener): () => void;
  writerState(): WriterState;
  storageFault(): StorageFault | null;
  /** Refuses new writes, waits for the batch in progress, stops the commit thread. */
  close(): Promise<void>;
}

function toUnavailable(err: unknown): SkeinError {
  if (isSkeinError(err)) return err;
  return new SkeinError('UNAVAILABLE', 'global positions could not be allocated', { retryAfter: 1 }, { cause: err });
}

function recoverHighestCommitted(buckets: BucketSet): bigint {
  for (const b of buckets.newestFirst()) {
    for (const { key, value } of b.db.getRange({ start: [GLOBAL, Infinity], end: [GLOBAL], reverse: true, limit: 1 })) {
      const count = (value as GlobalEntry)[3];
      return positionOfKey(key as Key) + BigInt(count - 1);
    }
  }
  return 0n;
}

/** Whether the caller of `op` writes again on its own once answered (a router's batch does not: ParsedAppend.batched). */
const returnsOnItsOwn = (op: Op): boolean => op.kind !== 'append' || !op.batched;

export function createBatcher(access: StoreAccess, sequencer: Sequencer): Batcher {
  const { cfg, buckets, log } = access;
  const writer: CommitWriter | null = cfg.commitThread ? startCommitThread({ mapSizeBytes: cfg.mapSizeBytes, testCommitDelayMs: cfg.testCommitDelayMs }) : null;
  const listeners = new Set<CommitListener>();
  const highestCommitted = recoverHighestCommitted(buckets);
  const positions: Positions = { highestCommitted, highestAllocated: highestCommitted, allocating: false, uncommitted: [] };
  let queue: Op[] = [];
  let running: Promise<void> | null = null;
  let closed = false;
  const guard = new StorageGuard(access, () => {
    if (!running && !closed) running = drain();
  });
  const ctx: CommitContext = { access, guard, positions, listeners };
  /** Writers answered and not back yet: this store's own, or its node's (EngineOptions.returnTally). */
  const tally = cfg.returnTally ?? new ReturnTally();

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
      else gathering?.();
    });
  }

  async function runMaintenanceWrite(w: MaintenanceWrite): Promise<void> {
    if (guard.fault && !(await guard.probeStorage())) return w.reject(storageUnavailable(guard.fault, 1));
    // The commit thread holds no environment a maintenance write changes or swaps.
    if (writer) await writer.release().catch(() => undefined);
    try {
      buckets.prepareWrite(w.bucket);
    } catch (err) {
      return w.reject(guard.storageFailed(err, 'the disk refused a write before a maintenance commit'));
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
      return w.reject(guard.storageFailed(err, 'a maintenance commit failed'));
    }
    w.resolve(result);
  }

  function enqueue<T>(make: (pending: Pending<T>) => Op): Promise<T> {
    if (closed) return Promise.reject(new SkeinError('UNAVAILABLE', 'the store is closing', { retryAfter: 1 }));
    return new Promise<T>((resolve, reject) => {
      const op = make({ resolve, reject } as Pending<T>);
      queue.push(op);
      // A router's batch is not writers coming back (returning, below).
      if (returnsOnItsOwn(op)) tally.arrived();
      if (!running) running = drain();
      else if (gathering && queue.length >= gatherTarget) gathering();
    });
  }

  /**
   * Gathering the next batch (`batchWaitMs`). Once a batch of two or more ops is answered,
   * their callers usually write again at once (a service's writers each wait for their
   * answer): the next batch waits until as many ops as were queued then plus those just
   * answered are queued, or every writer answered by the stores sharing its tally (a
   * node's shards: return-tally.ts) is queued again in one of them, or `batchWaitMs`
   * passed, whichever comes first. Steady writers then share one batch per commit
   * instead of splitting into two halves that alternate (one deciding while the other
   * commits). A batch's cost is mostly fixed (the sequencer
   * round trip, the guard, the hand-off, the fdatasync and LMDB's page writes: ~600 µs of
   * CPU per batch in a node process against ~130 µs per append), so fewer, larger batches
   * is where a node's CPU per append went down (README, "Where the time goes"). A lone
   * writer (batches of one) never waits.
   */
  let gatherTarget = 0;
  let gathering: (() => void) | null = null;

  /** The ops of a batch whose callers may come back on their own (not a router's batch: ParsedAppend.batched). */
  function returning(ops: readonly Op[]): number {
    let n = 0;
    for (const op of ops) if (returnsOnItsOwn(op)) n++;
    return n;
  }

  function expectReturns(answered: number): void {
    // Closing: the callers answered cannot queue here any more.
    gatherTarget = !closed && cfg.batchWaitMs > 0 && answered >= 2 ? queue.length + answered : 0;
    if (gatherTarget > 0) tally.answered(answered);
  }

  function gathered(): Promise<void> {
    return new Promise<void>((resolve) => {
      let cancel = () => {};
      const mark = tally.mark();
      const done = () => {
        if (gathering !== done) return;
        clearTimeout(timer);
        cancel();
        gathering = null;
        gatherTarget = 0;
        resolve();
      };
      const timer = setTimeout(() => {
        tally.forgive(mark);
        done();
      }, cfg.batchWaitMs);
      gathering = done;
      cancel = tally.whenAllBack(done);
    });
  }

  /**
   * The batcher loop: take every queued op, decide them in order against the committed
   * state, allocate the batch's positions (one sequencer round trip, during which new
   * ops queue up for the next batch), commit, answer, repeat.
   *
   * Inline (the default), the commit is synchronous on this thread (commit.ts): one
   * batch at a time, since a second batch allocating meanwhile would only make batches
   * smaller and fsyncs more frequent (measured: a two-deep pipeline cut single-event
   * throughput by about 10%, three-deep by 30%; sending the next batch's allocation just
   * before this commit, to overlap the two, gained nothing).
   *
   * With a commit thread (`commitThread`), the next batch is decided (seeing the
   * committing batch's state through `BatchState.prev`) and allocated while one commits,
   * and committed once that one is durable; if it failed, the next is refused as well
   * (it was decided against writes that never happened). Unless batches are gathered
   * (`batchWaitMs`, see `expectReturns`): then one batch is under way at a time, and the
   * next one is formed once it was answered and its callers had the chance to come back.
   */
  async function drain(): Promise<void> {
    // Let callers of the same tick join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    let inFlight: { st: BatchState; durable: Promise<boolean>; ops: number } | null = null;
    const settled = async (): Promise<boolean> => {
      if (!inFlight) return true;
      const { durable, ops } = inFlight;
      const ok = await durable;
      inFlight = null;
      if (ok) expectReturns(ops);
      return ok;
    };
    try {
      // The periodic probe runs here too, so it never overlaps a batch.
      if (guard.fault) await guard.probeStorage();
      for (;;) {
        if (maintenanceWrites.length > 0) {
          // A maintenance write may take a while: no range is held meanwhile.
          if (ahead || rest) await dropAhead();
          await settled();
          const [w, ...others] = maintenanceWrites;
          maintenanceWrites = others;
          await runMaintenanceWrite(w!);
          continue;
        }
        if (cfg.batchWaitMs > 0 && inFlight) {
          await settled();
          continue;
        }
        if (gatherTarget > queue.length && !tally.allBack && !closed) {
          allocateAhead();
          await gathered();
        } else gatherTarget = 0;
        if (queue.length === 0) {
          if (ahead || rest) {
            // Idle: nothing is held (and callers that came meanwhile are seen next).
            await dropAhead();
            continue;
          }
          if (!inFlight) break;
          await settled();
          continue;
        }
        const ops = queue.length <= cfg.maxBatchOps ? queue : queue.slice(0, cfg.maxBatchOps);
        queue = queue.length <= cfg.maxBatchOps ? [] : queue.slice(cfg.maxBatchOps);
        if (guard.fault) await settled();
        if (guard.fault && !(await guard.probeStorage())) {
          await dropAhead();
          guard.refuse(ops, storageUnavailable(guard.fault, 1));
          continue;
        }
        const decided = decideBatch(access, ops, inFlight?.st);
        const prepared = decided && (await allocate(decided));
        if (!writer) {
          if (prepared && commit(ctx, prepared)) expectReturns(returning(prepared.ops));
          continue;
        }
        if (!(await settled())) {
          if (prepared) {
            release(positions, prepared.range);
            guard.refuse(prepared.ops, guard.fault ? storageUnavailable(guard.fault, 1) : new SkeinError('UNAVAILABLE', 'the batch before this one failed to commit', { retryAfter: 1 }));
          }
          continue;
        }
        if (!prepared) continue;
        // The batch before is durable and cached: nothing needs to see through to it any more.
        prepared.st.prev = undefined;
        inFlight = { st: prepared.st, durable: commitOnThread(ctx, writer, prepared), ops: returning(prepared.ops) };
      }
    } finally {
      gatherTarget = 0;
      // Reached with a range held only when the loop threw: released without an await, so
      // that no caller queues between the loop's last look at the queue and `running`.
      if (rest) release(positions, rest);
      rest = null;
      void ahead?.then((range) => release(positions, range));
      ahead = null;
      running = null;
    }
  }

  /**
   * Allocating ahead. While a batch gathers (`gathered`), positions for it are allocated
   * at once, so that the sequencer's round trip (with Redis's `appendfsync always`, an
   * AOF fsync: ~500 µs of the ~3 ms a batch took at 32 writers) overlaps the gathering
   * instead of following it. The count asked for is the gather target times the events
   * per op of the batch before, a quarter more and one spare: one batch's worth. A
   * batch takes the first positions it needs; the rest is held for the next batch when
   * it is enough for it, else released. What no batch takes is a gap (global positions
   * may have gaps: DESIGN.md). A batch larger than what is held releases it and
   * allocates its own.
   *
   * Invariant: a range is held only from its reply to the next batch decided (which
   * takes it or releases it), or until the batcher idles, a maintenance write runs or
   * the storage faults, which release it: an idle shard holds no range, and while one is
   * held it counts as allocated and uncommitted (the safe point stays below it).
   *
   * Why one batch's worth: sized for two, the sequencer's round trips halved (0.4 per
   * batch instead of 1.04; Redis 4 instead of 9 µs and the node ~9% less CPU per append),
   * but a range held across a batch holds every global reader behind it (other shards'
   * newer positions wait for this shard to use or release it): tenant-log subscription
   * lag went from p50 1.5-2.5 / p99 6-13.5 ms to p50 3.4-4.7 / p99 13-27 ms
   * (read-lag.bench, 3 rounds × 2 alternating runs); one batch's worth kept it at p50
   * 1.9-2.7 / p99 7.6-15 ms.
   */
  let ahead: Promise<PositionRange | undefined> | null = null;
  /** The rest of a range whose first positions the batch before took. */
  let rest: PositionRange | null = null;
  let eventsPerOp = 1;

  const sizeOf = (range: PositionRange) => range.last - range.first + 1n;

  function allocateAhead(): void {
    if (ahead || gatherTarget === 0) return;
    const count = Math.ceil(gatherTarget * eventsPerOp * 1.25) + 1;
    if (rest && sizeOf(rest) >= BigInt(count)) return;
    if (rest) release(positions, rest);
    rest = null;
    const floor = floorOfAllocations();
    positions.allocating = true;
    ahead = sequencer.allocate(count, floor).then(
      (range) => {
        positions.allocating = false;
        if (!fits(range, count, floor)) return undefined;
        positions.uncommitted.push(range.first);
        positions.highestAllocated = range.last;
        return range;
      },
      (err: unknown) => {
        // The batch allocates again, and answers this error then if it persists.
        positions.allocating = false;
        log.debug({ err }, 'allocating ahead failed');
        return undefined;
      },
    );
  }

  /** The range held for the next batch (allocated ahead, or the rest of one); the caller's from here. */
  async function takeAhead(): Promise<PositionRange | undefined> {
    if (ahead) {
      const range = (await ahead) ?? undefined;
      ahead = null;
      return range;
    }
    const range = rest ?? undefined;
    rest = null;
    return range;
  }

  /** Releases any range held for the next batch. */
  async function dropAhead(): Promise<undefined> {
    if (ahead || rest) release(positions, await takeAhead());
    return undefined;
  }

  /** The floor keeps the counter above everything this writer allocated or committed. */
  function floorOfAllocations(): bigint {
    const { highestAllocated, highestCommitted } = positions;
    return highestAllocated > highestCommitted ? highestAllocated : highestCommitted;
  }

  function fits(range: PositionRange, count: number, floor: bigint): boolean {
    if (range.last - range.first + 1n === BigInt(count) && range.first > floor && range.first > positions.highestAllocated) return true;
    log.error({ first: range.first, last: range.last, count, floor, highestAllocated: positions.highestAllocated }, 'sequencer returned a range that does not fit');
    return false;
  }

  /** Allocates the batch's positions (one sequencer round trip, unless allocated ahead). Undefined when the batch failed. */
  async function allocate(batch: DecidedBatch): Promise<PreparedBatch | undefined> {
    const { ops, decisions, eventCount } = batch;
    if (eventCount === 0) {
      if (ahead || rest) await dropAhead();
      return { ...batch, range: undefined };
    }
    eventsPerOp = eventCount / ops.length;
    let range = ahead || rest ? await takeAhead() : undefined;
    if (range && sizeOf(range) < BigInt(eventCount)) {
      release(positions, range);
      range = undefined;
    }
    if (range && sizeOf(range) > BigInt(eventCount)) {
      // The batch takes the first positions; the rest is held for the next batch.
      rest = { first: range.first + BigInt(eventCount), last: range.last };
      positions.uncommitted.push(rest.first);
      range = { first: range.first, last: rest.first - 1n };
    }
    if (!range) {
      const floor = floorOfAllocations();
      positions.allocating = true;
      try {
        range = await sequencer.allocate(eventCount, floor);
      } catch (err) {
        failAll(ops, toUnavailable(err));
        return undefined;
      } finally {
        positions.allocating = false;
      }
      if (!fits(range, eventCount, floor)) {
        failAll(ops, new SkeinError('INTERNAL', 'the sequencer returned a range that does not fit the batch'));
        return undefined;
      }
      positions.uncommitted.push(range.first);
      positions.highestAllocated = range.last;
    }
    let position = range.first;
    for (const d of decisions) {
      if (!d.records) continue;
      for (const r of d.records) r.pos = position++;
    }
    return { ...batch, range };
  }

  return {
    enqueue,
    exclusiveWrite,
    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    writerState(): WriterState {
      let lowestUncommitted: bigint | null = null;
      for (const first of positions.uncommitted) if (lowestUncommitted === null || first < lowestUncommitted) lowestUncommitted = first;
      return { allocating: positions.allocating, lowestUncommitted, highestCommitted: positions.highestCommitted };
    },
    storageFault() {
      return guard.fault;
    },
    async close() {
      if (closed) return;
      closed = true;
      guard.stopProbing();
      gathering?.();
      while (running) await running;
      await writer?.close();
    },
  };
}
