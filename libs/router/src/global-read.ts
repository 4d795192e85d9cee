import type { ControlStore, LoggedWireEvent } from '@skein/protocol';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

export type { LoggedWireEvent };

export interface GlobalReadOptions {
  /** The tenant's partitions; undefined reads every shard's whole log. */
  partitions?: readonly string[];
  fromPosition: bigint;
  limit: number;
  category?: string;
  types?: string;
}

/** How long a read waits for shards to reach the position it must include. */
const READ_YOUR_WRITES_WAIT_MS = 1000;

/**
 * Reads in global order over several partitions or shards (DESIGN.md, "Global order"):
 * each shard's log up to the stable watermark (the minimum safe point of the shards
 * involved), merged by position. Nothing at or below the watermark can still commit,
 * so a reader paging with `next` never misses or reorders an event.
 */
export async function readGlobal(
  deps: { shards: Shards; topology: RouterTopology; store: ControlStore },
  options: GlobalReadOptions,
): Promise<{ events: LoggedWireEvent[]; next: bigint; watermark: bigint; involved: string[] }> {
  const { shards, topology, store } = deps;
  const view = await topology.current();
  const involved = options.partitions
    ? [...new Set(options.partitions.map((p) => view.ownerOf(p)).filter((s): s is string => s !== null))]
    : view.topology.shards.map((s) => s.id);
  // Read-your-writes: wait (briefly, bounded) until the watermark covers every position
  // allocated before this read began, so anything acknowledged before it is included.
  const atLeast = await store.readCounter();
  const safePoints = await Promise.all(
    involved.map(async (shardId) => {
      const reading = await shards.get(shardId).safePoint({ atLeast, waitMs: READ_YOUR_WRITES_WAIT_MS });
      return reading.safePoint;
    }),
  );
  const watermark = safePoints.reduce((min, p) => (p < min ? p : min), safePoints[0] ?? 0n);
  const { fromPosition: from, limit } = options;
  if (involved.length === 0 || watermark < from) return { events: [], next: from, watermark, involved };

  const types = options.types?.split(',').filter((t) => t.length > 0);
  const query = { fromPosition: from, toPosition: watermark, limit, ...(options.category ? { category: options.category } : {}), ...(types && types.length > 0 ? { types } : {}) };
  const pages = await Promise.all(
    options.partitions
      ? options.partitions.map((p) => shards.forPartition(p, (shard) => shard.readLog({ ...query, partition: p })))
      : involved.map((s) => shards.get(s).readLog(query)),
  );
  // Each page holds its source's first `limit` events, so the merged first `limit` are among them.
  const merged = pages.flatMap((p) => p.events);
  const keyed = merged.map((e) => ({ e, pos: BigInt(e.position) }));
  keyed.sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0));
  const events = keyed.slice(0, limit).map((k) => k.e);
  const last = keyed[Math.min(limit, keyed.length) - 1];
  return { events, next: last ? last.pos + 1n : from, watermark, involved };
}
