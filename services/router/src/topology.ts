import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { SkeinError } from '@skein/protocol';
import { TOPOLOGY_CHANNEL, TOPOLOGY_KEY, parseTopology, viewOf, type TopologyView } from '@skein/ring';

const script = (name: string) => readFileSync(new URL(`./scripts/${name}`, import.meta.url), 'utf8');

type ScriptedRedis = Redis & {
  skeinPlacePartitions(key: string, epoch: string, placements: string): Promise<[number, string?]>;
  skeinEnsureShards(key: string, shards: string, channel: string): Promise<string>;
};

/** The router's view of the topology: where partitions live, refreshed on announcements and 421s. */
export interface RouterTopology {
  readonly view: TopologyView | null;
  readonly epoch: number;
  /** Reads the topology from Redis now (single-flight). */
  refresh(): Promise<TopologyView>;
  /** The view, reading it first if none is known; UNAVAILABLE when there is no topology. */
  current(): Promise<TopologyView>;
  /** Records placements for partitions that have none (DESIGN.md: placement when a partition first appears). */
  place(partitions: readonly string[]): Promise<void>;
  /** Adds shards the topology lacks (creating it if absent). */
  ensureShards(shards: readonly { id: string; url: string }[]): Promise<void>;
  listen(subscriber: Redis): Promise<void>;
}

export function createRouterTopology(deps: { redis: Redis; log?: { info(o: object, m?: string): void } }): RouterTopology {
  const redis = deps.redis as ScriptedRedis;
  redis.defineCommand('skeinPlacePartitions', { numberOfKeys: 1, lua: script('place-partitions-1.lua') });
  redis.defineCommand('skeinEnsureShards', { numberOfKeys: 1, lua: script('ensure-shards-1.lua') });
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
      if (view) return view;
      throw new SkeinError('UNAVAILABLE', 'no topology is stored yet: no shard is known', { retryAfter: 1 });
    }
    return apply(text);
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
    async place(partitions) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const v = await topology.current();
        const missing = partitions.filter((p) => v.topology.placements?.[p] === undefined);
        if (missing.length === 0) return;
        const assignments: Record<string, string> = {};
        for (const p of missing) {
          const owner = v.ownerOf(p);
          if (owner === null) throw new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 });
          assignments[p] = owner;
        }
        const [code, text] = await redis.skeinPlacePartitions(TOPOLOGY_KEY, String(v.topology.epoch), JSON.stringify(assignments));
        if (code === -2) throw new SkeinError('UNAVAILABLE', 'no topology is stored', { retryAfter: 1 });
        apply(text!);
        if (code === 0) return;
      }
      throw new SkeinError('UNAVAILABLE', 'the topology kept changing while placing partitions', { retryAfter: 1 });
    },
    async ensureShards(shards) {
      apply(await redis.skeinEnsureShards(TOPOLOGY_KEY, JSON.stringify(shards), TOPOLOGY_CHANNEL));
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
