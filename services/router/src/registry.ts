import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MAX_PARTITIONS, SkeinError, validateTenant, validationError } from '@skein/protocol';

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

/** Tenants and their API keys in Redis. Keys are stored as SHA-256 digests only. */
export interface Registry {
  createTenant(input: unknown): Promise<{ tenant: string; partitions: number; quota?: { eventsPerSecond: number }; apiKey: string }>;
  /** Null when the tenant does not exist. Cached: a tenant's partitions never change. */
  getTenant(tenant: string): Promise<Tenant | null>;
  createKey(tenant: string): Promise<{ keyId: string; apiKey: string }>;
  /** False when the tenant has no such key. */
  deleteKey(tenant: string, keyId: string): Promise<boolean>;
  /** Null for an unknown key. */
  authenticate(apiKey: string): Promise<Principal | null>;
  /** Listens for key revocations by other routers. */
  listen(subscriber: Redis): Promise<void>;
}

const TENANT = (t: string) => `skein:tenant:${t}`;
const TENANT_KEYS = (t: string) => `skein:tenant:${t}:keys`;
const API_KEY = (digest: string) => `skein:apikey:${digest}`;
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

export function createRegistry(deps: { redis: Redis; adminKey: string; clock?: () => number }): Registry {
  const { redis } = deps;
  const clock = deps.clock ?? Date.now;
  const adminDigest = createHash('sha256').update(deps.adminKey).digest();
  const tenants = new Map<string, Tenant>();
  const authCache = new Map<string, { principal: Principal; until: number }>();

  async function storeKey(tenant: string): Promise<{ keyId: string; apiKey: string }> {
    const apiKey = newApiKey();
    const keyId = newKeyId();
    const digest = digestOf(apiKey);
    await redis.multi().hset(API_KEY(digest), { tenant, keyId }).hset(TENANT_KEYS(tenant), keyId, digest).exec();
    return { keyId, apiKey };
  }

  return {
    async createTenant(input) {
      const { tenant, partitions, retention, quota } = parseCreateTenant(input);
      const created = await redis.hsetnx(TENANT(tenant), 'partitions', String(partitions));
      if (created === 0) throw new SkeinError('TENANT_EXISTS', `tenant ${tenant} exists`);
      await redis.hset(TENANT(tenant), {
        retention: JSON.stringify(retention),
        ...(quota ? { quota: JSON.stringify(quota) } : {}),
        createdAt: new Date(clock()).toISOString(),
      });
      const { apiKey } = await storeKey(tenant);
      return { tenant, partitions, ...(quota ? { quota } : {}), apiKey };
    },

    async getTenant(tenant) {
      const cached = tenants.get(tenant);
      if (cached) return cached;
      const h = await redis.hgetall(TENANT(tenant));
      if (!h.partitions) return null;
      const t: Tenant = {
        tenant,
        partitions: Number(h.partitions),
        retention: h.retention ? (JSON.parse(h.retention) as { maxAge?: number }) : {},
        ...(h.quota ? { quota: JSON.parse(h.quota) as { eventsPerSecond: number } } : {}),
        createdAt: h.createdAt ?? '',
      };
      if (h.createdAt) tenants.set(tenant, t);
      return t;
    },

    async createKey(tenant) {
      return storeKey(tenant);
    },

    async deleteKey(tenant, keyId) {
      const digest = await redis.hget(TENANT_KEYS(tenant), keyId);
      if (!digest) return false;
      await redis.multi().del(API_KEY(digest)).hdel(TENANT_KEYS(tenant), keyId).publish(REVOKED_CHANNEL, digest).exec();
      authCache.delete(digest);
      return true;
    },

    async authenticate(apiKey) {
      const digest = createHash('sha256').update(apiKey).digest();
      if (digest.length === adminDigest.length && timingSafeEqual(digest, adminDigest)) return { kind: 'admin' };
      const hex = digest.toString('hex');
      const now = clock();
      const cached = authCache.get(hex);
      if (cached && cached.until > now) return cached.principal;
      const h = await redis.hgetall(API_KEY(hex));
      if (!h.tenant || !h.keyId) {
        authCache.delete(hex);
        return null;
      }
      const principal: Principal = { kind: 'tenant', tenant: h.tenant, keyId: h.keyId };
      if (authCache.size > 10_000) authCache.clear();
      authCache.set(hex, { principal, until: now + AUTH_CACHE_MS });
      return principal;
    },

    async listen(subscriber) {
      subscriber.on('message', (channel: string, digest: string) => {
        if (channel === REVOKED_CHANNEL) authCache.delete(digest);
      });
      await subscriber.subscribe(REVOKED_CHANNEL);
    },
  };
}
