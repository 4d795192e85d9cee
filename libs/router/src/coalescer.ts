import { APPEND_BATCH_LIMITS, SkeinError, isSkeinError, type AppendSuccess, type ShardAppend } from '@skein/protocol';
import type { Shards } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

/** Coalesces concurrent appends bound for the same shard into one batch. */
export interface AppendCoalescer {
  /** Resolves once the append is durable (or was an idempotent repeat); rejects with its registry error. */
  append(item: ShardAppend): Promise<AppendSuccess>;
}

export interface CoalescerObserver {
  /** One batch request sent to a shard with this many appends. */
  batch?(appends: number): void;
}

export interface CoalescerOptions {
  /**
   * An append still waiting for its shard after this long is answered 503 UNAVAILABLE
   * (nothing sent, nothing written) instead of being sent: with one batch in flight per
   * shard, a stalled shard would otherwise hold the queue behind it for a shard timeout
   * per batch. Use the shard request timeout.
   */
  queueTimeoutMs: number;
  /**
   * For a shard that takes one batch at a time (over HTTP): once a batch of two or more
   * appends is answered, how long the next one may wait for that many appends to be
   * queued again (their callers coming back) before it is sent, ms. Default 2; 0 sends at
   * once. Shards in this process gather in their engine instead (the engine's
   * `batchWaitMs`, SKEIN_SHARD_BATCH_WAIT_MS), which sees their callers come back.
   */
  batchWaitMs?: number;
}

interface Waiting {
  item: ShardAppend;
  queuedAt: number;
  attempts: number;
  resolve(success: AppendSuccess): void;
  reject(err: unknown): void;
}
/**
 * Batch requests under way to one shard at once, unless the shard says otherwise
 * (ShardApi.appendsInFlight): over HTTP 1 gave the largest batches and the best
 * throughput measured; 2 was within noise.
 */
const MAX_IN_FLIGHT = 1;
/**
 * Re-routes of one append after 421s: a move's fence and flip each bump the epoch once and
 * a fence may refuse an append already sent, so one move can cost an append three.
 */
const MAX_REROUTES = 8;
/** How often appends waiting for a fenced partition look at the topology (the announcement usually comes first). */
const FENCE_POLL_MS = 10;

/**
 * Appends arriving in the same event-loop turn for the same shard travel as one batch
 * (`ShardApi.append`), so the shard's group commit sees one large batch. A batch holds at
 * most APPEND_BATCH_LIMITS.maxAppends appends (a shard reached over HTTP splits it further
 * by bytes). A 421 re-reads the topology and re-routes the affected appends (at most MAX_REROUTES times);
 * an append for a partition fenced by a move waits for the flip (or the rollback), then goes
 * to the owner (the append's idempotency key makes the retry on the new owner safe).
 */
export function createAppendCoalescer(
  deps: { shards: Shards; topology: RouterTopology; observer?: CoalescerObserver; clock?: () => number },
  options: CoalescerOptions,
): AppendCoalescer {
  const { shards, topology, observer } = deps;
  const clock = deps.clock ?? Date.now;
  const pending = new Map<string, Waiting[]>();
  let scheduled = false;
  const batchWaitMs = options.batchWaitMs ?? 2;
  /**
   * Gathering per shard (batchWaitMs): the next batch waits until `target` appends are
   * queued or until `until` (performance.now()). Without it, steady clients of a shard
   * taking one batch at a time split into two halves that alternate (the half answered
   * comes back while the other half's batch is under way), and each batch costs the
   * shard its fixed cost (a round trip, an allocation, a commit).
   */
  const gathering = new Map<string, { target: number; until: number; timer: NodeJS.Timeout | null }>();

  function scheduleFlush(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  }

  /** True while the next batch for `shardId` should wait for more appends (a timer flushes it later). */
  function stillGathering(shardId: string, queued: number): boolean {
    const g = gathering.get(shardId);
    if (!g) return false;
    const left = g.until - performance.now();
    if (queued < g.target && left > 0) {
      g.timer ??= setTimeout(() => {
        g.timer = null;
        scheduleFlush();
      }, Math.ceil(left));
      return true;
    }
    if (g.timer) clearTimeout(g.timer);
    gathering.delete(shardId);
    return false;
  }

  /** Appends of fenced partitions (a move's fence-to-flip window), waiting for the flip or the rollback. */
  const fenced = new Set<Waiting>();
  let fencePoll: NodeJS.Timeout | null = null;

  function waitForFlip(w: Waiting): void {
    fenced.add(w);
    fencePoll ??= setInterval(() => {
      void topology.refresh().then(
        () => {
          const staleBefore = clock() - options.queueTimeoutMs;
          for (const waiting of fenced) {
            if (topology.view?.isFenced(waiting.item.partition) && waiting.queuedAt >= staleBefore) continue;
            fenced.delete(waiting);
            if (topology.view?.isFenced(waiting.item.partition)) waiting.reject(new SkeinError('UNAVAILABLE', 'the partition is moving and its fence outlasted the wait; nothing was written', { retryAfter: 1 }));
            else route(waiting);
          }
          if (fenced.size === 0 && fencePoll) {
            clearInterval(fencePoll);
            fencePoll = null;
          }
        },
        () => undefined,
      );
    }, FENCE_POLL_MS);
  }

  function route(w: Waiting): void {
    if (topology.view?.isFenced(w.item.partition)) return waitForFlip(w);
    const owner = topology.view?.ownerOf(w.item.partition);
    if (!owner) {
      // No view yet: read it, then route.
      topology.current().then(
        () => (topology.view?.ownerOf(w.item.partition) ? route(w) : w.reject(new SkeinError('UNAVAILABLE', 'the topology has no shards', { retryAfter: 1 }))),
        (err: unknown) => w.reject(err),
      );
      return;
    }
    let list = pending.get(owner);
    if (!list) pending.set(owner, (list = []));
    list.push(w);
    scheduleFlush();
  }

  function retryLater(list: Waiting[], err: SkeinError): void {
    void topology.refresh().then(
      () => {
        for (const w of list) {
          if (++w.attempts > MAX_REROUTES) w.reject(err);
          else {
            w.queuedAt = clock();
            route(w);
          }
        }
      },
      (e: unknown) => list.forEach((w) => w.reject(e)),
    );
  }

  /** Batch requests in flight per shard. */
  const inFlight = new Map<string, number>();

  /**
   * Sends what waits for each shard, keeping at most MAX_IN_FLIGHT requests per shard
   * (or the shard's appendsInFlight) under way: under load, appends arriving meanwhile gather into the next, larger
   * request (the shard's group commit then sees large batches); when idle, an append
   * leaves at once.
   */
  function flush(): void {
    scheduled = false;
    for (const [shardId, list] of pending) {
      let busy = inFlight.get(shardId) ?? 0;
      const most = shards.get(shardId).appendsInFlight ?? MAX_IN_FLIGHT;
      if (busy === 0 && stillGathering(shardId, list.length)) continue;
      while (list.length > 0 && busy < most) {
        const batch = takeBatch(list);
        if (batch.length === 0) continue;
        busy++;
        void send(shardId, batch).finally(() => {
          inFlight.set(shardId, (inFlight.get(shardId) ?? 1) - 1);
          if (most === 1 && batchWaitMs > 0 && batch.length >= 2) {
            const before = gathering.get(shardId);
            if (before?.timer) clearTimeout(before.timer);
            gathering.set(shardId, { target: (pending.get(shardId)?.length ?? 0) + batch.length, until: performance.now() + batchWaitMs, timer: null });
          }
          if ((pending.get(shardId)?.length ?? 0) > 0) scheduleFlush();
        });
      }
      inFlight.set(shardId, busy);
      if (list.length === 0) pending.delete(shardId);
    }
  }

  /**
   * Takes the next batch off the front of `list`, in order, at most
   * APPEND_BATCH_LIMITS.maxAppends; appends that waited past the queue timeout are
   * answered 503 instead.
   */
  function takeBatch(list: Waiting[]): Waiting[] {
    const staleBefore = clock() - options.queueTimeoutMs;
    const batch: Waiting[] = [];
    let taken = 0;
    for (; taken < list.length && batch.length < APPEND_BATCH_LIMITS.maxAppends; taken++) {
      const w = list[taken]!;
      if (w.queuedAt < staleBefore) w.reject(new SkeinError('UNAVAILABLE', 'the shard did not take the append in time; nothing was written', { retryAfter: 1 }));
      else batch.push(w);
    }
    list.splice(0, taken);
    return batch;
  }

  async function send(shardId: string, list: Waiting[]): Promise<void> {
    observer?.batch?.(list.length);
    let results;
    try {
      results = await shards.get(shardId).append(list.map((w) => w.item));
    } catch (err) {
      if (isSkeinError(err, 'NOT_OWNER')) return retryLater(list, err);
      for (const w of list) w.reject(err);
      return;
    }
    const misrouted: Waiting[] = [];
    results.forEach((r, i) => {
      const w = list[i]!;
      if (r.ok) w.resolve(r.success);
      else if (isSkeinError(r.error, 'NOT_OWNER')) misrouted.push(w);
      else w.reject(r.error);
    });
    if (misrouted.length > 0) retryLater(misrouted, new SkeinError('NOT_OWNER', 'partition ownership keeps changing', { retryAfter: 1 }));
  }

  return {
    append(item) {
      return new Promise<AppendSuccess>((resolve, reject) => route({ item, queuedAt: clock(), attempts: 0, resolve, reject }));
    },
  };
}
