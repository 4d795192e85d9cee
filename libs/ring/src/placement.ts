import type { Topology } from './topology.ts';

/** One partition of a group to place, with its rendezvous preference over the topology's shards. */
export interface PlacementCandidate {
  p: string;
  prefs: readonly string[];
}

/**
 * Where a group's (a tenant's) unplaced partitions go: the group's partitions per shard
 * stay within ±1 of even. Every shard not `draining` takes floor(N / S) of the N
 * partitions, and the N mod S shards holding fewest partitions of the whole topology
 * (then the lower id) take one more; each unplaced partition goes to the first shard of
 * its preference with room left. Returns partition → shard id for the unplaced ones;
 * null when no shard may take partitions and some are unplaced.
 *
 * The Redis control store runs the same rule atomically in
 * `libs/router/src/scripts/place-partitions-3.lua`.
 */
export function balancedPlacements(topology: Topology, group: readonly PlacementCandidate[]): Record<string, string> | null {
  const placements = topology.placements ?? {};
  const order = topology.shards.filter((s) => s.state !== 'draining').map((s) => s.id);
  const total = new Map(order.map((id) => [id, 0]));
  const mine = new Map(order.map((id) => [id, 0]));
  for (const shard of Object.values(placements)) if (total.has(shard)) total.set(shard, total.get(shard)! + 1);
  const pending: PlacementCandidate[] = [];
  for (const g of group) {
    const placed = placements[g.p];
    if (placed === undefined) pending.push(g);
    else if (mine.has(placed)) mine.set(placed, mine.get(placed)! + 1);
  }
  if (pending.length === 0) return {};
  if (order.length === 0) return null;
  order.sort((a, b) => total.get(a)! - total.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  const quota = new Map(order.map((id, i) => [id, Math.floor(group.length / order.length) + (i < group.length % order.length ? 1 : 0)]));
  const chosen: Record<string, string> = {};
  for (const g of pending) {
    let pick = g.prefs.find((id) => mine.has(id) && mine.get(id)! < quota.get(id)!);
    // Existing placements already exceed some quotas: the shard holding fewest of the group.
    pick ??= order.reduce((best, id) => (mine.get(id)! < mine.get(best)! ? id : best));
    chosen[g.p] = pick;
    mine.set(pick, mine.get(pick)! + 1);
    total.set(pick, total.get(pick)! + 1);
  }
  return chosen;
}
