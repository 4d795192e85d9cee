import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { SkeinError } from '@skein/protocol';
import type { Key } from './keys.ts';

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
  private readonly list: Bucket[] = [];
  private reversed: Bucket[] = [];
  private readonly options: BucketOptions;

  constructor(options: BucketOptions) {
    this.options = options;
    mkdirSync(options.path, { recursive: true });
    this.catalog = openEnv(join(options.path, 'catalog'), 16 * 1024 * 1024);
    const ids: string[] = [];
    for (const { key } of this.catalog.getRange({ start: ['bucket'], end: ['bucket', '\uffff'] })) ids.push(key[1] as string);
    ids.sort();
    for (const id of ids) this.list.push({ id, db: openEnv(this.dirOf(id), options.mapSizeBytes) });
    this.reversed = this.list.slice().reverse();
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
    const bucket: Bucket = { id, db: openEnv(this.dirOf(id), this.options.mapSizeBytes) };
    // Recorded durably before anything is written into it, so a reopen always finds it.
    this.catalog.putSync(['bucket', id], { createdAt: ts });
    this.list.push(bucket);
    this.reversed = this.list.slice().reverse();
    return bucket;
  }

  /** Bytes the environments use on disk (for metrics). */
  sizes(): { id: string; bytes: number }[] {
    return this.list.map((b) => {
      const stat = b.db.getStats() as { treeBranchPageCount?: number; treeLeafPageCount?: number; overflowPages?: number; pageSize?: number; lastPageNumber?: number };
      return { id: b.id, bytes: (stat.lastPageNumber ?? 0) * (stat.pageSize ?? 4096) };
    });
  }

  async close(): Promise<void> {
    for (const b of this.list) await b.db.close();
    await this.catalog.close();
  }
}
