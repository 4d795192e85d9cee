import { SkeinError, type ControlRecord, type ControlStore } from '@skein/protocol';
import { TOPOLOGY_CHANNEL, parseTopology, viewOf, type TopologyView } from '@skein/ring';
import { TOPOLOGY_RECORD_KEY } from './control-keys.ts';
import { STALE_MARKER, type ControlPlane } from './control-plane.ts';

/** The topology's control record (control-keys.ts), from its stored JSON; null for one stored before records existed. */
export function topologyRecordOf(text: string): ControlRecord | null {
  const { version, ...value } = JSON.parse(text) as { version?: unknown } & Record<string, unknown>;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) return null;
  return { key: TOPOLOGY_RECORD_KEY, version, value };
}

/** The router's view of the topology: where partitions live, refreshed on announcements and 421s. */
export interface RouterTopology {
  readonly view: TopologyView | null;
  readonly epoch: number;
  /** Reads the topology from the control store now (single-flight). */
  refresh(): Promise<TopologyView>;
  /** The view, reading it first if none is known; UNAVAILABLE when there is no topology. */
  current(): Promise<TopologyView>;
  /**
   * Records placements for the partitions of one group (a tenant's) that have none
   * (DESIGN.md: placement when a partition first appears), in the control store and then
   * on the shards (`control.record`). The group lands within ±1 of even per shard, the
   * remainder on the shards holding fewest partitions (`ControlStore.placePartitions`).
   */
  place(partitions: readonly string[], control: ControlPlane): Promise<void>;
  /** Adds shards the topology lacks (creating it if absent), in the control store and then on the shards. */
  ensureShards(shards: readonly { id: string; url: string }[], control: ControlPlane): Promise<void>;
  /** Refreshes on every topology announcement. */
  listen(): Promise<void>;
}

export function createRouterTopology(deps: { store: ControlStore; log?: { info(o: object, m?: string): void } }): RouterTopology {
  const { store } = deps;
  let view: TopologyView | null = null;
  let inflight: Promise<TopologyView> | null = null;

  function apply(text: string): TopologyView {
    const next = viewOf(parseTopology(text));
    if (!view || next.topology.epoch >= view.topology.epoch) {
      if (view && next.topology.epoch !== view.topology.epoch) deps.log?.info({ epoch: next.topology.epoch }, 'topology changed');
      view = next;
    }
    return view;
  }

  async function load(): Promise<TopologyView> {
    let text: string | null;
    try {
      text = await store.readTopology();
    } catch (err) {
      if (view) return view;
      throw new SkeinError('UNAVAILABLE', 'the topology cannot be read', { retryAfter: 1 }, { cause: err });
    }
    if (text === null) {
      // The store lost it (the control plane rebuilds it from the shards' records): the last
      // one known still says where every partition lives.
      if (view) return view;
      throw new SkeinError('UNAVAILABLE', 'no topology is stored yet: no shard is known', { retryAfter: 1 });
    }
    return apply(text);
  }

  async function recordTopology(text: string, control: ControlPlane): Promise<void> {
    const record = topologyRecordOf(text);
    if (record) await control.record([record]);
  }

  const topology: RouterTopology = {
    get view() {
      return view;
    },
    get epoch() {
      return view?.topology.epoch ?? 0;
    },
    refresh() {
      inflight ??= load().finally(() => (inflight = null));
      return inflight;
    },
    async current() {
      return view ?? topology.refresh();
    },
    async place(partitions, control) {
      const text = await control.mutate(async (marker) => {
        for (let attempt = 0; attempt < 5; attempt++) {
          const v = await topology.current();
          if (v.ring === null) throw new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 });
          const ring = v.ring;
          // Every partition of the group, placed or not: the script balances the group.
          const group = partitions.map((p) => ({ p, prefs: ring.preference(p, ring.shards.length) }));
          const r = await store.placePartitions(marker, v.topology.epoch, group);
          if (!r.ok && r.reason === 'stale') return STALE_MARKER;
          if (!r.ok && r.reason === 'no-topology') throw new SkeinError('UNAVAILABLE', 'no topology is stored', { retryAfter: 1 });
          if (!r.ok && r.reason === 'all-draining') throw new SkeinError('UNAVAILABLE', 'every shard is draining: none may take partitions', { retryAfter: 1 });
          if (r.ok || r.reason === 'epoch-changed') apply(r.topology);
          if (r.ok) return r.topology;
        }
        throw new SkeinError('UNAVAILABLE', 'the topology kept changing while placing partitions', { retryAfter: 1 });
      });
      // Recorded even when nothing changed here: an earlier attempt may have changed
      // the store and failed to reach the shards. Records are idempotent.
      await recordTopology(text, control);
    },
    async ensureShards(shards, control) {
      const text = await control.mutate(async (marker) => {
        const r = await store.ensureShards(marker, shards, TOPOLOGY_CHANNEL);
        if (!r.ok) return STALE_MARKER;
        apply(r.topology);
        return r.topology;
      });
      await recordTopology(text, control);
    },
    async listen() {
      await store.subscribe(TOPOLOGY_CHANNEL, () => void topology.refresh().catch(() => undefined));
    },
  };
  return topology;
}
