import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { SkeinError } from '@skein/protocol';
import type { Key } from './keys.ts';
import { GuardedFile, checkWritable } from './storage.ts';

/** How wide one bucket (one LMDB environment) is in time. */
export type BucketSpan = 'month' | 'day' | 'hour';

/** One bucket: its id (sortable: `2026-11`, `2026-11-27`, `2026-11-27T10`) and its environment. */
export interface Bucket {
  readonly id: string;
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
}

/** A bucket as the set keeps it: its environment is replaced when reopened after a failed commit. */
interface BucketEntry {
  id: string;
  db: RootDatabase<unknown, Key>;
  file: GuardedFile;
  /** A commit on this environment failed: it may be in MDB_FATAL_ERROR and is never written again. */
  poisoned: boolean;
}

/** The id of the bucket a timestamp (ms, UTC) belongs to. */
export function bucketIdOf(ts: number, span: BucketSpan): string {
  const iso = new Date(ts).toISOString();
  if (span === 'month') return iso.slice(0, 7);
  if (span === 'day') return iso.slice(0, 10);
  return iso.slice(0, 13);
}

function openEnv(path: string, mapSizeBytes: number): RootDatabase<unknown, Key> {
  try {
    // Durability is not configurable: the engine commits with synchronous transactions,
    // which sync before returning. overlappingSync stays on: it fixes the environment's
    // meta-page layout (existing files were made with it) and lets the catalog's async
    // writes sync off-thread. Never noSync, never mapAsync.
    return open<unknown, Key>({
      path,
      mapSize: mapSizeBytes,
      encoding: 'msgpack',
      keyEncoding: 'ordered-binary',
      compression: false,
      overlappingSync: true,
      sharedStructuresKey: Symbol.for('skein.structures'),
    });
  } catch (err) {
    throw new SkeinError('INTERNAL', `cannot open LMDB environment at ${path}`, {}, { cause: err });
  }
}

/**
 * The set of bucket environments of one store, oldest first, and the catalog that
 * records which exist (and holds the embedded sequencer's counter).
 */
export class BucketSet {
  readonly catalog: RootDatabase<unknown, Key>;
  /** Oldest first. Never empty after `current()` was called once. */
  private readonly list: BucketEntry[] = [];
  private reversed: BucketEntry[] = [];
  /** A catalog write failed: the catalog is not written again in this process (see `current`). */
  private catalogPoisoned = false;
  private readonly options: BucketOptions;

  constructor(options: BucketOptions) {
    this.options = options;
    mkdirSync(options.path, { recursive: true });
    this.catalog = openEnv(join(options.path, 'catalog'), 16 * 1024 * 1024);
    const ids: string[] = [];
    for (const { key } of this.catalog.getRange({ start: ['bucket'], end: ['bucket', '\uffff'] })) ids.push(key[1] as string);
    ids.sort();
    for (const id of ids) this.list.push(this.entry(id));
    this.reversed = this.list.slice().reverse();
  }

  private entry(id: string): BucketEntry {
    const dir = this.dirOf(id);
    return { id, db: openEnv(dir, this.options.mapSizeBytes), file: new GuardedFile(join(dir, 'data.mdb'), this.options.reserveBytes), poisoned: false };
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

  /**
   * The bucket new writes go to at time `ts`: the bucket of `ts`, or the newest
   * bucket when the clock is behind it (writes never go back to an older bucket,
   * so bucket order is version and position order).
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
    let bucket: BucketEntry;
    try {
      bucket = this.entry(id);
    } catch (err) {
      // Not in the catalog yet: nothing refers to a half-created environment.
      if (!existed) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    try {
      // Recorded durably before anything is written into it, so a reopen always finds it.
      this.catalog.putSync(['bucket', id], { createdAt: ts });
    } catch (err) {
      this.catalogPoisoned = true;
      void bucket.db.close();
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
      checkWritable(this.options.path, 0, entry.file.path);
      entry.file.close();
      await entry.db.close();
      entry.db = openEnv(this.dirOf(entry.id), this.options.mapSizeBytes);
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
    entry.file.prepare(entry.db);
  }

  /** A commit on `bucket` failed: it is not written again before `reopenFailed()`. */
  commitFailed(bucket: Bucket): void {
    this.entryOf(bucket).poisoned = true;
  }

  private entryOf(bucket: Bucket): BucketEntry {
    const entry = this.reversed.find((b) => b.id === bucket.id);
    if (!entry) throw new Error(`unknown bucket ${bucket.id}`);
    return entry;
  }

  /** Bytes the environments use on disk (for metrics). */
  sizes(): { id: string; bytes: number }[] {
    return this.list.map((b) => {
      const stat = b.db.getStats() as { treeBranchPageCount?: number; treeLeafPageCount?: number; overflowPages?: number; pageSize?: number; lastPageNumber?: number };
      return { id: b.id, bytes: (stat.lastPageNumber ?? 0) * (stat.pageSize ?? 4096) };
    });
  }

  async close(): Promise<void> {
    for (const b of this.list) {
      b.file.close();
      await b.db.close();
    }
    await this.catalog.close();
  }
}
