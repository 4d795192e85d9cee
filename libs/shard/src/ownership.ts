import { SkeinError } from '@skein/protocol';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY, createRing, parseTopology, type Ring, type Topology } from '@skein/ring';

export { TOPOLOGY_CHANNEL, TOPOLOGY_KEY };
export type { Topology };

/** The Redis commands ownership needs; an ioredis client satisfies it. */
export interface TopologySource {
  get(key: string): Promise<string | null>;
}

/** A Redis connection in subscriber mode; an ioredis client satisfies it. */
export interface TopologySubscriber {
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
}

export interface OwnershipLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface Ownership {
  /** The topology epoch this shard knows (0 when no topology is stored). */
  readonly epoch: number;
  /** True once the topology was read (or found absent) at least once; always true without a source. */
  readonly loaded: boolean;
  /**
   * Null when this shard may serve `partition` for a caller at `callerEpoch`;
   * otherwise the NOT_OWNER error (421) carrying the current `epoch`, or UNAVAILABLE
   * before the topology was first read. A caller with
   * no epoch (`undefined`) skips the epoch check, not the ownership check.
   */
  check(partition: string | undefined, callerEpoch: number | undefined): SkeinError | null;
  /**
   * This shard's fence generation as of the topology known (`topology.fences`): raised
   * with each fence of one of its partitions. Writes admitted under an older one are
   * refused positions by the sequencer once the fence is in Redis (write-gate.ts).
   */
  readonly fenceGeneration: number;
  /** Whether the partition is fenced for a move in the topology known: no write is taken for it. */
  isFenced(partition: string): boolean;
  /** The partitions placed on this shard in the topology known, sorted (maintenance sweeps them). */
  owned(): string[];
  /**
   * Whether a partition is this shard's in the topology known now (the view is captured:
   * a topology applied later does not change the answer); undefined without a topology,
   * where every partition is. One map lookup per call.
   */
  ownedFilter(): ((partition: string) => boolean) | undefined;
  /** Reads the topology from Redis now (single-flight). Keeps the last one on failure. */
  refresh(): Promise<void>;
  /** Applies a topology (from Redis, or a test); an older epoch than the known one is ignored. */
  apply(topology: Topology | null): void;
  /** Subscribes to topology announcements; each one triggers a refresh. */
  listen(subscriber: TopologySubscriber): Promise<void>;
}

interface View {
  epoch: number;
  ring: Ring | null;
  placements: Record<string, string>;
  fenced: Record<string, string>;
  fenceGeneration: number;
}

/**
 * Which partitions this shard owns, from the topology in Redis (`skein:topology`):
 * the ring over the topology's shard ids, with `placements` overriding it. With no
 * topology stored, the shard accepts every partition (single-shard / dev mode).
 */
export function createOwnership(deps: {
  shardId: string;
  source?: TopologySource;
  logger?: OwnershipLogger;
  /**
   * Called with `topology.removed` (shard id → the counter read at its removal) each time
   * a topology that lists removed shards is applied: the shard tombstones them as
   * sequencer members (`@skein/sequencer`, "Removed members"; repeats are no-ops).
   */
  onRemoved?: (removed: Record<string, string>) => void;
}): Ownership {
  const { shardId, source, logger, onRemoved } = deps;
  let view: View = { epoch: 0, ring: null, placements: {}, fenced: {}, fenceGeneration: 0 };
  let inflight: Promise<void> | null = null;
  // With a source, nothing is served until the topology (or its absence) was read once:
  // accepting every partition while Redis is down at start could write another shard's data.
  let loaded = source === undefined;

  function apply(topology: Topology | null): void {
    if (topology === null) {
      // A topology that disappeared (wiped Redis) keeps the last one known: refusing or
      // accepting everything on a transient loss would both be wrong.
      return;
    }
    if (topology.epoch < view.epoch) return;
    const ids = topology.shards.map((s) => s.id);
    const ring = ids.length > 0 ? createRing(ids) : null;
    const changed = topology.epoch !== view.epoch;
    view = {
      epoch: topology.epoch,
      ring,
      placements: { ...(topology.placements ?? {}) },
      fenced: { ...(topology.fenced ?? {}) },
      // Never lowered: a generation seen was in Redis.
      fenceGeneration: Math.max(view.fenceGeneration, topology.fences?.[shardId] ?? 0),
    };
    if (changed) logger?.info({ epoch: topology.epoch, shards: ids }, 'topology applied');
    if (onRemoved && topology.removed && Object.keys(topology.removed).length > 0) {
      try {
        onRemoved(topology.removed);
      } catch (err) {
        // The next apply (announcement or periodic refresh) tries again.
        logger?.warn({ err }, 'removed shards not tombstoned');
      }
    }
  }

  async function load(): Promise<void> {
    if (!source) return;
    try {
      const text = await source.get(TOPOLOGY_KEY);
      apply(text === null ? null : parseTopology(text));
      loaded = true;
    } catch (err) {
      logger?.warn({ err }, 'topology could not be read; keeping the last one');
    }
  }

  return {
    get epoch() {
      return view.epoch;
    },
    get loaded() {
      return loaded;
    },
    get fenceGeneration() {
      return view.fenceGeneration;
    },
    isFenced(partition) {
      return view.fenced[partition] !== undefined;
    },
    owned() {
      const { placements } = view;
      return Object.keys(placements).filter((p) => placements[p] === shardId).sort();
    },
    ownedFilter() {
      const { ring, placements } = view;
      if (ring === null) return undefined;
      return (partition) => placements[partition] === shardId;
    },
    check(partition, callerEpoch) {
      const v = view;
      if (!loaded) return new SkeinError('UNAVAILABLE', 'the shard has not read the topology yet', { retryAfter: 1 });
      if (callerEpoch !== undefined && callerEpoch < v.epoch) {
        return new SkeinError('NOT_OWNER', `topology epoch ${callerEpoch} is stale; the shard is at ${v.epoch}`, { epoch: v.epoch });
      }
      if (partition === undefined || v.ring === null) return null;
      // Only a recorded placement makes a partition this shard's. Placements are balanced
      // and no longer follow the ring, and a new one takes no new epoch: a shard that
      // fell back to the ring for a partition it has not seen placed could accept it while
      // its real owner accepts it too (measured: two writers both won version n).
      const owner = v.placements[partition];
      if (owner !== shardId) {
        return new SkeinError('NOT_OWNER', `partition ${partition} is not owned by shard ${shardId} at epoch ${v.epoch}`, { epoch: v.epoch });
      }
      return null;
    },
    refresh() {
      inflight ??= load().finally(() => {
        inflight = null;
      });
      return inflight;
    },
    apply,
    async listen(subscriber) {
      subscriber.on('message', (channel) => {
        if (channel === TOPOLOGY_CHANNEL) void this.refresh();
      });
      await subscriber.subscribe(TOPOLOGY_CHANNEL);
    },
  };
}
