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
  /** Ids of moves not finished (terminal and cleaned up): a router starting re-enqueues those whose job is gone or failed. */
  active: 'skein:moves:active',
  /** Every move id, by creation time. */
  all: 'skein:moves',
} as const;

type Reply = [number, ...(string | number)[]];

type ScriptedRedis = Redis & {
  skeinMoveStep(...args: string[]): Promise<Reply>;
  skeinMembership(...args: string[]): Promise<Reply>;
};

/**
 * Who may run a move's steps: the lock of the move's BullMQ job (its key) and the token
 * of the run holding it. A run whose lock expired (its router died or stalled) and was
 * taken by another router's run is refused every step.
 */
export interface MoveLock {
  key: string;
  token: string;
}

export type MoveStep = 'begin' | 'save' | 'fence' | 'flip' | 'rollback';
export type StepResult = { ok: true; topology: string; move: string } | { ok: false; reason: 'stale' | 'no-topology' | string };
export type MembershipResult = { ok: true; topology: string; changed: boolean } | { ok: false; reason: 'stale' | 'no-topology' | 'unknown' | 'exists' | 'not-empty' | 'unseeded' | 'retired'; owned?: number };

/** The Redis side of moves and membership: scripts move-step-7.lua and shard-membership-7.lua. */
export interface RedisMoves {
  readonly redis: Redis;
  step(marker: string, step: MoveStep, move: { id: string; partition: string; from: string }, record: object, lock: MoveLock): Promise<StepResult>;
  membership(marker: string, op: 'add' | 'drain' | 'remove', id: string, url: string): Promise<MembershipResult>;
}

export function createRedisMoves(redis: Redis, options: { sequencerKeyPrefix?: string } = {}): RedisMoves {
  const r = redis as ScriptedRedis;
  const prefix = options.sequencerKeyPrefix ?? DEFAULT_KEY_PREFIX;
  r.defineCommand('skeinMoveStep', { numberOfKeys: 7, lua: script('move-step-7.lua') });
  r.defineCommand('skeinMembership', { numberOfKeys: 7, lua: script('shard-membership-7.lua') });
  return {
    redis,
    async step(marker, step, move, record, lock) {
      const reply = await r.skeinMoveStep(
        TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, MOVE_KEYS.move(move.id), MOVE_KEYS.moving(move.partition), lock.key, fenceKeyOf(move.from, prefix),
        marker, step, JSON.stringify(record), TOPOLOGY_CHANNEL, lock.token,
      );
      if (reply[0] === -1) return { ok: false, reason: 'stale' };
      if (reply[0] === -2) return { ok: false, reason: 'no-topology' };
      if (reply[0] === -3) return { ok: false, reason: String(reply[1]) };
      return { ok: true, topology: String(reply[1]), move: String(reply[2]) };
    },
    async membership(marker, op, id, url) {
      const reply = await r.skeinMembership(
        TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, `${prefix}members`, `${prefix}removed`, `${prefix}counter`, `${prefix}marker`,
        marker, op, id, url, TOPOLOGY_CHANNEL,
      );
      if (reply[0] === -1) return { ok: false, reason: 'stale' };
      if (reply[0] === -2) return { ok: false, reason: 'no-topology' };
      if (reply[0] === -3) return { ok: false, reason: op === 'add' ? 'exists' : 'unknown' };
      if (reply[0] === -4) return { ok: false, reason: 'not-empty', owned: Number(reply[1]) };
      if (reply[0] === -5) return { ok: false, reason: 'unseeded' };
      if (reply[0] === -6) return { ok: false, reason: 'retired' };
      return { ok: true, topology: String(reply[1]), changed: reply[0] === 1 };
    },
  };
}
