/**
 * Control records: what every shard keeps so that a Redis that lost its data can be
 * rebuilt (DESIGN.md, "Control plane"). One record per control-plane object, named by
 * `key`:
 *
 * - `tenant/<tenant>`: `{ partitions, retention, quota?, createdAt }`
 * - `apikey/<sha-256 hex of the key>`: `{ tenant, keyId }`; a tombstone once revoked
 * - `topology`: the topology as stored in Redis (`{ epoch, shards, placements }`)
 *
 * Every change of an object writes its record again with a higher `version` (handed
 * out by Redis, one counter for the whole control plane); a removal writes a
 * tombstone (`deleted: true`, no value) that is kept forever, so a merge of copies
 * from several shards never brings back what was removed.
 */
export interface ControlRecord {
  key: string;
  /** ≥ 1; grows with every change of the object. */
  version: number;
  /** A tombstone: the object was removed at `version`. */
  deleted?: true;
  /** The object; absent on a tombstone. */
  value?: Record<string, unknown>;
}

const KEY_RE = /^(tenant\/[a-z0-9][a-z0-9-]{0,62}|apikey\/[0-9a-f]{64}|topology)$/;

/**
 * The merge rule: true when `incoming` replaces `stored` (absent: nothing stored).
 * The higher version wins; at equal versions a tombstone wins over a live record, so
 * that the outcome is the same whatever order copies arrive in. Equal versions with
 * equal deletion state are the same write (versions are never handed out twice).
 */
export function supersedes(incoming: ControlRecord, stored: ControlRecord | undefined): boolean {
  if (stored === undefined) return true;
  if (incoming.version !== stored.version) return incoming.version > stored.version;
  return incoming.deleted === true && stored.deleted !== true;
}

/** Merges copies of records (from several shards, in any order): the winner per key, by {@link supersedes}. */
export function mergeControlRecords(...lists: readonly (readonly ControlRecord[])[]): ControlRecord[] {
  const winners = new Map<string, ControlRecord>();
  for (const list of lists) {
    for (const r of list) if (supersedes(r, winners.get(r.key))) winners.set(r.key, r);
  }
  return [...winners.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Checks one record as received over the wire; throws Error naming what is wrong.
 * Only the envelope is checked: values are the router's to interpret.
 */
export function parseControlRecord(input: unknown): ControlRecord {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new Error('a control record must be an object');
  const { key, version, deleted, value } = input as Record<string, unknown>;
  if (typeof key !== 'string' || !KEY_RE.test(key)) throw new Error(`control record key ${JSON.stringify(key)} is not tenant/<tenant>, apikey/<digest> or topology`);
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new Error(`control record ${key}: version must be an integer ≥ 1`);
  if (deleted !== undefined && deleted !== true) throw new Error(`control record ${key}: deleted must be true or absent`);
  if (deleted === true) {
    if (value !== undefined) throw new Error(`control record ${key}: a tombstone has no value`);
    return { key, version, deleted: true };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`control record ${key}: value must be an object`);
  return { key, version, value: value as Record<string, unknown> };
}
