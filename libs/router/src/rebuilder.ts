import { randomUUID } from 'node:crypto';
import { SkeinError, mergeControlRecords, type ControlRecord, type ControlStore } from '@skein/protocol';
import { CONTROL, TOPOLOGY_RECORD_KEY } from './control-keys.ts';

/** A shard as a control-record peer. */
export interface ShardAddress {
  id: string;
  url: string;
}

/** Where control records are kept: the shards, reached over their internal API. */
export interface ControlPeers {
  /** The shards a change must be recorded on now: the topology's. */
  members(): Promise<readonly ShardAddress[]>;
  /**
   * Where a rebuild starts when Redis holds no topology: the topology this router knew
   * before, and the shards it was configured with (`SKEIN_ROUTER_SHARDS`).
   */
  candidates(): readonly ShardAddress[];
  read(shard: ShardAddress): Promise<ControlRecord[]>;
  write(shard: ShardAddress, records: readonly ControlRecord[]): Promise<void>;
}

/** The smallest number of answers out of `n` that every other majority shares one with. */
export const majorityOf = (n: number) => Math.floor(n / 2) + 1;

export interface RebuildLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface Rebuilder {
  /**
   * Rebuilds the control store's contents from the shards' records if this router gets
   * the rebuild lock. `busy`: another router holds it, or a marker appeared meanwhile.
   * @throws SkeinError UNAVAILABLE when fewer than a majority of the known shards answer.
   */
  rebuild(): Promise<'rebuilt' | 'busy'>;
}

/**
 * The rebuild (DESIGN.md, "Control plane"): one router at a time (a lock with an
 * expiry) reads every shard's control records, needs a majority of the shards it
 * knows of to answer (every acknowledged change is on a majority, so every one is seen),
 * merges them (highest version per record, tombstones kept), writes them and a new
 * marker at once (`ControlStore.restore`), then gives every shard it reached the merged
 * set (repair). A fresh store is seeded the same way, from shards that hold nothing yet.
 */
export function createRebuilder(deps: { store: ControlStore; peers: ControlPeers; log?: RebuildLogger; lockMs?: number }): Rebuilder {
  const { store, peers, log } = deps;
  const lockMs = deps.lockMs ?? 20_000;

  async function gather(): Promise<{ lists: ControlRecord[][]; reached: ShardAddress[]; known: number }> {
    const known = new Map<string, ShardAddress>();
    for (const s of peers.candidates()) known.set(s.id, s);
    const answers = new Map<string, ControlRecord[]>();
    const asked = new Set<string>();
    // Two rounds: the topology found in the first may name shards this router never knew.
    for (let round = 0; round < 2; round++) {
      const fresh = [...known.values()].filter((s) => !asked.has(s.id));
      if (fresh.length === 0) break;
      await Promise.all(
        fresh.map(async (s) => {
          asked.add(s.id);
          try {
            answers.set(s.id, await peers.read(s));
          } catch (err) {
            log?.warn({ err, shard: s.id }, 'control records could not be read from a shard');
          }
        }),
      );
      const topology = mergeControlRecords(...answers.values()).find((r) => r.key === TOPOLOGY_RECORD_KEY);
      for (const s of (topology?.value?.shards ?? []) as ShardAddress[]) if (!known.has(s.id)) known.set(s.id, { id: s.id, url: s.url });
    }
    if (answers.size < majorityOf(known.size) || known.size === 0) {
      throw new SkeinError('UNAVAILABLE', `the control plane is being rebuilt and needs a majority of the shards: ${answers.size} of ${known.size} answered`, { retryAfter: 1 });
    }
    return { lists: [...answers.values()], reached: [...known.values()].filter((s) => answers.has(s.id)), known: known.size };
  }

  return {
    async rebuild() {
      const token = randomUUID();
      if (!(await store.lockRebuild(token, lockMs))) return 'busy';
      let done = false;
      try {
        const { lists, reached, known } = await gather();
        const merged = mergeControlRecords(...lists);
        const maxVersion = merged.reduce((m, r) => Math.max(m, r.version), 0);
        if (!(await store.restore(token, randomUUID(), merged, CONTROL.channel))) return 'busy';
        done = true;
        log?.info({ records: merged.length, shards: reached.length, known, maxVersion }, 'control plane rebuilt from the shards');
        // Repair: a shard that missed changes (down while they were made) gets them now.
        await Promise.all(reached.map((s) => peers.write(s, merged).catch((err: unknown) => log?.warn({ err, shard: s.id }, 'control records could not be repaired on a shard'))));
        return 'rebuilt';
      } finally {
        if (!done) await store.unlockRebuild(token).catch(() => undefined);
      }
    },
  };
}
