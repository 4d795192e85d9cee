import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY } from '@skein/ring';
import { DEFAULT_KEY_PREFIX, fenceKeyOf } from '@skein/sequencer';
import { CONTROL } from '../control-keys.ts';

const script = (name: string) => readFileSync(new URL(`../scripts/${name}`, import.meta.url), 'utf8');

/** Redis keys of partition moves. */
export const MOVE_KEYS = {
  move: (id: string) => `skein:move:${id}`,
  moving: (partition: string) => `skein:moving:${partition}`,
  lock: (id: string) => `skein:move:${id}:lock`,
  /** Ids of moves not finished (terminal and cleaned up), for any router to resume. */
  active: 'skein:moves:active',
  /** Every move id, by creation time. */
  all: 'skein:moves',
} as const;

type Reply = [number, ...(string | number)[]];

type ScriptedRedis = Redis & {
  skeinMoveStep(...args: string[]): Promise<Reply>;
  skeinMembership(...args: string[]): Promise<Reply>;
  skeinRenewLock(key: string, token: string, ms: string): Promise<number>;
  skeinReleaseMoveLock(key: string, token: string): Promise<number>;
};

export type MoveStep = 'begin' | 'save' | 'fence' | 'flip' | 'rollback';
export type StepResult = { ok: true; topology: string; move: string } | { ok: false; reason: 'stale' | 'no-topology' | string };
export type MembershipResult = { ok: true; topology: string; changed: boolean } | { ok: false; reason: 'stale' | 'no-topology' | 'unknown' | 'exists' | 'not-empty'; owned?: number };

/** The Redis side of moves and membership: scripts (move-step-7.lua, shard-membership-4.lua) and the move lock. */
export interface RedisMoves {
  readonly redis: Redis;
  step(marker: string, step: MoveStep, move: { id: string; partition: string; from: string }, record: object, token: string): Promise<StepResult>;
  membership(marker: string, op: 'add' | 'drain' | 'remove', id: string, url: string): Promise<MembershipResult>;
  lock(id: string, token: string, ms: number): Promise<boolean>;
  renew(id: string, token: string, ms: number): Promise<boolean>;
  release(id: string, token: string): Promise<void>;
}

export function createRedisMoves(redis: Redis, options: { sequencerKeyPrefix?: string } = {}): RedisMoves {
  const r = redis as ScriptedRedis;
  const prefix = options.sequencerKeyPrefix ?? DEFAULT_KEY_PREFIX;
  r.defineCommand('skeinMoveStep', { numberOfKeys: 7, lua: script('move-step-7.lua') });
  r.defineCommand('skeinMembership', { numberOfKeys: 4, lua: script('shard-membership-4.lua') });
  r.defineCommand('skeinRenewLock', { numberOfKeys: 1, lua: script('renew-lock-1.lua') });
  r.defineCommand('skeinReleaseMoveLock', { numberOfKeys: 1, lua: script('release-lock-1.lua') });
  return {
    redis,
    async step(marker, step, move, record, token) {
      const reply = await r.skeinMoveStep(
        TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, MOVE_KEYS.move(move.id), MOVE_KEYS.moving(move.partition), MOVE_KEYS.lock(move.id), fenceKeyOf(move.from, prefix),
        marker, step, JSON.stringify(record), TOPOLOGY_CHANNEL, token,
      );
      if (reply[0] === -1) return { ok: false, reason: 'stale' };
      if (reply[0] === -2) return { ok: false, reason: 'no-topology' };
      if (reply[0] === -3) return { ok: false, reason: String(reply[1]) };
      return { ok: true, topology: String(reply[1]), move: String(reply[2]) };
    },
    async membership(marker, op, id, url) {
      const reply = await r.skeinMembership(TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, `${prefix}members`, marker, op, id, url, TOPOLOGY_CHANNEL);
      if (reply[0] === -1) return { ok: false, reason: 'stale' };
      if (reply[0] === -2) return { ok: false, reason: 'no-topology' };
      if (reply[0] === -3) return { ok: false, reason: op === 'add' ? 'exists' : 'unknown' };
      if (reply[0] === -4) return { ok: false, reason: 'not-empty', owned: Number(reply[1]) };
      return { ok: true, topology: String(reply[1]), changed: reply[0] === 1 };
    },
    async lock(id, token, ms) {
      return (await redis.set(MOVE_KEYS.lock(id), token, 'PX', ms, 'NX')) === 'OK';
    },
    async renew(id, token, ms) {
      return (await r.skeinRenewLock(MOVE_KEYS.lock(id), token, String(ms))) === 1;
    },
    async release(id, token) {
      await r.skeinReleaseMoveLock(MOVE_KEYS.lock(id), token);
    },
  };
}
