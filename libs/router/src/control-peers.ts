import type { ControlRecord } from '@skein/protocol';
import type { ControlPeers, ShardAddress } from './rebuilder.ts';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

/**
 * The shards as keepers of the control records, over their internal API
 * (`/internal/v1/control-records`) through the one shard client.
 */
export function createShardPeers(deps: { shards: Shards; topology: RouterTopology; seeds: readonly ShardAddress[] }): ControlPeers {
  const { shards, topology, seeds } = deps;
  return {
    async members() {
      return (await topology.current()).topology.shards;
    },
    candidates() {
      const byId = new Map<string, ShardAddress>();
      for (const s of topology.view?.topology.shards ?? []) byId.set(s.id, { id: s.id, url: s.url });
      for (const s of seeds) if (!byId.has(s.id)) byId.set(s.id, s);
      return [...byId.values()];
    },
    async read(shard) {
      return shards.at(shard).controlRecords();
    },
    async write(shard, records: readonly ControlRecord[]) {
      await shards.at(shard).storeControlRecords(records);
    },
  };
}
