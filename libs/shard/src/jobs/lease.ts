import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

/** Redis keys of the leases (DESIGN.md, "Maintenance"). */
export const LEASE_KEY = (unit: string) => `skein:lease:${unit}`;
export const LEASE_EPOCH_KEY = (unit: string) => `skein:lease:${unit}:epoch`;
/** Every acquisition, renewal and release, in order (`XRANGE skein:leases - +`): what a test reads to prove runs never overlapped. */
export const LEASE_RECORDS_KEY = 'skein:leases';

/** A lease held by one job run; renewed in the background until {@link HeldLease.release}. */
export interface HeldLease {
  readonly token: string;
  /** False once a renewal found the lease gone (expired or taken): the run should stop writing. */
  readonly held: boolean;
  release(): Promise<void>;
}

export type LeaseOutcome = { ok: true; lease: HeldLease } | { ok: false; reason: 'held' } | { ok: false; reason: 'stale-epoch'; floor: number };

/**
 * Per-unit leases of maintenance work: at most one job run at a time per partition (or
 * per shard's buckets), whatever BullMQ does with stalled jobs. A lease carries the
 * ownership epoch of its holder; a holder at an older epoch than the newest that ran on
 * the unit is refused (its view of the topology is stale).
 */
export interface Leases {
  acquire(unit: string, epoch: number, job: { shard: string; id: string }): Promise<LeaseOutcome>;
}

type ScriptedRedis = Redis & {
  skeinAcquireLease(lease: string, floor: string, records: string, token: string, epoch: string, ttl: string, unit: string, shard: string, job: string): Promise<[number, number?]>;
  skeinRenewLease(lease: string, records: string, token: string, ttl: string, unit: string): Promise<number>;
  skeinReleaseLease(lease: string, records: string, token: string, unit: string): Promise<number>;
};

export interface LeaseLogger {
  warn(obj: object, msg?: string): void;
}

/** Leases in Redis, `ttlMs` long, renewed every third of it while held. */
export function createRedisLeases(deps: { redis: Redis; log: LeaseLogger }, options: { ttlMs: number }): Leases {
  const redis = deps.redis as ScriptedRedis;
  redis.defineCommand('skeinAcquireLease', { numberOfKeys: 3, lua: script('acquire-lease-3.lua') });
  redis.defineCommand('skeinRenewLease', { numberOfKeys: 2, lua: script('renew-lease-2.lua') });
  redis.defineCommand('skeinReleaseLease', { numberOfKeys: 2, lua: script('release-lease-2.lua') });
  const ttl = String(options.ttlMs);
  return {
    async acquire(unit, epoch, job) {
      const token = randomBytes(12).toString('hex');
      const [code, value] = await redis.skeinAcquireLease(LEASE_KEY(unit), LEASE_EPOCH_KEY(unit), LEASE_RECORDS_KEY, token, String(epoch), ttl, unit, job.shard, job.id);
      if (code === -1) return { ok: false, reason: 'held' };
      if (code === -2) return { ok: false, reason: 'stale-epoch', floor: value! };
      let held = true;
      const timer = setInterval(() => {
        redis.skeinRenewLease(LEASE_KEY(unit), LEASE_RECORDS_KEY, token, ttl, unit).then(
          (renewed) => {
            if (renewed === 0 && held) {
              held = false;
              deps.log.warn({ unit, job: job.id }, 'lease lost while the job ran (expired or taken)');
            }
          },
          (err: unknown) => deps.log.warn({ err, unit, job: job.id }, 'lease not renewed; retrying at the next turn'),
        );
      }, Math.max(50, Math.floor(options.ttlMs / 3)));
      timer.unref();
      return {
        ok: true,
        lease: {
          token,
          get held() {
            return held;
          },
          async release() {
            clearInterval(timer);
            held = false;
            await redis.skeinReleaseLease(LEASE_KEY(unit), LEASE_RECORDS_KEY, token, unit);
          },
        },
      };
    },
  };
}

/** Leases of one process (a node without Redis: nothing else runs its jobs). */
export function createLocalLeases(): Leases {
  const holders = new Map<string, string>();
  const floors = new Map<string, number>();
  return {
    async acquire(unit, epoch) {
      const floor = floors.get(unit) ?? 0;
      if (floor > epoch) return { ok: false, reason: 'stale-epoch', floor };
      if (holders.has(unit)) return { ok: false, reason: 'held' };
      const token = randomBytes(12).toString('hex');
      holders.set(unit, token);
      floors.set(unit, epoch);
      let held = true;
      return {
        ok: true,
        lease: {
          token,
          get held() {
            return held;
          },
          async release() {
            held = false;
            if (holders.get(unit) === token) holders.delete(unit);
          },
        },
      };
    },
  };
}
