import type { StreamMetadata } from '@skein/protocol';
import { BucketSet, spanEndOf, type Bucket } from './buckets.ts';
import { hashOf } from './bloom.ts';
import type { EngineConfig } from './config.ts';
import { headKey, idemKey, legacyIdemKey, metaKey, streamKey, MAX_VERSION, type Key } from './keys.ts';
import { LruCache } from './lru.ts';
import { Deleted, type EventRecord, type HeadRecord, type IdempotencyRecord } from './records.ts';
import type { Clock, EngineLogger, EngineObserver, SkippedRecord } from './types.ts';

/**
 * The store's shared state and its committed-record lookups: the buckets, the head
 * cache, the configuration, and reading (and decoding) what is stored. The decisions,
 * the batcher and the reads all work through one StoreAccess.
 */

const EMPTY_HEAD: HeadRecord = Object.freeze({ v: 0 });
const noopLogger: EngineLogger = { debug() {}, info() {}, warn() {}, error() {} };

export const streamRef = (p: string, s: string) => `${p}\u0000${s}`;
export const versionRef = (p: string, s: string, v: number) => `${p}\u0000${s}\u0000${v}`;

/** The shape every stored event record has; anything else read at an event key is undecodable. */
export function isEventRecord(value: unknown): value is EventRecord {
  if (value === null || typeof value !== 'object') return false;
  const r = value as Partial<EventRecord>;
  return typeof r.id === 'string' && typeof r.type === 'string' && typeof r.ts === 'number' && typeof r.pos === 'bigint';
}

export function isDeleted(head: HeadRecord, kind: Deleted): boolean {
  return (head.del ?? Deleted.No) === kind;
}

/** Whether the stream counts as existing for expected-version checks (a soft-deleted one does not). */
export function exists(head: HeadRecord): boolean {
  return head.v > 0 && !isDeleted(head, Deleted.Soft);
}

/**
 * What an earlier, still uncommitted write changed: the batch overlay that lookups see
 * before the committed state (decide.ts's BatchState).
 */
export interface PendingState {
  heads: Map<string, HeadRecord>;
  /** Records accepted and not yet committed, by stream key and version. */
  records: Map<string, EventRecord>;
  prev?: PendingState | undefined;
}

export interface StoreAccess {
  readonly cfg: EngineConfig;
  readonly clock: Clock;
  readonly log: EngineLogger;
  readonly observer: EngineObserver | undefined;
  readonly buckets: BucketSet;
  /** Committed stream heads, by streamRef. */
  readonly heads: LruCache<string, HeadRecord>;
  loadHead(p: string, s: string, st?: PendingState): HeadRecord;
  streamBuckets(head: HeadRecord): readonly Bucket[];
  loadRecord(p: string, s: string, v: number, st?: PendingState): EventRecord | undefined;
  loadIdempotency(p: string, s: string, key: string, now: number): IdempotencyRecord | undefined;
  noteUndecodable(record: SkippedRecord, err: unknown, skipped: SkippedRecord[] | undefined): void;
  getRecord(b: Bucket, p: string, s: string, v: number, skipped?: SkippedRecord[], position?: bigint): EventRecord | undefined;
  decodedRange(db: Bucket['db'], range: { start: Key; end: Key; reverse?: boolean }, onUndecodable: (key: Key, err: unknown) => void): Generator<{ key: Key; value: unknown }>;
  getMetadata(p: string, s: string): StreamMetadata | null;
}

/** Opens the buckets at `cfg.path` and the lookups over them. */
export function createStoreAccess(cfg: EngineConfig): StoreAccess {
  const clock = cfg.clock ?? Date.now;
  const log = cfg.logger ?? noopLogger;
  const buckets = new BucketSet({ path: cfg.path, span: cfg.bucketSpan, mapSizeBytes: cfg.mapSizeBytes, reserveBytes: cfg.storageReserveBytes, maxOpen: cfg.maxOpenBuckets });
  const heads = new LruCache<string, HeadRecord>(cfg.headCacheSize);
  const observer = cfg.observer;

  // ---- lookups (committed state; the batch overlay comes first where given) ----

  function loadHead(p: string, s: string, st?: PendingState): HeadRecord {
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
        head = withLastVersion(p, s, found);
        break;
      }
    }
    heads.set(ref, head);
    return head;
  }

  /**
   * A stored head with the stream's version: an append that only advances the version
   * writes no head (decide.ts, since 087564e), so the stored `v` is a lower bound and
   * the stream's highest event key is its version. That key is in the head's last event
   * bucket `lb`, or in a newer one (a partition move's pages may land in a bucket newer
   * than the head copy they carried): buckets are searched newest first down to `lb`.
   * Retention raises a stored `v` before it removes a stream's last events
   * (maintenance.ts), so a version never restarts. Only on a head-cache miss.
   */
  function withLastVersion(p: string, s: string, found: HeadRecord): HeadRecord {
    if (found.lb === undefined) return found;
    for (const b of buckets.newestFirst()) {
      if (b.id < found.lb) break;
      for (const key of b.db.getKeys({ start: streamKey(p, s, MAX_VERSION), end: streamKey(p, s, found.v), reverse: true, limit: 1 })) {
        const v = (key as Key)[3];
        if (typeof v === 'number' && v > found.v) return { ...found, v };
      }
    }
    return found;
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

  function loadRecord(p: string, s: string, v: number, st?: PendingState): EventRecord | undefined {
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
    observer?.undecodableRecord?.(record);
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

  return { cfg, clock, log, observer, buckets, heads, loadHead, streamBuckets, loadRecord, loadIdempotency, noteUndecodable, getRecord, decodedRange, getMetadata };
}
