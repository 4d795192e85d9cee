import { SkeinError } from '@skein/protocol';
import { STALE_MARKER, type ControlPlane } from '../control-plane.ts';
import { topologyRecordOf, type RouterTopology } from '../topology.ts';
import type { RedisMoves } from './redis-moves.ts';

/** Shard membership in the control plane (API.md, "Membership and partition moves"). */
export interface Membership {
  /** Adds an empty shard. @throws CONFLICT when the id exists, or belonged to a removed shard (ids are retired). */
  add(id: string, url: string): Promise<void>;
  /** Marks the shard draining: it takes no new partition. @throws NOT_FOUND for an unknown shard. */
  drain(id: string): Promise<void>;
  /**
   * Removes a shard that owns nothing. It also stops being a sequencer member: a re-seed
   * after a wipe of Redis no longer waits for it (redis-sequencer.ts, "Removed members").
   * @throws SHARD_NOT_EMPTY while it owns a partition, NOT_FOUND for an unknown shard,
   * UNAVAILABLE while the sequencer re-seeds.
   */
  remove(id: string): Promise<void>;
}

export function createMembership(deps: { moves: RedisMoves; control: ControlPlane; topology: RouterTopology }): Membership {
  const { moves, control, topology } = deps;

  async function change(op: 'add' | 'drain' | 'remove', id: string, url = ''): Promise<void> {
    const result = await control.mutate(async (marker) => {
      const r = await moves.membership(marker, op, id, url);
      return !r.ok && r.reason === 'stale' ? STALE_MARKER : r;
    });
    if (!result.ok) {
      if (result.reason === 'exists') throw new SkeinError('CONFLICT', `shard ${id} is already a member`);
      if (result.reason === 'unknown') throw new SkeinError('NOT_FOUND', `no shard ${id}`);
      if (result.reason === 'not-empty') throw new SkeinError('SHARD_NOT_EMPTY', `shard ${id} still owns ${result.owned} partition(s): drain it first`, { partitions: result.owned });
      if (result.reason === 'retired') throw new SkeinError('CONFLICT', `shard id ${id} belonged to a removed shard; ids are not reused`);
      // The removal reads the counter to bound the removed shard's positions: only in a seeded epoch.
      if (result.reason === 'unseeded') throw new SkeinError('UNAVAILABLE', 'the sequencer is re-seeding; try again', { retryAfter: 1 });
      throw new SkeinError('UNAVAILABLE', 'no topology is stored', { retryAfter: 1 });
    }
    await topology.refresh();
    // Recorded on the shards (a rebuilt Redis keeps the membership); the new shard included.
    const record = topologyRecordOf(result.topology);
    if (record && result.changed) await control.record([record]);
    // Every control record to the shard that joined (what routers that did not know it
    // yet recorded meanwhile), or to the shards that stay after one left (it may have
    // been part of the majority that holds a change). Best effort: failures are logged.
    if (result.changed && op !== 'drain') await control.replicate(op === 'add' ? [{ id, url }] : (await topology.current()).topology.shards);
  }

  return {
    async add(id, url) {
      // A joining shard first takes every control record; nothing changes if it cannot.
      // Without them, a Redis wiped once the older shards are gone is rebuilt from
      // shards that know no tenant (DESIGN.md, "Control plane").
      const known = (await topology.current()).topology.shards.some((s) => s.id === id);
      if (!known && (await control.replicate([{ id, url }])).length === 0) {
        throw new SkeinError('UNAVAILABLE', `shard ${id} at ${url} did not take the control records (unreachable, or fewer than a majority of the shards answered); nothing changed`, { retryAfter: 1 });
      }
      await change('add', id, url);
    },
    drain: (id) => change('drain', id),
    remove: (id) => change('remove', id),
  };
}
