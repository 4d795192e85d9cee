import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_PARTITIONS, SkeinError, validateTenant, validationError, type ControlRecord, type ControlStore, type Marked, type StoredTenant } from '@skein/protocol';
import { apiKeyRecordKey, tenantRecordKey } from './control-keys.ts';
import { STALE_MARKER, type ControlPlane } from './control-plane.ts';

/** A tenant as stored. `partitions` never changes after creation. */
export interface Tenant {
  tenant: string;
  partitions: number;
  retention: { maxAge?: number };
  /** Append quota (quota.ts); absent: no limit. */
  quota?: { eventsPerSecond: number };
  createdAt: string;
}

/** Who a request's key belongs to. */
export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenant: string; keyId: string };

/**
 * Tenants and their API keys in the control store (Redis or embedded), every change
 * recorded on the shards before it is acknowledged (control-plane.ts). Keys are stored
 * as SHA-256 digests only. Lookups that find nothing read the control marker in the
 * same transaction: with no marker (the store lost its data, a rebuild is pending) they
 * fail with UNAVAILABLE rather than answer "unknown key" or "no such tenant".
 */
export interface Registry {
  createTenant(input: unknown): Promise<{ tenant: string; partitions: number; quota?: { eventsPerSecond: number }; apiKey: string }>;
  /**
   * Null when the tenant does not exist. Cached until the control epoch changes or the
   * tenant's record is announced as changed.
   */
  getTenant(tenant: string): Promise<Tenant | null>;
  /**
   * `PATCH /v1/admin/tenants/{tenant}`: changes `retention.maxAge` and `quota` (null removes
   * one, absent keeps it), recorded on the shards like a creation. Null: no such tenant.
   */
  updateTenant(tenant: string, input: unknown): Promise<Tenant | null>;
  createKey(tenant: string): Promise<{ keyId: string; apiKey: string }>;
  /** False when the tenant has no such key. */
  deleteKey(tenant: string, keyId: string): Promise<boolean>;
  /** Null for an unknown key. */
  authenticate(apiKey: string): Promise<Principal | null>;
  /**
   * The principal `authenticate` would answer from its cache right now, without a store
   * read; undefined when it would have to read (unknown, expired or never seen).
   */
  cachedPrincipal(apiKey: string): Principal | undefined;
  /** The tenant `getTenant` would answer from its cache right now; undefined when it would read. */
  cachedTenant(tenant: string): Tenant | undefined;
  /** Listens for key revocations by other routers (control-plane announcements arrive through `control`). */
  listen(): Promise<void>;
}

const REVOKED_CHANNEL = 'skein:apikeys:revoked';
/** Positive authentications are remembered this long; revocations clear them at once. */
const AUTH_CACHE_MS = 1000;

const digestOf = (apiKey: string) => createHash('sha256').update(apiKey).digest('hex');
const newApiKey = () => `sk_${randomBytes(30).toString('base64url')}`;
const newKeyId = () => randomBytes(8).toString('hex');

function parseCreateTenant(input: unknown): { tenant: string; partitions: number; retention: { maxAge?: number }; quota?: { eventsPerSecond: number } } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw validationError('body', 'the body must be a JSON object');
  const { tenant, partitions = 1, retention, quota, ...rest } = input as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw validationError(unknown, `unknown member "${unknown}"`);
  validateTenant(tenant);
  if (typeof partitions !== 'number' || !Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw validationError('partitions', `partitions must be an integer from 1 to ${MAX_PARTITIONS}`);
  }
  const out: { maxAge?: number } = {};
  if (retention !== undefined) {
    if (retention === null || typeof retention !== 'object' || Array.isArray(retention)) throw validationError('retention', 'retention must be an object');
    const { maxAge, ...other } = retention as Record<string, unknown>;
    const extra = Object.keys(other)[0];
    if (extra !== undefined) throw validationError(`retention.${extra}`, `unknown member "${extra}"`);
    if (maxAge !== undefined) {
      if (typeof maxAge !== 'number' || !Number.isSafeInteger(maxAge) || maxAge < 1) throw validationError('retention.maxAge', 'retention.maxAge must be an integer ≥ 1 (seconds)');
      out.maxAge = maxAge;
    }
  }
  if (quota === undefined) return { tenant: tenant as string, partitions, retention: out };
  if (quota === null || typeof quota !== 'object' || Array.isArray(quota)) throw validationError('quota', 'quota must be an object');
  const { eventsPerSecond, ...beyond } = quota as Record<string, unknown>;
  const beyondKey = Object.keys(beyond)[0];
  if (beyondKey !== undefined) throw validationError(`quota.${beyondKey}`, `unknown member "${beyondKey}"`);
  if (typeof eventsPerSecond !== 'number' || !Number.isSafeInteger(eventsPerSecond) || eventsPerSecond < 1) {
    throw validationError('quota.eventsPerSecond', 'quota.eventsPerSecond must be an integer ≥ 1');
  }
  return { tenant: tenant as string, partitions, retention: out, quota: { eventsPerSecond } };
}

function parseUpdateTenant(input: unknown): { maxAge?: number | null; quota?: { eventsPerSecond: number } | null } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw validationError('body', 'the body must be a JSON object');
  const { retention, quota, ...rest } = input as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw validationError(unknown, unknown === 'partitions' ? 'partitions cannot change' : `unknown member "${unknown}"`);
  const out: { maxAge?: number | null; quota?: { eventsPerSecond: number } | null } = {};
  if (retention !== undefined) {
    if (retention === null || typeof retention !== 'object' || Array.isArray(retention)) throw validationError('retention', 'retention must be an object');
    const { maxAge, ...other } = retention as Record<string, unknown>;
    const extra = Object.keys(other)[0];
    if (extra !== undefined) throw validationError(`retention.${extra}`, `unknown member "${extra}"`);
    if (maxAge !== undefined) {
      if (maxAge !== null && (typeof maxAge !== 'number' || !Number.isSafeInteger(maxAge) || maxAge < 1)) throw validationError('retention.maxAge', 'retention.maxAge must be an integer ≥ 1 (seconds) or null');
      out.maxAge = maxAge;
    }
  }
  if (quota === null) out.quota = null;
  else if (quota !== undefined) {
    if (typeof quota !== 'object' || Array.isArray(quota)) throw validationError('quota', 'quota must be an object or null');
    const { eventsPerSecond, ...beyond } = quota as Record<string, unknown>;
    const beyondKey = Object.keys(beyond)[0];
    if (beyondKey !== undefined) throw validationError(`quota.${beyondKey}`, `unknown member "${beyondKey}"`);
    if (typeof eventsPerSecond !== 'number' || !Number.isSafeInteger(eventsPerSecond) || eventsPerSecond < 1) throw validationError('quota.eventsPerSecond', 'quota.eventsPerSecond must be an integer ≥ 1');
    out.quota = { eventsPerSecond };
  }
  return out;
}

/** The tenant's control record as stored; null for one stored before records existed (no version). */
function tenantRecordOf(tenant: string, t: StoredTenant): ControlRecord | null {
  const { version, ...value } = t;
  if (!Number.isSafeInteger(version) || version < 1) return null;
  return { key: tenantRecordKey(tenant), version, value: { ...value } };
}

const rebuilding = () => new SkeinError('UNAVAILABLE', 'the control plane is being rebuilt after Redis lost its data; retry', { retryAfter: 1 });

export function createRegistry(deps: { store: ControlStore; adminKey: string; control: ControlPlane; clock?: () => number }): Registry {
  const { store, control } = deps;
  const clock = deps.clock ?? Date.now;
  const adminDigest = createHash('sha256').update(deps.adminKey).digest();
  // Entries belong to the control epoch they were read in: a new marker clears both.
  const tenants = new Map<string, Tenant>();
  /**
   * Authenticated keys by the key as sent: a request whose key is cached costs one map
   * lookup, no hash. Revocations name a key by its digest (`forget`): `byDigest` finds
   * the entry from it. `forgotten` counts revocations, so a store read that a revocation
   * overtook is not cached.
   */
  const authCache = new Map<string, { principal: Principal; until: number }>();
  const byDigest = new Map<string, string>();
  let forgotten = 0;
  const forget = (digest: string) => {
    forgotten++;
    const apiKey = byDigest.get(digest);
    if (apiKey === undefined) return;
    byDigest.delete(digest);
    authCache.delete(apiKey);
  };
  const forgetAll = () => {
    authCache.clear();
    byDigest.clear();
    reading.clear();
  };
  /**
   * Store reads of keys under way, by the key as sent, with the revocation count and the
   * control marker they started at. Requests that miss the cache together (each client
   * of a key whose entry expired, until the read's answer is handled: under load that is
   * milliseconds, and those reads, each an ioredis transaction, were ~0.45% of the main
   * thread under 32 appending clients on one key) share one read. A request
   * joins only while no revocation arrived and the marker is unchanged since the read
   * began: the conditions under which that read's answer is cached, so joining it is
   * what a cache hit would answer.
   */
  const reading = new Map<string, { revocations: number; marker: string | null; read: Promise<Principal | null> }>();
  control.onEpoch(() => {
    tenants.clear();
    forgetAll();
  });
  control.onChange((recordKey) => {
    if (recordKey.startsWith('tenant/')) tenants.delete(recordKey.slice('tenant/'.length));
  });

  const keyRecord = (digest: string, tenant: string, keyId: string, version: number): ControlRecord => ({ key: apiKeyRecordKey(digest), version, value: { tenant, keyId } });

  /**
   * Reads a value and the control marker in one transaction. A miss with no marker is no
   * answer (the store lost its data: the key or tenant may well exist): it waits for the
   * rebuild (control.ready(), bounded) and reads again; UNAVAILABLE if that cannot finish.
   */
  async function lookup<T>(read: () => Promise<Marked<T>>): Promise<Marked<T>> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const found = await read();
      if (found.marker !== null) control.observe(found.marker);
      if (found.marker !== null || found.value !== null) return found;
      await control.ready();
    }
    throw rebuilding();
  }

  /** A key not cached (or cached too long ago): its digest against the admin key's, then the store. */
  async function authenticateByDigest(apiKey: string, now: number): Promise<Principal | null> {
    const digest = createHash('sha256').update(apiKey).digest();
    const hex = digest.toString('hex');
    if (authCache.size > 10_000) forgetAll();
    if (digest.length === adminDigest.length && timingSafeEqual(digest, adminDigest)) {
      const principal: Principal = { kind: 'admin' };
      remember(apiKey, hex, principal, Infinity);
      return principal;
    }
    const revocationsBefore = forgotten;
    const { value: key, marker } = await lookup(() => store.readApiKey(hex));
    if (key === null) {
      forget(hex);
      return null;
    }
    const principal: Principal = { kind: 'tenant', tenant: key.tenant, keyId: key.keyId };
    if (marker === control.marker && forgotten === revocationsBefore) remember(apiKey, hex, principal, now + AUTH_CACHE_MS);
    return principal;
  }

  function remember(apiKey: string, digest: string, principal: Principal, until: number): void {
    authCache.set(apiKey, { principal, until });
    byDigest.set(digest, apiKey);
  }

  return {
    async createTenant(input) {
      const { tenant, partitions, retention, quota } = parseCreateTenant(input);
      const apiKey = newApiKey();
      const keyId = newKeyId();
      const digest = digestOf(apiKey);
      const createdAt = new Date(clock()).toISOString();
      const [tenantVersion, keyVersion] = await control.mutate(async (marker) => {
        const r = await store.createTenant(marker, { tenant, partitions, retention, ...(quota ? { quota } : {}), createdAt, keyId, digest });
        if (!r.ok && r.reason === 'stale') return STALE_MARKER;
        // The shards' records remember every tenant ever created (restored into the store
        // by a rebuild), so a tenant whose data exists is never created again.
        if (!r.ok) throw new SkeinError('TENANT_EXISTS', `tenant ${tenant} exists`);
        return [r.tenantVersion, r.keyVersion] as const;
      });
      await control.record([
        { key: tenantRecordKey(tenant), version: tenantVersion, value: { partitions, retention, ...(quota ? { quota } : {}), createdAt } },
        keyRecord(digest, tenant, keyId, keyVersion),
      ]);
      return { tenant, partitions, ...(quota ? { quota } : {}), apiKey };
    },

    async getTenant(tenant) {
      const cached = tenants.get(tenant);
      if (cached) return cached;
      const { value: stored, marker } = await lookup(() => store.readTenant(tenant));
      if (stored === null) return null;
      const t: Tenant = {
        tenant,
        partitions: stored.partitions,
        retention: stored.retention,
        ...(stored.quota ? { quota: stored.quota } : {}),
        createdAt: stored.createdAt,
      };
      if (stored.createdAt && marker !== null && marker === control.marker) tenants.set(tenant, t);
      return t;
    },

    async updateTenant(tenant, input) {
      const change = parseUpdateTenant(input);
      const stored = await control.mutate(async (marker) => {
        const r = await store.updateTenant(marker, { tenant, ...change });
        if (!r.ok && r.reason === 'stale') return STALE_MARKER;
        return r.ok ? r.tenant : null;
      });
      if (stored === null) return null;
      // Recorded on a majority of shards before the answer, as a creation is; the announcement clears every router's cache.
      const record = tenantRecordOf(tenant, stored);
      if (record) await control.record([record]);
      tenants.delete(tenant);
      return { tenant, partitions: stored.partitions, retention: stored.retention, ...(stored.quota ? { quota: stored.quota } : {}), createdAt: stored.createdAt };
    },

    async createKey(tenant) {
      const apiKey = newApiKey();
      const keyId = newKeyId();
      const digest = digestOf(apiKey);
      const version = await control.mutate(async (marker) => {
        const r = await store.mintKey(marker, { tenant, keyId, digest });
        if (!r.ok && r.reason === 'stale') return STALE_MARKER;
        if (!r.ok) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${tenant}`);
        return r.version;
      });
      // The tenant's record goes along: if its creation never reached the shards, it does now.
      const stored = (await store.readTenant(tenant)).value;
      const owner = stored && tenantRecordOf(tenant, stored);
      await control.record([...(owner ? [owner] : []), keyRecord(digest, tenant, keyId, version)]);
      return { keyId, apiKey };
    },

    async deleteKey(tenant, keyId) {
      const tombstone = await control.mutate(async (marker) => {
        for (let attempt = 0; attempt < 3; attempt++) {
          const { digest, revoking } = await store.readKey(tenant, keyId);
          // Revoked in the store by an earlier attempt that could not record it on the shards: finish it.
          if (digest === null) return revoking;
          const r = await store.revokeKey(marker, { tenant, keyId, digest, recordKey: apiKeyRecordKey(digest), channel: REVOKED_CHANNEL });
          if (!r.ok && r.reason === 'stale') return STALE_MARKER;
          forget(digest);
          if (r.ok) return r.tombstone;
          // changed: another revocation of the same key ran in between; read again.
        }
        throw new SkeinError('UNAVAILABLE', 'the key kept changing while being revoked; retry', { retryAfter: 1 });
      });
      if (tombstone === null) return false;
      await control.record([tombstone]);
      await store.finishRevocation(tenant, keyId);
      return true;
    },

    authenticate(apiKey) {
      const now = clock();
      const cached = authCache.get(apiKey);
      if (cached !== undefined && cached.until > now) return Promise.resolve(cached.principal);
      const under = reading.get(apiKey);
      if (under !== undefined && under.revocations === forgotten && under.marker === control.marker) return under.read;
      const read: Promise<Principal | null> = authenticateByDigest(apiKey, now).finally(() => {
        if (reading.get(apiKey)?.read === read) reading.delete(apiKey);
      });
      reading.set(apiKey, { revocations: forgotten, marker: control.marker, read });
      return read;
    },

    cachedPrincipal(apiKey) {
      const cached = authCache.get(apiKey);
      return cached !== undefined && cached.until > clock() ? cached.principal : undefined;
    },

    cachedTenant(tenant) {
      return tenants.get(tenant) ?? undefined;
    },

    async listen() {
      await store.subscribe(REVOKED_CHANNEL, forget);
    },
  };
}
