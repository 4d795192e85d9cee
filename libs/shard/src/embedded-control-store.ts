import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { GuardedWrites, checkWritable } from '@skein/engine';
import {
  MAX_POSITION,
  SkeinError,
  type ControlRecord,
  type ControlStore,
  type PositionRange,
  type Sequencer,
  type StoredApiKey,
  type StoredTenant,
} from '@skein/protocol';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY, balancedPlacements, type Topology } from '@skein/ring';

/**
 * The sequencer of a node with no Redis: one counter for every shard of the process.
 * Its value is written without waiting for the disk; after a crash it may come back
 * lower, so each shard {@link seed}s it with its own high-water (highest committed
 * position, and the highest counter value it persisted as a safe point bound) before
 * anything is allocated: no position that was visible or published is handed out again.
 */
export interface EmbeddedSequencer extends Sequencer {
  /** Raises the counter to at least `value` (never lowers it). */
  seed(value: bigint): void;
}

/** The embedded control store, with what the node's shards need of it. */
export interface EmbeddedControlStore extends ControlStore {
  readonly sequencer: EmbeddedSequencer;
  /** The topology as a shard's ownership reads it (`TopologySource`, `TopologySubscriber`). */
  readonly topologySource: { get(key: string): Promise<string | null> };
  readonly topologySubscriber: {
    subscribe(channel: string): Promise<unknown>;
    on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  };
  /** Resolves once every change is on disk, then closes the environment. */
  close(): Promise<void>;
}

export interface EmbeddedControlStoreOptions {
  /** Milliseconds since the epoch, for quota windows. Default `Date.now`. */
  clock?: () => number;
}

const MARKER = 'marker';
const VERSION = 'version';
const COUNTER = 'counter';
const TENANT = (t: string) => `tenant/${t}`;
const TENANT_KEYS = (t: string) => `tenant-keys/${t}`;
const REVOKING = (t: string) => `revoking/${t}`;
const API_KEY = (digest: string) => `apikey/${digest}`;

type StoredTopology = Topology & { placements: Record<string, string>; version?: number };

/**
 * The control plane's state in one LMDB environment at `path`, for a single node process
 * with no Redis (DESIGN.md, "Control plane", embedded default). It keeps what Redis keeps
 * and answers exactly as the Lua scripts do (the contract suite runs both): each change
 * is one LMDB transaction that checks the marker, durable (synced) before its promise
 * resolves; reads of a value and the marker share one snapshot. Announcements go to
 * listeners of this process. Quota windows live in memory (they last one second); the
 * rebuild lock too (one process).
 *
 * A fresh environment holds no marker: the router's control plane seeds it from the
 * shards' control records like a wiped Redis, so a node that moves between Redis and the
 * embedded store keeps its tenants, keys and placements.
 */
export function openEmbeddedControlStore(path: string, options: EmbeddedControlStoreOptions = {}): EmbeddedControlStore {
  const clock = options.clock ?? Date.now;
  mkdirSync(path, { recursive: true });
  const file = join(path, 'data.mdb');
  let db: RootDatabase<unknown, string>;
  try {
    // Creating the environment writes its files: only with room for them (storage.ts).
    if (!existsSync(file)) checkWritable(path, 2 * 1024 * 1024);
    // Durable on commit: lmdb-js syncs before a write's promise resolves (never noSync).
    db = open<unknown, string>({ path, mapSize: 64 * 1024 * 1024, encoding: 'msgpack', compression: false });
  } catch (err) {
    throw new SkeinError('INTERNAL', `cannot open the embedded control store at ${path}`, {}, { cause: err });
  }
  // Every write goes through the guard, one at a time: a full disk answers 503, never a
  // failed commit inside LMDB (storage.ts).
  const writes = new GuardedWrites(db, file, 'the embedded control store', undefined, clock);
  const transaction = <T>(change: () => T) => writes.write(() => db.transaction(change));
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const quotas = new Map<string, { second: number; used: number }>();
  let lock: { token: string; until: number } | null = null;
  let counter = BigInt((db.get(COUNTER) as string | undefined) ?? '0');
  // The counter is persisted behind the allocations, not awaited (see EmbeddedSequencer):
  // at most one write queued, which stores the value current when it runs.
  let counterQueued = false;
  const persistCounter = () => {
    if (counterQueued) return;
    counterQueued = true;
    writes
      .write(() => {
        counterQueued = false;
        return db.put(COUNTER, counter.toString());
      })
      // Refused: the guard holds the fault and the next allocation is refused until it clears.
      .catch(() => {
        counterQueued = false;
      });
  };

  const get = <T>(key: string) => (db.get(key) as T | undefined) ?? null;
  const marker = () => get<string>(MARKER);
  // Called inside a write transaction only.
  const nextVersion = () => {
    const v = ((db.get(VERSION) as number | undefined) ?? 0) + 1;
    void db.put(VERSION, v);
    return v;
  };
  // Announced after the change is durable, as Redis announces after the script: a listener that reads sees it.
  const announce = (channel: string, message: string) => setImmediate(() => events.emit(channel, message));

  const sequencer: EmbeddedSequencer = {
    async allocate(count, floor): Promise<PositionRange> {
      if (!Number.isSafeInteger(count) || count < 1) throw new SkeinError('VALIDATION_FAILED', 'count must be a positive integer', { field: 'count' });
      const base = floor > counter ? floor : counter;
      const last = base + BigInt(count);
      if (last > MAX_POSITION) throw new SkeinError('VALIDATION_FAILED', 'position range does not fit in 64 bits', { field: 'count' });
      // A counter write was refused for space: 503 UNAVAILABLE before the counter moves,
      // until a probe of the disk succeeds. The counter in memory never goes back, so a
      // range handed out before the fault is never handed out again.
      writes.check();
      counter = last;
      persistCounter();
      return { first: base + 1n, last };
    },
    async current() {
      return counter;
    },
    seed(value) {
      if (value > counter) {
        counter = value;
        persistCounter();
      }
    },
    async close() {
      await writes.settled();
      await db.flushed;
    },
  };

  function parseTopology(text: string): StoredTopology {
    const t = JSON.parse(text) as StoredTopology;
    if (t.placements === null || typeof t.placements !== 'object' || Array.isArray(t.placements)) t.placements = {};
    return t;
  }

  const store: EmbeddedControlStore = {
    kind: 'embedded',
    sequencer,
    topologySource: { get: async (key) => (key === TOPOLOGY_KEY ? get<string>(TOPOLOGY_KEY) : null) },
    topologySubscriber: {
      async subscribe() {},
      on(_event, listener) {
        // Ownership subscribes to the topology channel only.
        events.on(TOPOLOGY_CHANNEL, (message: string) => listener(TOPOLOGY_CHANNEL, message));
        return undefined;
      },
    },
    async ping() {
      get(MARKER);
    },
    readMarker: async () => marker(),
    async readTenant(tenant) {
      return { value: get<StoredTenant>(TENANT(tenant)), marker: marker() };
    },
    async readApiKey(digest) {
      return { value: get<StoredApiKey>(API_KEY(digest)), marker: marker() };
    },
    createTenant(known, t) {
      return transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        if (db.get(TENANT(t.tenant)) !== undefined) return { ok: false, reason: 'exists' } as const;
        const tenantVersion = nextVersion();
        const stored: StoredTenant = { partitions: t.partitions, retention: t.retention, ...(t.quota ? { quota: t.quota } : {}), createdAt: t.createdAt, version: tenantVersion };
        void db.put(TENANT(t.tenant), stored);
        const keyVersion = nextVersion();
        void db.put(API_KEY(t.digest), { tenant: t.tenant, keyId: t.keyId, version: keyVersion } satisfies StoredApiKey);
        void db.put(TENANT_KEYS(t.tenant), { ...get<Record<string, string>>(TENANT_KEYS(t.tenant)), [t.keyId]: t.digest });
        return { ok: true, tenantVersion, keyVersion } as const;
      });
    },
    updateTenant(known, { tenant, maxAge, quota }) {
      return transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        const stored = get<StoredTenant>(TENANT(tenant));
        if (stored === null) return { ok: false, reason: 'no-tenant' } as const;
        const { quota: oldQuota, ...rest } = stored;
        const nextQuota = quota === undefined ? oldQuota : quota ?? undefined;
        const next: StoredTenant = {
          ...rest,
          retention: maxAge === undefined ? stored.retention : maxAge === null ? {} : { maxAge },
          ...(nextQuota ? { quota: nextQuota } : {}),
          version: nextVersion(),
        };
        void db.put(TENANT(tenant), next);
        return { ok: true, tenant: next } as const;
      });
    },
    mintKey(known, { tenant, keyId, digest }) {
      return transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        if (db.get(TENANT(tenant)) === undefined) return { ok: false, reason: 'no-tenant' } as const;
        const version = nextVersion();
        void db.put(API_KEY(digest), { tenant, keyId, version } satisfies StoredApiKey);
        void db.put(TENANT_KEYS(tenant), { ...get<Record<string, string>>(TENANT_KEYS(tenant)), [keyId]: digest });
        return { ok: true, version } as const;
      });
    },
    async readKey(tenant, keyId) {
      return { digest: get<Record<string, string>>(TENANT_KEYS(tenant))?.[keyId] ?? null, revoking: get<Record<string, ControlRecord>>(REVOKING(tenant))?.[keyId] ?? null };
    },
    async revokeKey(known, { tenant, keyId, digest, recordKey, channel }) {
      const result = await transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        const keys = get<Record<string, string>>(TENANT_KEYS(tenant)) ?? {};
        if (keys[keyId] !== digest) return { ok: false, reason: 'changed' } as const;
        const tombstone: ControlRecord = { key: recordKey, version: nextVersion(), deleted: true };
        void db.remove(API_KEY(digest));
        const { [keyId]: _revoked, ...rest } = keys;
        void db.put(TENANT_KEYS(tenant), rest);
        void db.put(REVOKING(tenant), { ...get<Record<string, ControlRecord>>(REVOKING(tenant)), [keyId]: tombstone });
        return { ok: true, tombstone } as const;
      });
      if (result.ok) announce(channel, digest);
      return result;
    },
    async finishRevocation(tenant, keyId) {
      await transaction(() => {
        const { [keyId]: _done, ...rest } = get<Record<string, ControlRecord>>(REVOKING(tenant)) ?? {};
        void db.put(REVOKING(tenant), rest);
      });
    },
    readTopology: async () => get<string>(TOPOLOGY_KEY),
    placePartitions(known, epoch, group) {
      return transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        const text = get<string>(TOPOLOGY_KEY);
        if (text === null) return { ok: false, reason: 'no-topology' } as const;
        const topology = parseTopology(text);
        if (topology.epoch !== epoch) return { ok: false, reason: 'epoch-changed', topology: text } as const;
        // As the script: no shard may take partitions, whether or not any is unplaced.
        const chosen = topology.shards.every((s) => s.state === 'draining') ? null : balancedPlacements(topology, group);
        if (chosen === null) return { ok: false, reason: 'all-draining', topology: text } as const;
        if (Object.keys(chosen).length === 0) return { ok: true, changed: false, topology: text } as const;
        Object.assign(topology.placements, chosen);
        topology.version = nextVersion();
        const stored = JSON.stringify(topology);
        void db.put(TOPOLOGY_KEY, stored);
        return { ok: true, changed: true, topology: stored } as const;
      });
    },
    async ensureShards(known, shards, channel) {
      const result = await transaction(() => {
        if (marker() !== known) return { ok: false, reason: 'stale' } as const;
        const text = get<string>(TOPOLOGY_KEY);
        const topology: StoredTopology = text === null ? { epoch: 0, shards: [], placements: {} } : parseTopology(text);
        let added = false;
        let changed = text === null;
        for (const s of shards) {
          const present = topology.shards.find((t) => t.id === s.id);
          if (present === undefined) {
            topology.shards.push({ id: s.id, url: s.url });
            added = true;
          } else if (present.url !== s.url) {
            present.url = s.url;
            changed = true;
          }
        }
        if (added) topology.epoch++;
        if (!added && !changed) return { ok: true, changed: false, topology: text! } as const;
        topology.version = nextVersion();
        const stored = JSON.stringify(topology);
        void db.put(TOPOLOGY_KEY, stored);
        return { ok: true, changed: true, topology: stored, epoch: topology.epoch } as const;
      });
      if (!result.ok || !result.changed) return result;
      announce(channel, String(result.epoch));
      return { ok: true, changed: true, topology: result.topology };
    },
    async lockRebuild(token, ms) {
      const now = clock();
      if (lock !== null && lock.until > now) return false;
      lock = { token, until: now + ms };
      return true;
    },
    async unlockRebuild(token) {
      if (lock?.token === token) lock = null;
    },
    async restore(token, newMarker, records, channel) {
      if (lock?.token !== token || lock.until <= clock()) return false;
      const done = await transaction(() => {
        if (db.get(MARKER) !== undefined) return false;
        let maxVersion = 0;
        for (const r of records) {
          maxVersion = Math.max(maxVersion, r.version);
          // A revoked key restores nothing: its absence is its revocation (the tombstone stays on the shards).
          if (r.deleted || !r.value) continue;
          const v = r.value;
          const [kind, id] = r.key.split('/') as [string, string | undefined];
          if (kind === 'tenant') {
            const tenant: StoredTenant = {
              partitions: Number(v.partitions),
              retention: (v.retention ?? {}) as StoredTenant['retention'],
              ...(v.quota ? { quota: v.quota as NonNullable<StoredTenant['quota']> } : {}),
              createdAt: String(v.createdAt ?? ''),
              version: r.version,
            };
            void db.put(TENANT(id!), tenant);
          } else if (kind === 'apikey') {
            const key: StoredApiKey = { tenant: String(v.tenant), keyId: String(v.keyId), version: r.version };
            void db.put(API_KEY(id!), key);
            void db.put(TENANT_KEYS(key.tenant), { ...get<Record<string, string>>(TENANT_KEYS(key.tenant)), [key.keyId]: id! });
          } else if (kind === 'topology') {
            void db.put(TOPOLOGY_KEY, JSON.stringify({ ...v, version: r.version }));
          }
        }
        // The counter never goes back: a version handed out before is never handed out again.
        if (maxVersion > ((db.get(VERSION) as number | undefined) ?? 0)) void db.put(VERSION, maxVersion);
        void db.put(MARKER, newMarker);
        return true;
      });
      if (!done) return false;
      lock = null;
      announce(channel, 'rebuilt');
      return true;
    },
    async admitEvents(tenant, limit, asked) {
      const now = clock();
      const second = Math.floor(now / 1000);
      const window = quotas.get(tenant);
      let used = window && window.second === second ? window.used : 0;
      const admitted = asked.map((n) => {
        if (used + n > limit) return false;
        used += n;
        return true;
      });
      quotas.set(tenant, { second, used });
      if (quotas.size > 10_000) for (const [t, w] of quotas) if (w.second < second) quotas.delete(t);
      return { admitted, msLeft: 1000 - (now % 1000) };
    },
    readCounter: async () => counter,
    async publish(channel, message) {
      announce(channel, message);
    },
    async subscribe(channel, listener) {
      events.on(channel, listener);
    },
    async close() {
      events.removeAllListeners();
      await writes.settled();
      await db.flushed;
      await db.close();
      writes.close();
    },
  };
  return store;
}
