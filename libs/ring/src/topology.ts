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
  /**
   * Partitions fenced for a move (partition id → move id): their owner takes no write for
   * them until the move flips or rolls back (DESIGN.md, "Moving a partition").
   */
  fenced?: Record<string, string>;
  /** Shard id → its fence generation, raised with each fence of one of its partitions. */
  fences?: Record<string, number>;
  /**
   * Removed shard id → the sequencer counter (decimal) read when it was removed: at or
   * above every position it was ever handed out. Shards tombstone it as a sequencer
   * member with that bound (`@skein/sequencer`, "Removed members"). Its id is retired.
   */
  removed?: Record<string, string>;
}

/** Lua's cjson writes an empty object as an empty array. */
function objectOrEmpty<T>(value: unknown, name: string): Record<string, T> | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value) && value.length === 0) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`topology.${name} must be an object`);
  return value as Record<string, T>;
}

/** Parses and checks a stored topology; throws Error naming what is wrong. */
export function parseTopology(text: string): Topology {
  const t = JSON.parse(text) as Partial<Topology>;
  if (!t || typeof t !== 'object') throw new Error('topology must be a JSON object');
  if (!Number.isSafeInteger(t.epoch) || (t.epoch as number) < 0) throw new Error('topology.epoch must be an integer ≥ 0');
  if (!Array.isArray(t.shards) || t.shards.some((s) => !s || typeof s.id !== 'string' || s.id === '')) {
    throw new Error('topology.shards must be an array of { id, url }');
  }
  t.placements = objectOrEmpty<string>(t.placements, 'placements');
  t.fenced = objectOrEmpty<string>(t.fenced, 'fenced');
  t.fences = objectOrEmpty<number>(t.fences, 'fences');
  t.removed = objectOrEmpty<string>(t.removed, 'removed');
  if (t.removed && Object.values(t.removed).some((v) => typeof v !== 'string' || !/^\d+$/.test(v))) throw new Error('topology.removed must map shard ids to decimal counters');
  for (const k of ['placements', 'fenced', 'fences', 'removed'] as const) if (t[k] === undefined) delete t[k];
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
  /** Whether the partition is fenced for a move: its writes wait for the flip or the rollback. */
  isFenced(partition: string): boolean;
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
    isFenced: (partition) => topology.fenced?.[partition] !== undefined,
  };
}
