import { pack, unpack } from 'msgpackr';
import { SkeinError, validatePartition } from '@skein/protocol';
import type { Bucket, BucketSet } from './buckets.ts';
import { GLOBAL, positionOfKey, splitPosition, type Key } from './keys.ts';
import type { HeadRecord } from './records.ts';
import type { EventStore } from './types.ts';

/**
 * Copying one partition between stores, for a partition move (DESIGN.md, "Moving a
 * partition"). Every key of a partition starts with its id, so a partition is one
 * contiguous range per bucket environment: the copy is a range read on the source and
 * plain puts on the target. Entries travel as they are stored (event records with their
 * versions and global positions, heads with tombstones and with their stream's version
 * rather than the stored lower bound (`exported`), idempotency records, metadata,
 * snapshots, partition-log entries); the target derives its shard-log entries from the
 * partition-log entries. Puts are idempotent, so any page may be applied twice.
 *
 * The target writes everything into its current bucket. Head records name the buckets
 * holding a stream's events, metadata and snapshot (`fb`, `lb`, `mb`, `sb`); those are
 * rewritten to that bucket. Several buckets of the source may hold a copy of the same
 * head or metadata key (each write goes to the current bucket): pages come oldest bucket
 * first, so the newest copy is applied last and wins.
 */
export interface PartitionTransfer {
  /**
   * One page of the partition's whole range, oldest bucket first, from `cursor` (null:
   * the start), with at least one entry when any is left and about `maxBytes` at most.
   * `next` is null once the range is exhausted.
   */
  exportRange(partition: string, cursor: TransferCursor | null, maxBytes: number): ExportPage;
  /**
   * What the partition's appends from `fromPosition` on wrote: their log entries and
   * events, and each touched stream's head and idempotency records; with `mutable`,
   * also every head, metadata and snapshot of the partition (which change without a log
   * entry: deletions, metadata, snapshots). `next` is the position after the last append
   * included; a page holds at most `maxEntries` appends.
   */
  exportChanges(partition: string, fromPosition: bigint, options: { maxEntries: number; mutable: boolean }): ChangesPage;
  /** The highest global position of the partition's log (0n when empty). */
  highestPosition(partition: string): bigint;
  /**
   * Writes a page exported by a peer, in one synchronous transaction of the current
   * bucket, durable when it returns. Throws VALIDATION_FAILED for an entry outside the
   * partition. The caller makes sure this store does not own the partition meanwhile.
   */
  importPage(partition: string, page: Uint8Array): { entries: number };
  /** Deletes every key of the partition (and its shard-log entries), in small transactions. The caller makes sure it is not owned here. */
  dropPartition(partition: string): Promise<{ entries: number }>;
}

/** Where an export stopped: the bucket, and the last key read in it. */
export interface TransferCursor {
  bucket: string;
  after: Key | null;
}

export interface ExportPage {
  /** The entries, packed (msgpack, bigints kept). */
  page: Uint8Array;
  entries: number;
  next: TransferCursor | null;
}

export interface ChangesPage {
  page: Uint8Array;
  entries: number;
  /** Appends included. */
  appends: number;
  next: bigint;
}

type Entry = [Key, unknown];
type LogEntry = [streamId: string, firstVersion: number, count: number];

const BUCKET_FIELDS = ['fb', 'lb', 'mb', 'sb'] as const;
const MUTABLE_KINDS = ['head', 'meta', 'snapshot'] as const;
const DROP_CHUNK = 2000;

const transfers = new WeakMap<EventStore, PartitionTransfer>();

/** The partition transfer of a store made by `createEngine`. Throws when `store` is not one. */
export function partitionTransferOf(store: EventStore): PartitionTransfer {
  const transfer = transfers.get(store);
  if (!transfer) throw new Error('partitionTransferOf: the store was not made by createEngine');
  return transfer;
}

/** What the transfer needs of its engine. `forgetCachedState` drops cached stream heads; `loadHead` is the stream's head with its version (store-access.ts). */
interface TransferDeps {
  buckets: BucketSet;
  clock: () => number;
  forgetCachedState: () => void;
  loadHead: (partition: string, streamId: string) => HeadRecord;
}

/** Attaches the transfer to an engine's store (engine.ts). */
export function attachPartitionTransfer(store: EventStore, deps: TransferDeps): void {
  transfers.set(store, createPartitionTransfer(deps));
}

function createPartitionTransfer(deps: TransferDeps): PartitionTransfer {
  const { buckets, clock, forgetCachedState, loadHead } = deps;

  /**
   * An entry as it travels: a head carries its stream's version, not the stored lower bound
   * (an append that only advances a version writes no head, decide.ts), so a peer that
   * trusts stored heads reads the same version.
   */
  function exported(partition: string, [key, value]: Entry): Entry {
    if (key[1] !== 'head' || value === null || typeof value !== 'object') return [key, value];
    const stored = value as HeadRecord;
    const v = loadHead(partition, key[2] as string).v;
    return v > stored.v ? [key, { ...stored, v }] : [key, value];
  }

  /** The partition's keys in one bucket, after `after`, in key order. */
  function* rangeOf(b: Bucket, partition: string, after: Key | null, start: Key = [partition]): Generator<Entry> {
    const range = after === null ? { start } : { start: after, exclusiveStart: true };
    for (const { key, value } of b.db.getRange(range)) {
      if ((key as Key)[0] !== partition) return;
      yield [key as Key, value];
    }
  }

  function* keysOf(b: Bucket, start: Key, below: (key: Key) => boolean): Generator<Entry> {
    for (const { key, value } of b.db.getRange({ start })) {
      if (!below(key as Key)) return;
      yield [key as Key, value];
    }
  }

  const sizeOf = (e: Entry) => pack(e).length;

  return {
    exportRange(partition, cursor, maxBytes) {
      validatePartition(partition);
      const entries: Entry[] = [];
      let bytes = 0;
      for (const b of buckets.all) {
        if (cursor && b.id < cursor.bucket) continue;
        const after = cursor && b.id === cursor.bucket ? cursor.after : null;
        for (const raw of rangeOf(b, partition, after)) {
          const e = exported(partition, raw);
          entries.push(e);
          bytes += sizeOf(e);
          if (bytes >= maxBytes) return { page: pack(entries), entries: entries.length, next: { bucket: b.id, after: e[0] } };
        }
      }
      return { page: pack(entries), entries: entries.length, next: null };
    },

    exportChanges(partition, fromPosition, { maxEntries, mutable }) {
      validatePartition(partition);
      const entries: Entry[] = [];
      const touched = new Set<string>();
      let appends = 0;
      let next = fromPosition;
      const [hi, lo] = splitPosition(fromPosition);
      outer: for (const b of buckets.all) {
        for (const [key, value] of keysOf(b, [partition, 'log', hi, lo], (k) => k[0] === partition && k[1] === 'log')) {
          if (appends >= maxEntries) break outer;
          const first = positionOfKey(key);
          const [s, v0, count] = value as LogEntry;
          entries.push([key, value]);
          for (const e of keysOf(b, [partition, 'stream', s, v0], (k) => k[0] === partition && k[1] === 'stream' && k[2] === s && (k[3] as number) < v0 + count)) entries.push(e);
          touched.add(s);
          appends++;
          const end = first + BigInt(count);
          if (end > next) next = end;
        }
      }
      // Oldest bucket first, so the newest copy of a key is applied last.
      for (const b of buckets.all) {
        for (const s of touched) {
          const head = b.db.get([partition, 'head', s]);
          if (head !== undefined) entries.push(exported(partition, [[partition, 'head', s], head]));
          for (const e of keysOf(b, [partition, 'idem', s], (k) => k[0] === partition && k[1] === 'idem' && k[2] === s && k.length === 4)) entries.push(e);
        }
        if (mutable) {
          for (const kind of MUTABLE_KINDS) for (const e of keysOf(b, [partition, kind], (k) => k[0] === partition && k[1] === kind)) entries.push(exported(partition, e));
        }
      }
      return { page: pack(entries), entries: entries.length, appends, next };
    },

    highestPosition(partition) {
      validatePartition(partition);
      let highest = 0n;
      for (const b of buckets.all) {
        for (const { key, value } of b.db.getRange({ start: [partition, 'log', Infinity], end: [partition, 'log'], reverse: true, limit: 1 })) {
          const last = positionOfKey(key as Key) + BigInt((value as LogEntry)[2] - 1);
          if (last > highest) highest = last;
        }
      }
      return highest;
    },

    importPage(partition, page) {
      validatePartition(partition);
      const entries = unpack(page) as unknown;
      if (!Array.isArray(entries)) throw new SkeinError('VALIDATION_FAILED', 'a transfer page must be an array of [key, value]', { field: 'page' });
      for (const e of entries) {
        if (!Array.isArray(e) || e.length !== 2 || !Array.isArray(e[0]) || e[0][0] !== partition) {
          throw new SkeinError('VALIDATION_FAILED', `a transfer page for ${partition} holds an entry of another partition`, { field: 'page' });
        }
      }
      const bucket = buckets.current(clock());
      buckets.prepareWrite(bucket);
      const db = bucket.db;
      db.transactionSync(() => {
        for (const [key, value] of entries as Entry[]) {
          let stored = value;
          if (key[1] === 'head' && value !== null && typeof value === 'object') {
            const head = { ...(value as Record<string, unknown>) };
            for (const f of BUCKET_FIELDS) if (head[f] !== undefined) head[f] = bucket.id;
            stored = head;
          }
          db.putSync(key, stored);
          if (key[1] === 'log' && key.length === 4) {
            const [s, v0, count] = value as LogEntry;
            db.putSync([GLOBAL, key[2]!, key[3]!], [partition, s, v0, count]);
          }
        }
      });
      forgetCachedState();
      return { entries: entries.length };
    },

    async dropPartition(partition) {
      validatePartition(partition);
      let dropped = 0;
      for (const b of buckets.all) {
        for (;;) {
          const chunk: Key[] = [];
          for (const [key] of rangeOf(b, partition, null)) {
            chunk.push(key);
            if (chunk.length >= DROP_CHUNK) break;
          }
          if (chunk.length === 0) break;
          const db = b.db;
          db.transactionSync(() => {
            for (const key of chunk) {
              if (key[1] === 'log' && key.length === 4) db.removeSync([GLOBAL, key[2]!, key[3]!]);
              db.removeSync(key);
            }
          });
          dropped += chunk.length;
          forgetCachedState();
          // Other work runs between chunks.
          await new Promise<void>((r) => setImmediate(r));
        }
      }
      return { entries: dropped };
    },
  };
}
