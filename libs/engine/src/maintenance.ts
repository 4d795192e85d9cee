import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { open } from 'lmdb';
import { validatePartition, type StreamMetadata } from '@skein/protocol';
import type { Bucket, BucketSet } from './buckets.ts';
import { GLOBAL, globalKey, headKey, logKey, metaKey, positionOfKey, snapshotKey, streamKey, MAX_VERSION, type Key } from './keys.ts';
import type { EventRecord, HeadRecord, IdempotencyRecord } from './records.ts';
import type { EngineLogger, EventStore } from './types.ts';

/**
 * Maintenance of one store (DESIGN.md, "Maintenance"): retention removes from disk what
 * reads already hide, compaction rewrites a closed bucket's file without its free pages,
 * backup makes a hot, consistent copy. One maintenance call runs at a time per store;
 * every write it makes goes through the batcher between two batches (`exclusiveWrite`),
 * in transactions of at most `maxKeysPerTxn` keys, behind the same storage guard as appends.
 */
export interface Maintenance {
  /** Removes partition `partition`'s hidden events, their log entries and expired idempotency records; drops buckets left without events. */
  retain(partition: string, options?: RetentionOptions): Promise<RetentionResult>;
  /** Ids of the closed buckets (every bucket but the newest), oldest first: those `compact` takes. */
  closedBuckets(): string[];
  /**
   * Rewrites closed bucket `id` with a compacting copy, verified, then swapped in; a bucket
   * unchanged since its last compaction (same generation) is left as it is (`copied: false`).
   */
  compact(id: string): Promise<CompactionResult>;
  /** A hot, consistent copy of the store into `dir/<id>` (see `restoreBackup`); `id` default: made from the time. */
  backup(dir: string, options?: { id?: string }): Promise<BackupManifest>;
}

export interface RetentionOptions {
  /** The tenant's maxAge, ms: events older than this are removed whatever their stream says. */
  maxAgeMs?: number;
  /** Most keys removed or written in one transaction. Default 2000. */
  maxKeysPerTxn?: number;
}

export interface RetentionResult {
  partition: string;
  /** Events removed, and the bytes of their stored records. */
  events: number;
  bytes: number;
  /** Partition-log entries removed or shortened (each with its shard-log entry). */
  logEntries: number;
  idempotencyKeys: number;
  /** Buckets dropped whole (their surviving heads, metadata and snapshots carried forward). */
  bucketsDropped: string[];
}

export interface CompactionResult {
  bucket: string;
  bytesBefore: number;
  bytesAfter: number;
  /** Entries copied (0 when not copied). */
  entries: number;
  /** False: the bucket had not changed since its last compaction and was not copied. */
  copied: boolean;
}

/** The catalog key of the store's id, which names the store in its backup directory (`claimBackupDir`). */
const STORE_ID_KEY: Key = ['store-id'];

/** What a backup holds (`<dir>/<id>/manifest.json`; every backup is listed in `<dir>/backups.json`). */
export interface BackupManifest {
  id: string;
  createdAt: number;
  /** Every event at or below this position (that retention had not removed) is in the backup. */
  highestPosition: string;
  buckets: { id: string; bytes: number; /** Copied by an earlier backup and reused. */ reused: boolean }[];
}

export interface MaintenanceDeps {
  buckets: BucketSet;
  clock: () => number;
  idempotencyWindowMs: number;
  exclusiveWrite<T>(bucket: Bucket, run: (db: Bucket['db']) => T): Promise<T>;
  loadHead(partition: string, streamId: string): HeadRecord;
  cacheHead(partition: string, streamId: string, head: HeadRecord): void;
  getMetadata(partition: string, streamId: string): StreamMetadata | null;
  log: EngineLogger;
}

const maintenances = new WeakMap<EventStore, Maintenance>();

/** The maintenance of a store made by `createEngine`. */
export function maintenanceOf(store: EventStore): Maintenance {
  const m = maintenances.get(store);
  if (!m) throw new Error('maintenanceOf: the store was not made by createEngine');
  return m;
}

export function attachMaintenance(store: EventStore, deps: MaintenanceDeps): void {
  maintenances.set(store, createMaintenance(deps));
}

/** Catalog key of the generation a closed bucket had when it was last compacted. */
const compactedKey = (id: string): Key => ['compacted', id];

type LogEntry = [streamId: string, firstVersion: number, count: number];

function createMaintenance(deps: MaintenanceDeps): Maintenance {
  const { buckets, clock } = deps;
  let chain: Promise<unknown> = Promise.resolve();
  /** One maintenance call at a time: closed buckets change only here, so copies of them are stable. */
  function serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  }

  // ---- retention ----

  /** The lowest version kept and the oldest timestamp kept of a stream, as reads see it now. */
  function keepOf(p: string, s: string, now: number, tenantCutoff: number): { lowest: number; cutoff: number; version: number } {
    const head = deps.loadHead(p, s);
    const meta = deps.getMetadata(p, s);
    let lowest = head.start ?? 1;
    if (meta?.truncateBefore !== undefined) lowest = Math.max(lowest, meta.truncateBefore);
    if (meta?.maxCount !== undefined) lowest = Math.max(lowest, head.v - meta.maxCount + 1);
    const streamCutoff = meta?.maxAge !== undefined ? now - meta.maxAge * 1000 : -Infinity;
    return { lowest, cutoff: Math.max(streamCutoff, tenantCutoff), version: head.v };
  }

  interface Chunk {
    after: Key | null;
    events: number;
    bytes: number;
    entries: number;
  }

  /**
   * One transaction of retention over partition `p`'s log entries in one bucket, from
   * after `after`. An entry's removed events are always a prefix of it (versions below
   * the lowest kept, or the whole append, whose events share one timestamp): the entry
   * is removed, or rewritten at the position of its first kept event.
   */
  function retainLogChunk(db: Bucket['db'], p: string, after: Key | null, now: number, tenantCutoff: number, budget: number): Chunk {
    const chunk: Chunk = { after: null, events: 0, bytes: 0, entries: 0 };
    const keep = new Map<string, { lowest: number; cutoff: number; version: number }>();
    const touched = new Set<string>();
    const removes: Key[] = [];
    const puts: [Key, unknown][] = [];
    let keys = 0;
    const range = after === null ? { start: [p, 'log'] as Key } : { start: after, exclusiveStart: true };
    for (const { key, value } of db.getRange({ ...range, end: [p, 'log', Infinity] })) {
      const [s, v0, count] = value as LogEntry;
      let k = keep.get(s);
      if (!k) keep.set(s, (k = keepOf(p, s, now, tenantCutoff)));
      let removed = Math.min(count, Math.max(0, k.lowest - v0));
      if (removed < count && k.cutoff > -Infinity) {
        const r = db.get(streamKey(p, s, v0 + removed)) as EventRecord | undefined;
        if (r && typeof r.ts === 'number' && r.ts < k.cutoff) removed = count;
      }
      if (removed === 0) continue;
      touched.add(s);
      for (let v = v0; v < v0 + removed; v++) {
        const binary = db.getBinary(streamKey(p, s, v));
        if (!binary) continue;
        chunk.events++;
        chunk.bytes += binary.length;
        removes.push(streamKey(p, s, v));
      }
      const position = positionOfKey(key as Key);
      removes.push(key as Key, globalKey(position));
      if (removed < count) {
        const first = position + BigInt(removed);
        puts.push([logKey(p, first), [s, v0 + removed, count - removed]], [globalKey(first), [p, s, v0 + removed, count - removed]]);
      }
      chunk.entries++;
      keys += removed + 2;
      if (keys >= budget) {
        chunk.after = key as Key;
        break;
      }
    }
    // A stored head's version may be below its stream's last event's (an append that only
    // advances it writes no head, decide.ts): raised before the events go, in the same
    // transaction, so the version never restarts once its last events are removed.
    for (const s of touched) {
      const stored = db.get(headKey(p, s)) as HeadRecord | undefined;
      const version = keep.get(s)!.version;
      if (stored && stored.v < version) puts.push([headKey(p, s), { ...stored, v: version }]);
    }
    // Written once the cursor is done: never under a live cursor of the same transaction.
    for (const key of removes) db.removeSync(key);
    for (const [key, value] of puts) db.putSync(key, value);
    return chunk;
  }

  /** One transaction removing partition `p`'s expired idempotency records in one bucket. */
  function retainIdempotencyChunk(db: Bucket['db'], p: string, after: Key | null, now: number, budget: number): { after: Key | null; removed: number } {
    const removes: Key[] = [];
    let seen = 0;
    let next: Key | null = null;
    const range = after === null ? { start: [p, 'idem'] as Key } : { start: after, exclusiveStart: true };
    for (const { key, value } of db.getRange(range)) {
      const k = key as Key;
      if (k[0] !== p || k[1] !== 'idem') break;
      const record = value as Partial<IdempotencyRecord>;
      if (typeof record.at !== 'number' || now - record.at >= deps.idempotencyWindowMs) removes.push(k);
      if (++seen >= budget) {
        next = k;
        break;
      }
    }
    for (const key of removes) db.removeSync(key);
    return { after: next, removed: removes.length };
  }

  function holdsEvents(b: Bucket): boolean {
    for (const _ of b.db.getKeys({ start: [GLOBAL], end: [GLOBAL, Infinity], limit: 1 })) return true;
    return false;
  }

  /**
   * Drops closed bucket `b`, which holds no event any more: first the stream heads whose
   * newest copy is in it, the metadata and latest snapshots their heads point to in it,
   * and its idempotency records still within their window are written to the current
   * bucket (a stream's version never restarts), in bounded transactions.
   */
  async function dropBucket(b: Bucket, budget: number): Promise<void> {
    const carried: [string, string][] = [];
    const idem: [Key, IdempotencyRecord][] = [];
    const now = clock();
    for (const { key, value } of b.db.getRange({})) {
      const k = key as Key;
      if (k[1] === 'head') carried.push([k[0] as string, k[2] as string]);
      else if (k[1] === 'idem' && now - (value as IdempotencyRecord).at < deps.idempotencyWindowMs) idem.push([k, value as IdempotencyRecord]);
    }
    // Writes go to the newest bucket (or a newer one, made later: newest-first lookups find it first either way).
    const current = buckets.newest()!;
    const newer = () => buckets.newestFirst().filter((x) => x.id > b.id && x.id !== current.id);
    for (let i = 0; i < carried.length; i += budget) {
      const part = carried.slice(i, i + budget);
      await deps.exclusiveWrite(current, (cdb) => {
        for (const [p, s] of part) {
          const head = deps.loadHead(p, s);
          let moved: HeadRecord = head;
          if (head.mb === b.id) {
            const meta = b.db.get(metaKey(p, s));
            if (meta !== undefined) cdb.putSync(metaKey(p, s), meta);
            moved = { ...moved, mb: current.id };
          }
          if (head.sb === b.id) {
            for (const { key, value } of b.db.getRange({ start: snapshotKey(p, s, MAX_VERSION), end: snapshotKey(p, s, 0), reverse: true, limit: 1 })) {
              cdb.putSync(key as Key, value);
            }
            moved = { ...moved, sb: current.id };
          }
          const newestElsewhere = cdb.get(headKey(p, s)) !== undefined || newer().some((x) => x.db.get(headKey(p, s)) !== undefined);
          if (moved !== head || !newestElsewhere) {
            cdb.putSync(headKey(p, s), moved);
            deps.cacheHead(p, s, moved);
          }
        }
      });
    }
    for (let i = 0; i < idem.length; i += budget) {
      const part = idem.slice(i, i + budget);
      await deps.exclusiveWrite(current, (cdb) => {
        for (const [key, value] of part) if (cdb.get(key) === undefined) cdb.putSync(key, value);
      });
    }
    await buckets.drop(b);
    buckets.catalog.removeSync(compactedKey(b.id));
    deps.log.info({ bucket: b.id, heads: carried.length }, 'bucket dropped by retention');
  }

  async function retain(p: string, options: RetentionOptions = {}): Promise<RetentionResult> {
    validatePartition(p);
    const budget = Math.max(10, options.maxKeysPerTxn ?? 2000);
    const result: RetentionResult = { partition: p, events: 0, bytes: 0, logEntries: 0, idempotencyKeys: 0, bucketsDropped: [] };
    for (const b of buckets.all.slice()) {
      const closed = b !== buckets.newest();
      let changed = false;
      for (let after: Key | null = null, first = true; first || after !== null; first = false) {
        const now = clock();
        const tenantCutoff = options.maxAgeMs !== undefined ? now - options.maxAgeMs : -Infinity;
        const from: Key | null = after;
        const chunk: Chunk = await deps.exclusiveWrite(b, (db) => retainLogChunk(db, p, from, now, tenantCutoff, budget));
        result.events += chunk.events;
        result.bytes += chunk.bytes;
        result.logEntries += chunk.entries;
        changed ||= chunk.entries > 0;
        after = chunk.after;
      }
      for (let after: Key | null = null, first = true; first || after !== null; first = false) {
        const from: Key | null = after;
        const now = clock();
        const chunk: { after: Key | null; removed: number } = await deps.exclusiveWrite(b, (db) => retainIdempotencyChunk(db, p, from, now, budget));
        result.idempotencyKeys += chunk.removed;
        changed ||= chunk.removed > 0;
        after = chunk.after;
      }
      if (!closed) continue;
      if (changed) buckets.changed(b);
      if (!holdsEvents(b)) {
        await dropBucket(b, budget);
        result.bucketsDropped.push(b.id);
      }
    }
    deps.log.info({ ...result }, 'retention done');
    return result;
  }

  // ---- compaction ----

  async function compact(id: string): Promise<CompactionResult> {
    const b = buckets.byId(id);
    if (!b) throw new Error(`no bucket ${id}`);
    if (b === buckets.newest()) throw new Error(`bucket ${id} is the current bucket; only closed buckets are compacted`);
    const dir = buckets.directoryOf(b);
    // A closed bucket changes only through maintenance, which bumps its generation.
    const generation = buckets.generation(b);
    if (buckets.catalog.get(compactedKey(id)) === generation) {
      const bytes = statSync(join(dir, 'data.mdb')).size;
      return { bucket: id, bytesBefore: bytes, bytesAfter: bytes, entries: 0, copied: false };
    }
    // No dot in the name: lmdb-js takes a path with an extension for a file, not a directory.
    const work = `${dir}-compacting`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const bytesBefore = statSync(join(dir, 'data.mdb')).size;
    buckets.pin(b);
    let entries: number;
    try {
      // LMDB copies into a directory (an environment with a subdirectory): `work/data.mdb`.
      await b.db.backup(work, true);
      entries = b.db.getKeysCount();
    } finally {
      buckets.unpin(b);
    }
    const copy = open({ path: work, readOnly: true, keyEncoding: 'ordered-binary' });
    let copied: number;
    try {
      copied = copy.getKeysCount();
    } finally {
      await copy.close();
    }
    if (copied !== entries) {
      rmSync(work, { recursive: true, force: true });
      throw new Error(`compacted copy of bucket ${id} holds ${copied} entries, the bucket ${entries}; not swapped`);
    }
    await buckets.replaceDataFile(b, join(work, 'data.mdb'));
    rmSync(work, { recursive: true, force: true });
    // Written after the swap: a crash before it costs one more copy, never a skipped one.
    buckets.catalog.putSync(compactedKey(id), generation);
    const bytesAfter = statSync(join(dir, 'data.mdb')).size;
    deps.log.info({ bucket: id, bytesBefore, bytesAfter, entries }, 'bucket compacted');
    return { bucket: id, bytesBefore, bytesAfter, entries, copied: true };
  }

  // ---- backup ----

  /**
   * A backup directory holds one store's backups. Two stores writing into one (the shards
   * of a node given one SKEIN_SHARD_BACKUP_DIR, two shard processes on one volume) would
   * collide: a closed bucket's copy is named by its bucket id and generation only, so the
   * second store found the first one's copy and "reused" it, silently backing up another
   * store's events as its own. The first backup writes this store's id (the catalog's
   * `['store-id']`, made then; a restored store keeps its source's) into `<dir>/store-id`;
   * a backup into a directory that names another store fails and writes nothing.
   */
  function claimBackupDir(dir: string): void {
    let own = buckets.catalog.get(STORE_ID_KEY) as string | undefined;
    if (own === undefined) {
      own = randomUUID();
      buckets.catalog.putSync(STORE_ID_KEY, own);
    }
    const file = join(dir, 'store-id');
    const named = existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
    if (named === undefined) writeFileSync(file, `${own}\n`);
    else if (named !== own) throw new Error(`backup directory ${dir} holds the backups of another store (${named}; this one is ${own}): give each shard a backup directory of its own`);
  }

  async function backup(dir: string, options: { id?: string } = {}): Promise<BackupManifest> {
    const createdAt = clock();
    if (options.id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(options.id)) throw new Error(`backup id ${JSON.stringify(options.id)} is not a plain name`);
    const id = options.id ?? `${new Date(createdAt).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    const target = join(dir, id);
    const objects = join(dir, 'objects');
    mkdirSync(objects, { recursive: true });
    claimBackupDir(dir);
    mkdirSync(target, { recursive: true });
    const list = buckets.all.slice();
    const newest = buckets.newest();
    const manifest: BackupManifest = { id, createdAt, highestPosition: '0', buckets: [] };
    let highest = 0n;
    for (const b of list) {
      const into = join(target, `bucket-${b.id}`);
      mkdirSync(into, { recursive: true });
      buckets.pin(b);
      try {
        if (b !== newest) {
          // A closed bucket changes only through maintenance, which bumps its generation.
          const object = join(objects, `${b.id}-g${buckets.generation(b)}.mdb`);
          const reused = existsSync(object);
          if (!reused) {
            const work = join(objects, `${b.id}.copying`);
            rmSync(work, { recursive: true, force: true });
            mkdirSync(work, { recursive: true });
            await b.db.backup(work, false);
            renameSync(join(work, 'data.mdb'), object);
            rmSync(work, { recursive: true, force: true });
          }
          linkSync(object, join(into, 'data.mdb'));
          manifest.buckets.push({ id: b.id, bytes: statSync(object).size, reused });
        } else {
          // The current bucket and the catalog are written while they are copied: copied
          // compacting, which reads them in one read transaction. LMDB's plain copy takes
          // the writers' lock to snapshot the meta pages, and behind back-to-back
          // synchronous commits (8 writers in maintenance.spec) it waited for that lock
          // from seconds to minutes: the lock is not fair.
          await b.db.backup(into, true);
          manifest.buckets.push({ id: b.id, bytes: statSync(join(into, 'data.mdb')).size, reused: false });
        }
      } finally {
        buckets.unpin(b);
      }
      const last = highestIn(into);
      if (last > highest) highest = last;
    }
    // Last, so its sequencer counter is above every position copied.
    mkdirSync(join(target, 'catalog'), { recursive: true });
    await buckets.catalog.backup(join(target, 'catalog'), true);
    manifest.highestPosition = String(highest);
    writeFileSync(join(target, 'manifest.json'), JSON.stringify(manifest, null, 2));
    const all = listBackups(dir).filter((m) => m.id !== id);
    all.push(manifest);
    writeFileSync(join(dir, 'backups.json.tmp'), JSON.stringify(all, null, 2));
    renameSync(join(dir, 'backups.json.tmp'), join(dir, 'backups.json'));
    deps.log.info({ backup: id, highestPosition: manifest.highestPosition, buckets: manifest.buckets.length }, 'backup done');
    return manifest;
  }

  return {
    retain: (p, options) => serially(() => retain(p, options)),
    closedBuckets: () => buckets.all.slice(0, -1).map((b) => b.id),
    compact: (id) => serially(() => compact(id)),
    backup: (dir, options) => serially(() => backup(dir, options)),
  };
}

/** The highest global position in a copied environment (0n when it holds none). */
function highestIn(dir: string): bigint {
  const db = open<unknown, Key>({ path: dir, readOnly: true, keyEncoding: 'ordered-binary', encoding: 'msgpack', sharedStructuresKey: Symbol.for('skein.structures') });
  try {
    for (const { key, value } of db.getRange({ start: [GLOBAL, Infinity], end: [GLOBAL], reverse: true, limit: 1 })) {
      return positionOfKey(key as Key) + BigInt((value as [string, string, number, number])[3] - 1);
    }
    return 0n;
  } finally {
    void db.close();
  }
}

/** The backups in `dir`, oldest first (empty when there are none). */
export function listBackups(dir: string): BackupManifest[] {
  const file = join(dir, 'backups.json');
  if (!existsSync(file)) return [];
  return JSON.parse(readFileSync(file, 'utf8')) as BackupManifest[];
}

/**
 * Restores backup `id` (default: the newest) of `backupDir` into `dataDir`, which must
 * be empty or absent: an engine opened on it reads what the source held up to the
 * backup's `highestPosition`. Files are copied, never linked (the restored store is written).
 */
export function restoreBackup(backupDir: string, dataDir: string, id?: string): BackupManifest {
  const all = listBackups(backupDir);
  const manifest = id === undefined ? all[all.length - 1] : all.find((m) => m.id === id);
  if (!manifest) throw new Error(id === undefined ? `no backup in ${backupDir}` : `no backup ${id} in ${backupDir}`);
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new Error(`${dataDir} is not empty; restore only into an empty data directory`);
  const source = join(backupDir, manifest.id);
  for (const b of manifest.buckets) {
    mkdirSync(join(dataDir, `bucket-${b.id}`), { recursive: true });
    copyFileSync(join(source, `bucket-${b.id}`, 'data.mdb'), join(dataDir, `bucket-${b.id}`, 'data.mdb'));
  }
  mkdirSync(join(dataDir, 'catalog'), { recursive: true });
  copyFileSync(join(source, 'catalog', 'data.mdb'), join(dataDir, 'catalog', 'data.mdb'));
  // The catalog was copied last: it may list buckets made after the buckets were copied.
  const kept = new Set(manifest.buckets.map((b) => b.id));
  const catalog = open<unknown, Key>({ path: join(dataDir, 'catalog'), keyEncoding: 'ordered-binary', encoding: 'msgpack', sharedStructuresKey: Symbol.for('skein.structures') });
  try {
    const stale: string[] = [];
    for (const key of catalog.getKeys({ start: ['bucket'], end: ['bucket', '\uffff'] })) if (!kept.has((key as Key)[1] as string)) stale.push((key as Key)[1] as string);
    // Backups copy closed buckets without compacting them: every bucket is compacted again.
    const compacted = [...catalog.getKeys({ start: ['compacted'], end: ['compacted', '\uffff'] })];
    catalog.transactionSync(() => {
      for (const b of stale) {
        catalog.removeSync(['bucket', b]);
        catalog.removeSync(['heads', b]);
      }
      for (const key of compacted) catalog.removeSync(key);
    });
  } finally {
    void catalog.close();
  }
  return manifest;
}


