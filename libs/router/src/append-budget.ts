/**
 * Admission control of appends by bytes: what the router holds of append bodies it
 * accepted and has not answered yet (being read, waiting in the coalescer, in a request
 * to a shard), in total and per shard. Reserved before the body is read; an append that
 * would pass a bound is refused (503) and its body never buffered.
 */
export interface AppendBudget {
  /**
   * Reserves `bytes` for an append bound for `shardId` (undefined: not known yet, counted
   * in the total only). Returns the release function (idempotent), or null when the
   * reservation would pass the total or the shard's bound.
   */
  reserve(shardId: string | undefined, bytes: number): (() => void) | null;
  /** Bytes reserved now, over all shards. */
  readonly pendingBytes: number;
}

export interface AppendBudgetOptions {
  /** Bound over all shards, bytes. */
  maxBytes: number;
  /** Bound per shard, bytes (at most `maxBytes`). */
  maxBytesPerShard: number;
}

export function createAppendBudget(options: AppendBudgetOptions): AppendBudget {
  let total = 0;
  const perShard = new Map<string, number>();
  return {
    reserve(shardId, bytes) {
      const shardBytes = shardId === undefined ? 0 : (perShard.get(shardId) ?? 0);
      // An idle router admits any one append (config guarantees each bound ≥ the body limit).
      if (total > 0 && total + bytes > options.maxBytes) return null;
      if (shardBytes > 0 && shardBytes + bytes > options.maxBytesPerShard) return null;
      total += bytes;
      if (shardId !== undefined) perShard.set(shardId, shardBytes + bytes);
      let held = true;
      return () => {
        if (!held) return;
        held = false;
        total -= bytes;
        if (shardId === undefined) return;
        const left = (perShard.get(shardId) ?? bytes) - bytes;
        if (left > 0) perShard.set(shardId, left);
        else perShard.delete(shardId);
      };
    },
    get pendingBytes() {
      return total;
    },
  };
}
