import { createRing, type Ring } from './ring.ts';

/** Redis key holding the topology JSON, and the pub/sub channel announcing changes. */
export const TOPOLOGY_KEY = 'skein:topology';
export const TOPOLOGY_CHANNEL = 'skein:topology';

/**
 * The cluster topology as stored under {@link TOPOLOGY_KEY}: the shards, and where each
 * partition lives. The epoch grows whenever the shard set changes.
 */
export interface Topology {
  epoch: number;
  /**
   * The members. `state` is absent for an active shard; `draining` takes no new
   * partitions and has its partitions moved away (API.md, "Membership and partition moves").
   */
  shards: { id: string; url: string; state?: 'draining' }[];
  /** Partition id → shard id, recorded when a partition first appears. Overrides the ring. */
  placements?: Record<string, string>;
}

/** Parses and checks a stored topology; throws Error naming what is wrong. */
export function parseTopology(text: string): Topology {
  const t = JSON.parse(text) as Partial<Topology>;
  if (!t || typeof t !== 'object') throw new Error('topology must be a JSON object');
  if (!Number.isSafeInteger(t.epoch) || (t.epoch as number) < 0) throw new Error('topology.epoch must be an integer ≥ 0');
  if (!Array.isArray(t.shards) || t.shards.some((s) => !s || typeof s.id !== 'string' || s.id === '')) {
    throw new Error('topology.shards must be an array of { id, url }');
  }
  if (t.placements !== undefined && (typeof t.placements !== 'object' || t.placements === null || Array.isArray(t.placements))) {
    // Lua's cjson writes an empty object as an empty array.
    if (!(Array.isArray(t.placements) && t.placements.length === 0)) throw new Error('topology.placements must be an object');
    t.placements = {};
  }
  return t as Topology;
}

/** A topology ready for lookups. */
export interface TopologyView {
  readonly topology: Topology;
  readonly ring: Ring | null;
  /** The shard holding `partition`: its recorded placement, else what the ring says. Null with no shards. */
  ownerOf(partition: string): string | null;
  /** The URL of a shard, or undefined. */
  urlOf(shardId: string): string | undefined;
}

export function viewOf(topology: Topology): TopologyView {
  const ring = topology.shards.length > 0 ? createRing(topology.shards.map((s) => s.id)) : null;
  const placements = topology.placements ?? {};
  const urls = new Map(topology.shards.map((s) => [s.id, s.url]));
  return {
    topology,
    ring,
    ownerOf: (partition) => placements[partition] ?? ring?.shardFor(partition) ?? null,
    urlOf: (id) => urls.get(id),
  };
}
