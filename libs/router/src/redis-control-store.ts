import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { parseControlRecord, type ControlRecord, type ControlStore, type StoredTenant } from '@skein/protocol';
import { TOPOLOGY_KEY } from '@skein/ring';
import { readCounter } from '@skein/sequencer';
import { API_KEY, CONTROL, TENANT, TENANT_KEYS, TENANT_REVOKING, redisWritesOf } from './control-keys.ts';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

type ScriptedRedis = Redis & {
  skeinCreateTenant(...args: string[]): Promise<[number, number?, number?]>;
  skeinMintKey(...args: string[]): Promise<[number, number?]>;
  skeinUpdateTenant(...args: string[]): Promise<[number, number?, string?, string?, string?, string?]>;
  skeinRevokeKey(...args: string[]): Promise<[number, string?]>;
  skeinPlacePartitions(key: string, marker: string, version: string, knownMarker: string, epoch: string, placements: string): Promise<[number, string?]>;
  skeinEnsureShards(key: string, marker: string, version: string, knownMarker: string, shards: string, channel: string): Promise<[number, string?]>;
  skeinRebuild(marker: string, version: string, lock: string, token: string, newMarker: string, maxVersion: string, channel: string, ...writes: string[]): Promise<[number]>;
  skeinReleaseLock(lock: string, token: string): Promise<number>;
  skeinAdmitEvents(key: string, limit: number, ...events: number[]): Promise<[number[], number]>;
};

const QUOTA = (tenant: string) => `skein:quota:${tenant}`;

/** The replies of a MULTI, or the first error among them. */
function replies(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) throw new Error('transaction aborted');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function tenantOf(h: Record<string, string>): StoredTenant | null {
  if (!h.partitions) return null;
  return {
    partitions: Number(h.partitions),
    retention: h.retention ? (JSON.parse(h.retention) as StoredTenant['retention']) : {},
    ...(h.quota ? { quota: JSON.parse(h.quota) as NonNullable<StoredTenant['quota']> } : {}),
    createdAt: h.createdAt ?? '',
    version: Number(h.version ?? 0),
  };
}

/**
 * The control store in Redis, shared by every router and shard of a cluster: each change
 * is one Lua script (scripts/*.lua, headers name KEYS and ARGV), keys as control-keys.ts
 * lays them out. `redis` fails fast while Redis is away (the caller's client options);
 * `subscriber` is a second connection for announcements (absent: {@link ControlStore.subscribe}
 * is refused). Errors are ioredis's; the router's error handler translates them (redis-errors.ts).
 */
export function createRedisControlStore(deps: { redis: Redis; subscriber?: Redis }): ControlStore {
  const redis = deps.redis as ScriptedRedis;
  const { subscriber } = deps;
  redis.defineCommand('skeinCreateTenant', { numberOfKeys: 5, lua: script('create-tenant-5.lua') });
  redis.defineCommand('skeinMintKey', { numberOfKeys: 5, lua: script('mint-key-5.lua') });
  redis.defineCommand('skeinUpdateTenant', { numberOfKeys: 3, lua: script('update-tenant-3.lua') });
  redis.defineCommand('skeinRevokeKey', { numberOfKeys: 5, lua: script('revoke-key-5.lua') });
  redis.defineCommand('skeinPlacePartitions', { numberOfKeys: 3, lua: script('place-partitions-3.lua') });
  redis.defineCommand('skeinEnsureShards', { numberOfKeys: 3, lua: script('ensure-shards-3.lua') });
  redis.defineCommand('skeinRebuild', { numberOfKeys: 3, lua: script('rebuild-3.lua') });
  redis.defineCommand('skeinReleaseLock', { numberOfKeys: 1, lua: script('release-lock-1.lua') });
  redis.defineCommand('skeinAdmitEvents', { numberOfKeys: 1, lua: script('admit-events-1.lua') });
  const listeners = new Map<string, ((message: string) => void)[]>();
  subscriber?.on('message', (channel: string, message: string) => {
    for (const l of listeners.get(channel) ?? []) l(message);
  });

  async function readHash(key: string): Promise<[Record<string, string>, string | null]> {
    return replies(await redis.multi().hgetall(key).get(CONTROL.marker).exec()) as [Record<string, string>, string | null];
  }

  return {
    kind: 'redis',
    async ping() {
      await redis.ping();
    },
    readMarker: () => redis.get(CONTROL.marker),
    async readTenant(tenant) {
      const [h, marker] = await readHash(TENANT(tenant));
      return { value: tenantOf(h), marker };
    },
    async readApiKey(digest) {
      const [h, marker] = await readHash(API_KEY(digest));
      const value = h.tenant && h.keyId ? { tenant: h.tenant, keyId: h.keyId, version: Number(h.version ?? 0) } : null;
      return { value, marker };
    },
    async createTenant(marker, t) {
      const [code, tenantVersion, keyVersion] = await redis.skeinCreateTenant(
        CONTROL.marker, CONTROL.version, TENANT(t.tenant), TENANT_KEYS(t.tenant), API_KEY(t.digest),
        marker, String(t.partitions), JSON.stringify(t.retention), t.quota ? JSON.stringify(t.quota) : '', t.createdAt, t.tenant, t.keyId, t.digest,
      );
      if (code === -1) return { ok: false, reason: 'stale' };
      if (code === -2) return { ok: false, reason: 'exists' };
      return { ok: true, tenantVersion: tenantVersion!, keyVersion: keyVersion! };
    },
    async updateTenant(marker, { tenant, maxAge, quota }) {
      const arg = <T>(v: T | null | undefined, text: (v: T) => string) => (v === undefined ? '' : v === null ? 'null' : text(v));
      const [code, version, partitions, retention, quotaJson, createdAt] = await redis.skeinUpdateTenant(
        CONTROL.marker, CONTROL.version, TENANT(tenant), marker, arg(maxAge, String), arg(quota, (q) => JSON.stringify(q)),
      );
      if (code === -1) return { ok: false, reason: 'stale' };
      if (code === -3) return { ok: false, reason: 'no-tenant' };
      return { ok: true, tenant: tenantOf({ partitions: partitions!, retention: retention!, quota: quotaJson!, createdAt: createdAt!, version: String(version) })! };
    },
    async mintKey(marker, { tenant, keyId, digest }) {
      const [code, version] = await redis.skeinMintKey(CONTROL.marker, CONTROL.version, TENANT(tenant), TENANT_KEYS(tenant), API_KEY(digest), marker, tenant, keyId, digest);
      if (code === -1) return { ok: false, reason: 'stale' };
      if (code === -3) return { ok: false, reason: 'no-tenant' };
      return { ok: true, version: version! };
    },
    async readKey(tenant, keyId) {
      const [digest, pending] = replies(await redis.multi().hget(TENANT_KEYS(tenant), keyId).hget(TENANT_REVOKING(tenant), keyId).exec()) as [string | null, string | null];
      return { digest, revoking: pending === null ? null : parseControlRecord(JSON.parse(pending)) };
    },
    async revokeKey(marker, { tenant, keyId, digest, recordKey, channel }) {
      const [code, record] = await redis.skeinRevokeKey(
        CONTROL.marker, CONTROL.version, TENANT_KEYS(tenant), TENANT_REVOKING(tenant), API_KEY(digest),
        marker, keyId, digest, recordKey, channel,
      );
      if (code === -1) return { ok: false, reason: 'stale' };
      if (code === -3) return { ok: false, reason: 'changed' };
      return { ok: true, tombstone: parseControlRecord(JSON.parse(record!)) };
    },
    async finishRevocation(tenant, keyId) {
      await redis.hdel(TENANT_REVOKING(tenant), keyId);
    },
    readTopology: () => redis.get(TOPOLOGY_KEY),
    async placePartitions(marker, epoch, group) {
      const [code, stored] = await redis.skeinPlacePartitions(TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, marker, String(epoch), JSON.stringify(group));
      if (code === -1) return { ok: false, reason: 'stale' };
      if (code === -2) return { ok: false, reason: 'no-topology' };
      if (code === -3) return { ok: false, reason: 'epoch-changed', topology: stored! };
      if (code === -4) return { ok: false, reason: 'all-draining', topology: stored! };
      return { ok: true, changed: code === 1, topology: stored! };
    },
    async ensureShards(marker, shards, channel) {
      const [code, stored] = await redis.skeinEnsureShards(TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, marker, JSON.stringify(shards), channel);
      if (code === -1) return { ok: false, reason: 'stale' };
      return { ok: true, changed: code === 1, topology: stored! };
    },
    async lockRebuild(token, ms) {
      return (await redis.set(CONTROL.rebuildLock, token, 'PX', ms, 'NX')) === 'OK';
    },
    async unlockRebuild(token) {
      await redis.skeinReleaseLock(CONTROL.rebuildLock, token);
    },
    async restore(token, newMarker, records: readonly ControlRecord[], channel) {
      const maxVersion = records.reduce((m, r) => Math.max(m, r.version), 0);
      const writes = records.flatMap(redisWritesOf).map((w) => JSON.stringify(w));
      const [code] = await redis.skeinRebuild(CONTROL.marker, CONTROL.version, CONTROL.rebuildLock, token, newMarker, String(maxVersion), channel, ...writes);
      return code === 0;
    },
    async admitEvents(tenant, limit, events) {
      const [admitted, msLeft] = await redis.skeinAdmitEvents(QUOTA(tenant), limit, ...events);
      return { admitted: admitted.map((a) => a === 1), msLeft };
    },
    readCounter: () => readCounter(redis),
    async publish(channel, message) {
      await redis.publish(channel, message);
    },
    async subscribe(channel, listener) {
      if (!subscriber) throw new Error('this Redis control store has no subscriber connection');
      const list = listeners.get(channel);
      if (list) return void list.push(listener);
      listeners.set(channel, [listener]);
      await subscriber.subscribe(channel);
    },
  };
}
