import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { GuardedWrites, checkWritable } from '@skein/engine';
import { SkeinError, supersedes, type ControlRecord } from '@skein/protocol';

/**
 * This shard's copy of the control records (`@skein/protocol` control-records.ts;
 * DESIGN.md, "Control plane"), in a small LMDB environment of its own,
 * `<dataDir>/control-records`, apart from the engine's: the engine knows nothing of
 * Redis or tenants. Routers write here before they acknowledge a control-plane change,
 * and read every shard's copy to rebuild a Redis that lost its data.
 */
export interface ControlRecordStore {
  /**
   * Stores each record that supersedes the one held (higher version; a tombstone at
   * an equal version), in one transaction, and resolves once it is durable. Returns how
   * many were stored; older copies are ignored, so applying the same list twice, or lists
   * in any order, ends in the same state. Rejects with `503 UNAVAILABLE` (`storage`: the
   * errno), storing nothing, while the disk refuses writes (`GuardedWrites`).
   */
  apply(records: readonly ControlRecord[]): Promise<number>;
  /** Every record held, tombstones included, ordered by key. */
  all(): ControlRecord[];
  close(): Promise<void>;
}

export function openControlRecordStore(dataDir: string): ControlRecordStore {
  const path = join(dataDir, 'control-records');
  mkdirSync(path, { recursive: true });
  const file = join(path, 'data.mdb');
  let db: RootDatabase<ControlRecord, string>;
  try {
    // Creating the environment writes its files: only with room for them (storage.ts).
    if (!existsSync(file)) checkWritable(path, 2 * 1024 * 1024);
    // Durable on commit: lmdb-js syncs before a write's promise resolves (never noSync).
    db = open<ControlRecord, string>({ path, mapSize: 16 * 1024 * 1024, encoding: 'msgpack', compression: false });
  } catch (err) {
    throw new SkeinError('INTERNAL', `cannot open the control records at ${path}`, {}, { cause: err });
  }
  const writes = new GuardedWrites(db, file, "the shard's control records");
  return {
    async apply(records) {
      // The check and the write share one transaction: two concurrent applies of
      // different versions of a record cannot both pass and the older one land last.
      return writes.write(() =>
        db.transaction(() => {
          let stored = 0;
          for (const r of records) {
            if (!supersedes(r, db.get(r.key))) continue;
            void db.put(r.key, r.deleted ? { key: r.key, version: r.version, deleted: true } : { key: r.key, version: r.version, value: r.value! });
            stored++;
          }
          return stored;
        }),
      );
    },
    all() {
      return [...db.getRange({})].map(({ value }) => value);
    },
    async close() {
      await writes.settled();
      await db.close();
      writes.close();
    },
  };
}
