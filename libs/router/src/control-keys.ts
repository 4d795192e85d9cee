import type { ControlRecord } from '@skein/protocol';
import { TOPOLOGY_KEY } from '@skein/ring';

/**
 * Redis's control-plane keys (DESIGN.md, "Control plane"), and how a control record
 * becomes them. Everything here is rebuilt from the shards' records after a wipe.
 */
export const CONTROL = {
  /** Random id written when the control plane was seeded or rebuilt; absent: Redis lost it. */
  marker: 'skein:control:marker',
  /** The counter that hands out record versions. */
  version: 'skein:control:version',
  /** Held (SET NX, with an expiry) by the one router rebuilding. */
  rebuildLock: 'skein:control:rebuild',
  /** Announces a new marker (`rebuilt`) or a changed record (its key) to every router. */
  channel: 'skein:control',
} as const;

export const TENANT = (t: string) => `skein:tenant:${t}`;
export const TENANT_KEYS = (t: string) => `skein:tenant:${t}:keys`;
/** keyId → tombstone record JSON, for revocations not yet recorded on the shards (a retry finishes them). */
export const TENANT_REVOKING = (t: string) => `skein:tenant:${t}:revoking`;
export const API_KEY = (digest: string) => `skein:apikey:${digest}`;

export const tenantRecordKey = (t: string) => `tenant/${t}`;
export const apiKeyRecordKey = (digest: string) => `apikey/${digest}`;
export const TOPOLOGY_RECORD_KEY = 'topology';

/** One step of a rebuild: a hash to set fields of, or a string to set. */
export type RedisWrite = { hash: string; fields: Record<string, string> } | { string: string; text: string };

/**
 * The Redis writes that restore one record. A revoked key restores nothing in Redis:
 * its tombstone stays on the shards, and the key's absence from Redis is its revocation.
 */
export function redisWritesOf(record: ControlRecord): RedisWrite[] {
  const [kind, id] = record.key.split('/') as [string, string | undefined];
  const v = record.value;
  if (record.deleted || !v) return [];
  const version = String(record.version);
  if (kind === 'tenant') {
    return [
      {
        hash: TENANT(id!),
        fields: {
          partitions: String(v.partitions),
          retention: JSON.stringify(v.retention ?? {}),
          ...(v.quota ? { quota: JSON.stringify(v.quota) } : {}),
          createdAt: String(v.createdAt ?? ''),
          version,
        },
      },
    ];
  }
  if (kind === 'apikey') {
    const tenant = String(v.tenant);
    const keyId = String(v.keyId);
    return [
      { hash: API_KEY(id!), fields: { tenant, keyId, version } },
      { hash: TENANT_KEYS(tenant), fields: { [keyId]: id! } },
    ];
  }
  if (kind === 'topology') return [{ string: TOPOLOGY_KEY, text: JSON.stringify({ ...v, version: record.version }) }];
  return [];
}
