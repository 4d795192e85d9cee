import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
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
   * in any order, ends in the same state.
   */
  apply(records: readonly ControlRecord[]): Promise<number>;
  /** Every record held, tombstones included, ordered by key. */
  all(): ControlRecord[];
  close(): Promise<void>;
}

export function openControlRecordStore(dataDir: string): ControlRecordStore {
  const path = join(dataDir, 'control-records');
  mkdirSync(path, { recursive: true });
  let db: RootDatabase<ControlRecord, string>;
  try {
    // Durable on commit: lmdb-js syncs before a write's promise resolves (never noSync).
    db = open<ControlRecord, string>({ path, mapSize: 16 * 1024 * 1024, encoding: 'msgpack', compression: false });
  } catch (err) {
    throw new SkeinError('INTERNAL', `cannot open the control records at ${path}`, {}, { cause: err });
  }
  return {
    async apply(records) {
      // The check and the write share one transaction: two concurrent applies of
      // different versions of a record cannot both pass and the older one land last.
      return db.transaction(() => {
        let stored = 0;
        for (const r of records) {
          if (!supersedes(r, db.get(r.key))) continue;
          void db.put(r.key, r.deleted ? { key: r.key, version: r.version, deleted: true } : { key: r.key, version: r.version, value: r.value! });
          stored++;
        }
        return stored;
      });
    },
    all() {
      return [...db.getRange({})].map(({ value }) => value);
    },
    async close() {
      await db.close();
    },
  };
}
