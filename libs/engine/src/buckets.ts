import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { environmentOptions } from './environment.ts';
import { SkeinError } from '@skein/protocol';
import { GLOBAL, positionOfKey, type Key } from './keys.ts';
import { BloomFilter, type Hash } from './bloom.ts';
import { GuardedFile, checkWritable } from './storage.ts';

/** How wide one bucket (one LMDB environment) is in time. */
export type BucketSpan = 'month' | 'day' | 'hour';

/** One bucket: its id (sortable: `2026-11`, `2026-11-27`, `2026-11-27T10`) and its environment. */
export interface Bucket {
  readonly id: string;
  /** The environment, opened on demand (see BucketSet: a bounded set stays open). */
  readonly db: RootDatabase<unknown, Key>;
}

export interface BucketOptions {
  /** Directory holding `catalog/` and one `bucket-<id>/` per bucket. */
  path: string;
  span: BucketSpan;
  /** LMDB map size per environment in bytes. lmdb-js grows it on demand; this is the start. */
  mapSizeBytes: number;
  /** Most space kept allocated past a bucket's used pages (see storage.ts), bytes. */
  reserveBytes: number;
  /** Most environments kept open (the current bucket always is). Default 64. */
  maxOpen?: number;
}

/** What the catalog records of a bucket. */
interface CatalogBucket {
  createdAt: number;
  /** Highest global position in it, recorded once it is closed (a newer bucket exists); an upper bound after retention. */
  lastPos?: bigint;
  /** Bumped whenever maintenance changed a closed bucket (retention, compaction): backups reuse a copy of the same generation. */
  gen?: number;
}

/**
 * A bucket as the set keeps it. Its environment is opened on first use and may be closed
 * again when it has not been used for the longest time (never while pinned, never the
 * newest); it is replaced when reopened after a failed commit.
 */
class BucketEntry implements Bucket {
  handle: RootDatabase<unknown, Key> | null = null;
  file: GuardedFile | null = null;
  /** A commit on this environment failed: it may be in MDB_FATAL_ERROR and is never written again. */
  poisoned = false;
  /** Users holding the environment across an await (maintenance); a pinned environment is never closed. */
  pins = 0;
  /** When it was last used, in uses of the set (for least-recently-used closing). */
  used = 0;

  constructor(
    readonly id: string,
    readonly info: CatalogBucket,
    private readonly set: BucketSet,
  ) {}

  get db(): RootDatabase<unknown, Key> {
    return this.set.openEntry(this);
  }
}

/** Catalog format 2: stream heads locate their events, metadata and snapshots (HeadRecord.fb/lb/mb/sb). */
const FORMAT = 2;

/** The id of the bucket a timestamp (ms, UTC) belongs to. */
export function bucketIdOf(ts: number, span: BucketSpan): string {
  // Asked for every append and batch with nearly the same time: the last answer holds
  // until its bucket's end (a Date and an ISO string each time showed at 1% of the node
  // process's main thread under load).
  if (span === lastBucket.span && ts >= lastBucket.from && ts < lastBucket.to) return lastBucket.id;
  const date = new Date(ts);
  const iso = date.toISOString();
  const y = date.getUTCFullYear();
  const m = date.getUTCMonth();
  const d = date.getUTCDate();
  const h = date.getUTCHours();
  const [id, from, to] =
    span === 'month'
      ? [iso.slice(0, 7), Date.UTC(y, m, 1), Date.UTC(y, m + 1, 1)]
      : span === 'day'
        ? [iso.slice(0, 10), Date.UTC(y, m, d), Date.UTC(y, m, d + 1)]
        : [iso.slice(0, 13), Date.UTC(y, m, d, h), Date.UTC(y, m, d, h + 1)];
  lastBucket = { span, from, to, id };
  return id;
}

let lastBucket: { span: BucketSpan | null; from: number; to: number; id: string } = { span: null, from: 0, to: 0, id: '' };

function openEnv(path: string, mapSizeBytes: number): RootDatabase<unknown, Key> {
  try {
    return open<unknown, Key>(environmentOptions(path, mapSizeBytes));
  } catch (err) {
    throw new SkeinError('INTERNAL', `cannot open LMDB environment at ${path}`, {}, { cause: err });
  }
}

/** When bucket `id`'s time span ends (ms, UTC). Every write into a bucket happens before its span ends (see `current`). */
export function spanEndOf(id: string): number {
  if (id.length === 7) {
    const [y, m] = id.split('-').map(Number) as [number, number];
    return Date.UTC(y, m, 1);
  }
  if (id.length === 10) return Date.parse(`${id}T00:00:00Z`) + 86_400_000;
  return Date.parse(`${id}:00:00Z`) + 3_600_000;
}

/**
 * The set of bucket environments of one store, oldest first, and the catalog that
 * records which exist (and holds the embedded sequencer's counter).
 *
 * At most `maxOpen` environments stay open (file handles and maps): one not used for the
 * longest time is closed when another opens. Closing waits for the end of the current
 * synchronous run (a microtask), so an environment is never closed under a live cursor
 * of a synchronous read; users that hold an environment across an await pin it.
 */
export class BucketSet {
  readonly catalog: RootDatabase<unknown, Key>;
  /** Oldest first. Never empty after `current()` was called once. */
  private list: BucketEntry[] = [];
  private reversed: BucketEntry[] = [];
  /** A catalog write failed: the catalog is not written again in this process (see `current`). */
  private catalogPoisoned = false;
  private readonly options: BucketOptions;
  private readonly maxOpen: number;
  private openCount = 0;
  private uses = 0;
  private sweepScheduled = false;
  /**
   * Whether stream heads of this store locate their buckets (catalog format 2). A store
   * written before has heads without them: lookups visit every bucket.
   */
  readonly indexed: boolean;
  /** Per closed bucket, the streams (`partition\0stream`) whose head it holds, as a Bloom filter (catalog `['heads', id]`). */
  private readonly headFilters = new Map<string, BloomFilter>();

  constructor(options: BucketOptions) {
    this.options = options;
    this.maxOpen = Math.max(2, options.maxOpen ?? 64);
    mkdirSync(options.path, { recursive: true });
    this.catalog = openEnv(join(options.path, 'catalog'), 16 * 1024 * 1024);
    const found: [string, CatalogBucket][] = [];
    for (const { key, value } of this.catalog.getRange({ start: ['bucket'], end: ['bucket', '\uffff'] })) found.push([key[1] as string, value as CatalogBucket]);
    found.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [id, info] of found) this.list.push(new BucketEntry(id, info, this));
    this.reversed = this.list.slice().reverse();
    let format = this.catalog.get(['format']) as number | undefined;
    if (format === undefined && found.length === 0) {
      this.catalog.putSync(['format'], FORMAT);
      format = FORMAT;
    }
    this.indexed = format === FORMAT;
    // Stores written before closed buckets recorded their highest position.
    for (const entry of this.list.slice(0, -1)) {
      if (entry.info.lastPos === undefined) this.recordLastPosition(entry);
      const stored = this.catalog.get(['heads', entry.id]) as { bits: Uint8Array; probes: number } | undefined;
      if (stored) this.headFilters.set(entry.id, BloomFilter.from(stored));
      else this.recordHeadFilter(entry, headRefsOf(entry.db));
    }
    this.sweep();
  }

  /** Opens (when closed) and returns the environment of `entry`, marking it used. */
  openEntry(entry: BucketEntry): RootDatabase<unknown, Key> {
    entry.used = ++this.uses;
    if (entry.handle) return entry.handle;
    const dir = this.dirOf(entry.id);
    entry.handle = openEnv(dir, this.options.mapSizeBytes);
    entry.file = new GuardedFile(join(dir, 'data.mdb'), this.options.reserveBytes);
    this.openCount++;
    if (this.openCount > this.maxOpen && !this.sweepScheduled) {
      this.sweepScheduled = true;
      queueMicrotask(() => this.sweep());
    }
    return entry.handle;
  }

  /** Closes environments used least recently until at most `maxOpen` are open (never the newest, never a pinned one). */
  private sweep(): void {
    this.sweepScheduled = false;
    if (this.openCount <= this.maxOpen) return;
    const newest = this.list[this.list.length - 1];
    const candidates = this.list.filter((e) => e.handle && e !== newest && e.pins === 0).sort((a, b) => a.used - b.used);
    for (const entry of candidates) {
      if (this.openCount <= this.maxOpen) break;
      this.closeEntry(entry);
    }
  }

  /** Closes an environment now. Only for entries no cursor uses (see `sweep`). */
  private closeEntry(entry: BucketEntry): Promise<void> {
    if (!entry.handle) return Promise.resolve();
    const db = entry.handle;
    entry.file?.close();
    entry.file = null;
    entry.handle = null;
    this.openCount--;
    // Bucket environments have no async writes: lmdb-js closes them at once.
    return db.close();
  }

  /** How many environments are open now (the catalog not counted). */
  get openEnvironments(): number {
    return this.openCount;
  }

  private dirOf(id: string): string {
    return join(this.options.path, `bucket-${id.replace(':', '-')}`);
  }

  /** Buckets oldest first. */
  get all(): readonly Bucket[] {
    return this.list;
  }

  /** Buckets newest first. */
  newestFirst(): readonly Bucket[] {
    return this.reversed;
  }

  /** The bucket with this id, or null. */
  byId(id: string): Bucket | null {
    return this.list.find((b) => b.id === id) ?? null;
  }

  /** Buckets oldest first whose id is within [first, last] (binary search: reads of a stream cost nothing per other bucket). */
  between(first: string, last: string): readonly Bucket[] {
    const list = this.list;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.id < first) lo = mid + 1;
      else hi = mid;
    }
    let end = lo;
    while (end < list.length && list[end]!.id <= last) end++;
    return list.slice(lo, end);
  }

  /** The newest bucket, or null before the first write. */
  newest(): Bucket | null {
    return this.list[this.list.length - 1] ?? null;
  }

  /** Buckets oldest first from the first that may hold a position ≥ `from` (closed buckets record their highest). */
  fromPosition(from: bigint): readonly Bucket[] {
    let i = 0;
    while (i < this.list.length - 1 && this.list[i]!.info.lastPos !== undefined && this.list[i]!.info.lastPos! < from) i++;
    return i === 0 ? this.list : this.list.slice(i);
  }

  /** The id of the bucket `current(ts)` returns (without creating it). */
  targetId(ts: number): string {
    const id = bucketIdOf(ts, this.options.span);
    const newest = this.list[this.list.length - 1];
    return newest && newest.id >= id ? newest.id : id;
  }

  /** The generation of a bucket's contents (see CatalogBucket.gen). */
  generation(bucket: Bucket): number {
    return this.entryOf(bucket).info.gen ?? 0;
  }

  /** Records that maintenance changed a closed bucket (its generation grows). */
  changed(bucket: Bucket): void {
    const entry = this.entryOf(bucket);
    entry.info.gen = (entry.info.gen ?? 0) + 1;
    this.catalog.putSync(['bucket', entry.id], entry.info);
  }

  /** The directory of a bucket's environment. */
  directoryOf(bucket: Bucket): string {
    return this.dirOf(bucket.id);
  }

  /** Keeps `bucket`'s environment open until `unpin` (for use across awaits). */
  pin(bucket: Bucket): void {
    const entry = this.entryOf(bucket);
    entry.pins++;
    this.openEntry(entry);
  }

  unpin(bucket: Bucket): void {
    this.entryOf(bucket).pins--;
  }

  /** Whether `bucket` may hold the head of the stream whose ref hashes to `hash` (false: certainly not). */
  mayHoldHead(bucket: Bucket, hash: Hash): boolean {
    const filter = this.headFilters.get(bucket.id);
    return filter === undefined || filter.mayHold(hash);
  }

  private recordHeadFilter(entry: BucketEntry, refs: Set<string>): void {
    const filter = BloomFilter.of(refs, refs.size);
    this.catalog.putSync(['heads', entry.id], { bits: filter.bits, probes: filter.probes });
    this.headFilters.set(entry.id, filter);
  }

  private recordLastPosition(entry: BucketEntry): void {
    let last = 0n;
    for (const { key, value } of entry.db.getRange({ start: [GLOBAL, Infinity], end: [GLOBAL], reverse: true, limit: 1 })) {
      last = positionOfKey(key as Key) + BigInt((value as [string, string, number, number])[3] - 1);
    }
    entry.info.lastPos = last;
    this.catalog.putSync(['bucket', entry.id], entry.info);
  }

  /**
   * The bucket new writes go to at time `ts`: the bucket of `ts`, or the newest
   * bucket when the clock is behind it (writes never go back to an older bucket,
   * so bucket order is version and position order, and a write at `ts` lands in a
   * bucket whose span ends after `ts`).
   */
  current(ts: number): Bucket {
    const id = bucketIdOf(ts, this.options.span);
    const newest = this.list[this.list.length - 1];
    if (newest && newest.id >= id) return newest;
    // Room (and a writable catalog) is checked first: creating an environment writes its
    // files, and the catalog is written by lmdb-js, whose failed writes meet the native
    // bugs described in storage.ts. A catalog write that fails anyway is not retried.
    if (this.catalogPoisoned) throw new SkeinError('UNAVAILABLE', 'a catalog write failed earlier; restart the process', { retryAfter: 1 });
    checkWritable(this.options.path, 2 * this.options.reserveBytes, join(this.options.path, 'catalog', 'data.mdb'));
    const dir = this.dirOf(id);
    const existed = existsSync(dir);
    const bucket = new BucketEntry(id, { createdAt: ts }, this);
    try {
      this.openEntry(bucket);
    } catch (err) {
      // Not in the catalog yet: nothing refers to a half-created environment.
      if (!existed) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    try {
      // Recorded durably before anything is written into it, so a reopen always finds it.
      this.catalog.putSync(['bucket', id], bucket.info);
      if (newest) {
        this.recordLastPosition(newest);
        // Made from the keys themselves, whoever wrote them (appends, imports, carried heads).
        this.recordHeadFilter(newest, headRefsOf(newest.db));
      }
    } catch (err) {
      this.catalogPoisoned = true;
      void this.closeEntry(bucket);
      throw err;
    }
    this.list.push(bucket);
    this.reversed = this.list.slice().reverse();
    return bucket;
  }

  /**
   * Reopens every environment a commit failed on (LMDB's recovery from MDB_PANIC), once
   * its file can be written again: a failed reopen would leave reads without an
   * environment. lmdb-js shares one native environment per path while any handle is
   * open, so the old handle is closed before the new one opens (bucket environments have
   * no async writes, so the close completes at once). Throws the storage error.
   */
  async reopenFailed(): Promise<void> {
    for (const entry of this.list) {
      if (!entry.poisoned) continue;
      checkWritable(this.options.path, 0, join(this.dirOf(entry.id), 'data.mdb'));
      await this.closeEntry(entry);
      this.openEntry(entry);
      entry.poisoned = false;
    }
  }

  /**
   * Readies `bucket` for a commit (storage.ts): keeps space allocated past its used
   * pages and probes its data file. Throws the storage error when the disk cannot take
   * the commit, or when a failed commit left the environment to be reopened first.
   */
  prepareWrite(bucket: Bucket): void {
    const entry = this.entryOf(bucket);
    if (entry.poisoned) throw new SkeinError('UNAVAILABLE', `bucket ${entry.id} awaits reopening after a failed commit`, { retryAfter: 1 });
    const db = this.openEntry(entry);
    entry.file!.prepare(db);
  }

  /** A commit on `bucket` failed: it is not written again before `reopenFailed()`. */
  commitFailed(bucket: Bucket): void {
    this.entryOf(bucket).poisoned = true;
  }

  private entryOf(bucket: Bucket): BucketEntry {
    if (bucket instanceof BucketEntry && this.list.includes(bucket)) return bucket;
    const entry = this.reversed.find((b) => b.id === bucket.id);
    if (!entry) throw new Error(`unknown bucket ${bucket.id}`);
    return entry;
  }

  /**
   * Removes a closed bucket whole: out of the catalog (durably, first), closed, its
   * directory deleted. The caller has carried forward what must survive it.
   */
  async drop(bucket: Bucket): Promise<void> {
    const entry = this.entryOf(bucket);
    if (entry === this.list[this.list.length - 1]) throw new Error('the newest bucket is never dropped');
    if (entry.pins > 0) throw new Error(`bucket ${entry.id} is in use`);
    this.catalog.removeSync(['bucket', entry.id]);
    this.catalog.removeSync(['heads', entry.id]);
    this.headFilters.delete(entry.id);
    this.list = this.list.filter((e) => e !== entry);
    this.reversed = this.list.slice().reverse();
    await this.closeEntry(entry);
    rmSync(this.dirOf(entry.id), { recursive: true, force: true });
  }

  /**
   * Replaces a closed bucket's data file with `file` (a verified compacted copy): the
   * environment is closed, the file renamed over the old one, and the environment opens
   * again on next use. Runs without an await between closing and renaming, so no read
   * sees the environment closed. Throws when the bucket is pinned.
   */
  async replaceDataFile(bucket: Bucket, file: string): Promise<void> {
    const entry = this.entryOf(bucket);
    if (entry === this.list[this.list.length - 1]) throw new Error('the newest bucket is never replaced');
    if (entry.pins > 0) throw new Error(`bucket ${entry.id} is in use`);
    const closing = this.closeEntry(entry);
    renameSync(file, join(this.dirOf(entry.id), 'data.mdb'));
    await closing;
  }

  /** Bytes the environments use on disk (for metrics): used pages of open ones, file size of closed ones. */
  sizes(): { id: string; bytes: number }[] {
    return this.list.map((b) => {
      if (!b.handle) return { id: b.id, bytes: fileSize(join(this.dirOf(b.id), 'data.mdb')) };
      const stat = b.handle.getStats() as { pageSize?: number; lastPageNumber?: number };
      return { id: b.id, bytes: (stat.lastPageNumber ?? 0) * (stat.pageSize ?? 4096) };
    });
  }

  async close(): Promise<void> {
    for (const b of this.list) await this.closeEntry(b);
    await this.catalog.close();
  }
}

/**
 * The streams (`partition\0stream`) whose head an environment holds. Partitions are
 * skipped through by seeking: `[p, 'head', …]` keys are contiguous per partition, and
 * `[p, 'zzzz']` sorts after every key of partition p (its second elements are names
 * below it) and before the next partition.
 */
export function headRefsOf(db: RootDatabase<unknown, Key>): Set<string> {
  const refs = new Set<string>();
  let start: Key | undefined;
  for (;;) {
    let partition: string | undefined;
    for (const key of db.getKeys(start === undefined ? { limit: 1 } : { start, limit: 1 })) partition = (key as Key)[0] as string;
    if (partition === undefined) return refs;
    if (partition === GLOBAL) {
      start = [GLOBAL, Infinity];
      continue;
    }
    for (const key of db.getKeys({ start: [partition, 'head'] })) {
      const k = key as Key;
      if (k[1] !== 'head') break;
      refs.add(`${partition}\u0000${k[2] as string}`);
    }
    start = [partition, 'zzzz'];
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
