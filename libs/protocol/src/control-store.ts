// The storage-neutral interface between the router's control-plane logic (registry,
// topology, control epoch and rebuild, quotas: libs/router) and where that state lives.
// Two implementations, one contract suite (libs/testing/src/control-store-contract.ts):
// Redis (libs/router/src/redis-control-store.ts, Lua scripts, shared by every router of a
// cluster) and embedded (libs/shard/src/embedded-control-store.ts, one LMDB environment,
// for a single node process with no Redis).
import type { ControlRecord } from './control-records.ts';

/** A tenant as the control store keeps it (`partitions` never changes after creation). */
export interface StoredTenant {
  partitions: number;
  retention: { maxAge?: number };
  quota?: { eventsPerSecond: number };
  createdAt: string;
  /** The version of its control record. */
  version: number;
}

/** A live API key, stored under the SHA-256 digest of the key. */
export interface StoredApiKey {
  tenant: string;
  keyId: string;
  version: number;
}

/** What a read returns together with the control marker read in the same transaction. */
export interface Marked<T> {
  value: T | null;
  /** Null: the store holds no marker (it lost its control plane; a rebuild is pending). */
  marker: string | null;
}

export interface NewTenant {
  tenant: string;
  partitions: number;
  retention: { maxAge?: number };
  quota?: { eventsPerSecond: number };
  createdAt: string;
  /** The first API key: its id and digest. */
  keyId: string;
  digest: string;
}

/** Every marker-checked change refuses with `stale` when the caller's marker is not the store's. */
export type Refusal<R extends string> = { ok: false; reason: 'stale' | R };

/** A topology change: the stored topology JSON (`{ epoch, shards, placements, version }`). */
export type TopologyChange = { ok: true; changed: boolean; topology: string };

/**
 * The control plane's state: the marker (the epoch of the store's contents), the record
 * version counter, tenants, hashed API keys, the topology, append-quota windows, the
 * sequencer counter, and announcements between routers and shards. Every change is
 * atomic and checks the caller's marker, so nothing is changed in a store that lost its
 * contents and was not rebuilt (DESIGN.md, "Control plane").
 *
 * Durability: Redis as configured (production: AOF with `appendfsync always`); embedded:
 * every change is on disk before its promise resolves.
 */
export interface ControlStore {
  /** `redis` or `embedded`: what readiness names when {@link ping} fails. */
  readonly kind: 'redis' | 'embedded';
  /** Resolves when the store answers; rejects otherwise. */
  ping(): Promise<void>;
  /** The marker; null when none is stored. */
  readMarker(): Promise<string | null>;
  readTenant(tenant: string): Promise<Marked<StoredTenant>>;
  readApiKey(digest: string): Promise<Marked<StoredApiKey>>;
  /** Creates a tenant and its first key, once: `exists` for a tenant stored before (or restored by a rebuild). */
  createTenant(marker: string, input: NewTenant): Promise<{ ok: true; tenantVersion: number; keyVersion: number } | Refusal<'exists'>>;
  /**
   * Changes an existing tenant's `retention.maxAge` and quota (undefined: kept; null:
   * removed) with a new record version; answers the tenant as stored now. `no-tenant` otherwise.
   */
  updateTenant(
    marker: string,
    input: { tenant: string; maxAge?: number | null; quota?: { eventsPerSecond: number } | null },
  ): Promise<{ ok: true; tenant: StoredTenant } | Refusal<'no-tenant'>>;
  /** Adds a key to an existing tenant; `no-tenant` otherwise. */
  mintKey(marker: string, input: { tenant: string; keyId: string; digest: string }): Promise<{ ok: true; version: number } | Refusal<'no-tenant'>>;
  /** The live key's digest (null when none), and a revocation not yet finished (its tombstone). */
  readKey(tenant: string, keyId: string): Promise<{ digest: string | null; revoking: ControlRecord | null }>;
  /**
   * Revokes a live key: it stops authenticating at once, `digest` is announced on
   * `channel`, and its tombstone (record key `recordKey`) waits as `revoking` until
   * {@link finishRevocation}. `changed`: the tenant has no live key `keyId` with that digest.
   */
  revokeKey(
    marker: string,
    input: { tenant: string; keyId: string; digest: string; recordKey: string; channel: string },
  ): Promise<{ ok: true; tombstone: ControlRecord } | Refusal<'changed'>>;
  /** Forgets the pending revocation of `keyId` (its tombstone is recorded on the shards). */
  finishRevocation(tenant: string, keyId: string): Promise<void>;
  /** The topology JSON; null when none is stored. */
  readTopology(): Promise<string | null>;
  /**
   * Places the partitions of `group` (every partition of one tenant, placed or not, each
   * with its rendezvous preference over the topology's shards) that have no placement;
   * placed ones never move. New ones keep the group within ±1 of even per shard: every
   * shard not `draining` takes floor(N / S) of the N, and the N mod S shards holding the
   * fewest partitions of the whole topology (then by id) one more; each new partition
   * goes to the first shard of its preference with room left (else the eligible shard
   * holding fewest of the group). `epoch-changed`: the topology is not at `epoch`
   * (recompute with the one returned); `all-draining`: no shard may take partitions.
   */
  placePartitions(
    marker: string,
    epoch: number,
    group: readonly { p: string; prefs: readonly string[] }[],
  ): Promise<TopologyChange | Refusal<'no-topology'> | { ok: false; reason: 'epoch-changed' | 'all-draining'; topology: string }>;
  /**
   * Makes the topology list `shards` (created at epoch 1 when absent): a shard it lacks is
   * added with a new epoch, a changed URL is updated; nothing is removed, no placement
   * moves. A new epoch is announced on `channel`.
   */
  ensureShards(marker: string, shards: readonly { id: string; url: string }[], channel: string): Promise<TopologyChange | Refusal<never>>;
  /** Takes the rebuild lock for `ms` unless another holder has it. */
  lockRebuild(token: string, ms: number): Promise<boolean>;
  /** Releases the rebuild lock if `token` still holds it. */
  unlockRebuild(token: string): Promise<void>;
  /**
   * Writes the merged `records` (tombstones restore nothing), raises the version counter
   * to at least their highest version, sets `newMarker`, releases the lock and announces
   * `rebuilt` on `channel`, all at once. False (nothing written) when a marker exists or
   * `token` does not hold the lock.
   */
  restore(token: string, newMarker: string, records: readonly ControlRecord[], channel: string): Promise<boolean>;
  /**
   * Admits appends of one tenant in order while the events of the current one-second
   * window stay within `limit`; refused ones count for nothing. `msLeft`: until the
   * window ends.
   */
  admitEvents(tenant: string, limit: number, events: readonly number[]): Promise<{ admitted: boolean[]; msLeft: number }>;
  /** The sequencer counter: the highest global position handed out (0n when none). */
  readCounter(): Promise<bigint>;
  publish(channel: string, message: string): Promise<void>;
  /** Calls `listener` with every message announced on `channel` from now on, by any process sharing the store. */
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
}
