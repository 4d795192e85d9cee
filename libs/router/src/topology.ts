import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { SkeinError, type ControlRecord } from '@skein/protocol';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY, parseTopology, viewOf, type TopologyView } from '@skein/ring';
import { CONTROL, TOPOLOGY_RECORD_KEY } from './control-keys.ts';
import { STALE_MARKER, type ControlPlane } from './control-plane.ts';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

type ScriptedRedis = Redis & {
  skeinPlacePartitions(key: string, marker: string, version: string, knownMarker: string, epoch: string, placements: string): Promise<[number, string?]>;
  skeinEnsureShards(key: string, marker: string, version: string, knownMarker: string, shards: string, channel: string): Promise<[number, string?]>;
};

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
  /** Reads the topology from Redis now (single-flight). */
  refresh(): Promise<TopologyView>;
  /** The view, reading it first if none is known; UNAVAILABLE when there is no topology. */
  current(): Promise<TopologyView>;
  /**
   * Records placements for partitions that have none (DESIGN.md: placement when a
   * partition first appears), in Redis and then on the shards (`control.record`).
   */
  place(partitions: readonly string[], control: ControlPlane): Promise<void>;
  /** Adds shards the topology lacks (creating it if absent), in Redis and then on the shards. */
  ensureShards(shards: readonly { id: string; url: string }[], control: ControlPlane): Promise<void>;
  listen(subscriber: Redis): Promise<void>;
}

export function createRouterTopology(deps: { redis: Redis; log?: { info(o: object, m?: string): void } }): RouterTopology {
  const redis = deps.redis as ScriptedRedis;
  redis.defineCommand('skeinPlacePartitions', { numberOfKeys: 3, lua: script('place-partitions-3.lua') });
  redis.defineCommand('skeinEnsureShards', { numberOfKeys: 3, lua: script('ensure-shards-3.lua') });
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
      text = await redis.get(TOPOLOGY_KEY);
    } catch (err) {
      if (view) return view;
      throw new SkeinError('UNAVAILABLE', 'the topology cannot be read', { retryAfter: 1 }, { cause: err });
    }
    if (text === null) {
      // Redis lost it (the control plane rebuilds it from the shards' records): the last
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
          const assignments: Record<string, string> = {};
          for (const p of partitions.filter((p) => v.topology.placements?.[p] === undefined)) {
            const owner = v.ownerOf(p);
            if (owner === null) throw new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 });
            assignments[p] = owner;
          }
          const [code, stored] = await redis.skeinPlacePartitions(TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, marker, String(v.topology.epoch), JSON.stringify(assignments));
          if (code === -1) return STALE_MARKER;
          if (code === -2) throw new SkeinError('UNAVAILABLE', 'no topology is stored', { retryAfter: 1 });
          apply(stored!);
          if (code === 0 || code === 1) return stored!;
        }
        throw new SkeinError('UNAVAILABLE', 'the topology kept changing while placing partitions', { retryAfter: 1 });
      });
      // Recorded even when nothing changed here: an earlier attempt may have changed
      // Redis and failed to reach the shards. Records are idempotent.
      await recordTopology(text, control);
    },
    async ensureShards(shards, control) {
      const text = await control.mutate(async (marker) => {
        const [code, stored] = await redis.skeinEnsureShards(TOPOLOGY_KEY, CONTROL.marker, CONTROL.version, marker, JSON.stringify(shards), TOPOLOGY_CHANNEL);
        if (code === -1) return STALE_MARKER;
        apply(stored!);
        return stored!;
      });
      await recordTopology(text, control);
    },
    async listen(subscriber) {
      subscriber.on('message', (channel: string) => {
        if (channel === TOPOLOGY_CHANNEL) void topology.refresh().catch(() => undefined);
      });
      await subscriber.subscribe(TOPOLOGY_CHANNEL);
    },
  };
  return topology;
}
