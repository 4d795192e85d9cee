import type { ControlStore } from '@skein/protocol';
import type { Shards } from './shard-client.ts';

/**
 * One watch over the shards' safe points for every live subscription of this router.
 * A caught-up subscription waits here instead of polling: while anyone waits, the hub
 * reads the sequencer counter and asks each shard waited on for its safe point at
 * least that far (bounded wait), every `pollMs`, and wakes the waiters whose shards'
 * minimum safe point moved past what they had seen. An idle router with a thousand
 * subscribers costs the shards what one subscriber costs.
 */
export interface WatermarkHub {
  /** The shard's safe point as last read (0 before the first read). */
  current(shardId: string): bigint;
  /**
   * Resolves with the minimum safe point of `shardIds` once it is above `after`, or
   * with whatever it is when `until` resolves. Rejects when a shard or Redis cannot
   * answer (the subscription ends; its client resumes with Last-Event-ID).
   */
  next(shardIds: readonly string[], after: bigint, until: Promise<void>): Promise<bigint>;
}

interface Waiter {
  shardIds: readonly string[];
  after: bigint;
  resolve(value: bigint): void;
  reject(err: unknown): void;
}

const SAFE_POINT_WAIT_MS = 1000;

export function createWatermarkHub(deps: { shards: Shards; store: ControlStore; pollMs: number; onRound?: () => void }): WatermarkHub {
  const { shards, store, pollMs } = deps;
  const safePoints = new Map<string, bigint>();
  const waiters = new Set<Waiter>();
  let running = false;

  function minOf(ids: readonly string[]): bigint {
    let min: bigint | null = null;
    for (const id of ids) {
      const p = safePoints.get(id) ?? 0n;
      if (min === null || p < min) min = p;
    }
    return min ?? 0n;
  }

  function settle(w: Waiter, value: bigint): void {
    waiters.delete(w);
    w.resolve(value);
  }

  async function round(): Promise<void> {
    const ids = new Set<string>();
    for (const w of waiters) for (const id of w.shardIds) ids.add(id);
    let counter: bigint;
    try {
      counter = await store.readCounter();
    } catch (err) {
      for (const w of waiters) w.reject(err);
      waiters.clear();
      return;
    }
    const failed = new Map<string, unknown>();
    await Promise.all(
      [...ids].map(async (id) => {
        try {
          const value = (await shards.get(id).safePoint({ atLeast: counter, waitMs: SAFE_POINT_WAIT_MS })).safePoint;
          if (value > (safePoints.get(id) ?? 0n)) safePoints.set(id, value);
        } catch (err) {
          failed.set(id, err);
        }
      }),
    );
    deps.onRound?.();
    for (const w of [...waiters]) {
      const broken = w.shardIds.find((id) => failed.has(id));
      if (broken !== undefined) {
        waiters.delete(w);
        w.reject(failed.get(broken));
        continue;
      }
      const value = minOf(w.shardIds);
      // No shards (a topology without owners yet): look again next period.
      if (value > w.after || w.shardIds.length === 0) settle(w, value);
    }
  }

  async function run(): Promise<void> {
    running = true;
    try {
      while (waiters.size > 0) {
        await round();
        if (waiters.size > 0) await new Promise((r) => setTimeout(r, pollMs));
      }
    } finally {
      running = false;
    }
  }

  return {
    current: (shardId) => safePoints.get(shardId) ?? 0n,
    next(shardIds, after, until) {
      const known = minOf(shardIds);
      if (shardIds.length > 0 && known > after && shardIds.every((id) => safePoints.has(id))) return Promise.resolve(known);
      return new Promise<bigint>((resolve, reject) => {
        const w: Waiter = { shardIds, after, resolve, reject };
        waiters.add(w);
        void until.then(() => waiters.has(w) && settle(w, minOf(shardIds)));
        if (!running) void run();
      });
    },
  };
}
