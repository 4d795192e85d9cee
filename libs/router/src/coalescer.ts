import { APPEND_BATCH_LIMITS, SkeinError, fromProblem, isSkeinError } from '@skein/protocol';
import type { ShardClient } from './shard-client.ts';
import type { RouterTopology } from './topology.ts';

/** One append as the shard's batch endpoint takes it. */
export interface AppendItem {
  partition: string;
  streamId: string;
  expectedVersion?: unknown;
  events: unknown[];
  idempotencyKey?: string;
}

/** The shard's answer to one append: its wire result and status (201 written, 200 duplicate). */
export interface AppendReply {
  status: number;
  body: Record<string, unknown>;
}

/** Coalesces concurrent appends bound for the same shard into one batch request. */
export interface AppendCoalescer {
  append(item: AppendItem): Promise<AppendReply>;
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
}

interface Waiting {
  item: AppendItem;
  /** `item` as JSON, and its UTF-8 length: what it adds to a batch body. */
  json: string;
  bytes: number;
  queuedAt: number;
  attempts: number;
  resolve(reply: AppendReply): void;
  reject(err: unknown): void;
}

/** A batch body is `{"appends":[` + the appends joined by `,` + `]}`. */
const ENVELOPE_BYTES = '{"appends":[]}'.length;
/** Batch requests under way to one shard at once (1 gave the largest batches and the best throughput measured; 2 was within noise). */
const MAX_IN_FLIGHT = 1;

/**
 * Appends arriving in the same event-loop turn for the same shard travel as one
 * `POST /internal/v1/append`, so the shard's group commit sees one large batch. A batch
 * holds at most APPEND_BATCH_LIMITS (bytes of its body, appends), what every shard
 * accepts: a valid append is never refused for the company it travels in.
 * A 421 re-reads the topology and re-routes the affected appends (at most 3 times).
 */
export function createAppendCoalescer(
  deps: { shards: ShardClient; topology: RouterTopology; observer?: CoalescerObserver; clock?: () => number },
  options: CoalescerOptions,
): AppendCoalescer {
  const { shards, topology, observer } = deps;
  const clock = deps.clock ?? Date.now;
  const pending = new Map<string, Waiting[]>();
  let scheduled = false;

  function route(w: Waiting): void {
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
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }

  function retryLater(list: Waiting[], err: SkeinError): void {
    void topology.refresh().then(
      () => {
        for (const w of list) {
          if (++w.attempts > 3) w.reject(err);
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
   * under way: under load, appends arriving meanwhile gather into the next, larger
   * request (the shard's group commit then sees large batches); when idle, an append
   * leaves at once.
   */
  function flush(): void {
    scheduled = false;
    for (const [shardId, list] of pending) {
      let busy = inFlight.get(shardId) ?? 0;
      while (list.length > 0 && busy < MAX_IN_FLIGHT) {
        const batch = takeBatch(list);
        if (batch.length === 0) continue;
        busy++;
        void send(shardId, batch).finally(() => {
          inFlight.set(shardId, (inFlight.get(shardId) ?? 1) - 1);
          if ((pending.get(shardId)?.length ?? 0) > 0 && !scheduled) {
            scheduled = true;
            setImmediate(flush);
          }
        });
      }
      inFlight.set(shardId, busy);
      if (list.length === 0) pending.delete(shardId);
    }
  }

  /**
   * Takes the next batch off the front of `list`, in order, within APPEND_BATCH_LIMITS;
   * appends that waited past the queue timeout are answered 503 instead.
   */
  function takeBatch(list: Waiting[]): Waiting[] {
    const staleBefore = clock() - options.queueTimeoutMs;
    const batch: Waiting[] = [];
    let bytes = ENVELOPE_BYTES;
    let taken = 0;
    for (; taken < list.length && batch.length < APPEND_BATCH_LIMITS.maxAppends; taken++) {
      const w = list[taken]!;
      if (w.queuedAt < staleBefore) {
        w.reject(new SkeinError('UNAVAILABLE', 'the shard did not take the append in time; nothing was written', { retryAfter: 1 }));
        continue;
      }
      const added = w.bytes + (batch.length > 0 ? 1 : 0);
      if (batch.length > 0 && bytes + added > APPEND_BATCH_LIMITS.maxBytes) break;
      bytes += added;
      batch.push(w);
    }
    list.splice(0, taken);
    return batch;
  }

  async function send(shardId: string, list: Waiting[]): Promise<void> {
    observer?.batch?.(list.length);
    let response;
    try {
      // Sent piece by piece: a joined copy of a 16 MiB batch, and its encoding, would double
      // what the router holds per pending byte (measured in the stalled-shard fault case).
      const json = ['{"appends":['];
      list.forEach((w, i) => (i === 0 ? json.push(w.json) : json.push(',', w.json)));
      json.push(']}');
      response = await shards.call(shardId, { method: 'POST', path: '/append', json, write: true });
    } catch (err) {
      if (isSkeinError(err, 'NOT_OWNER')) return retryLater(list, err);
      for (const w of list) w.reject(err);
      return;
    }
    const results = (response.body as { results?: Record<string, unknown>[] } | null)?.results;
    if (!Array.isArray(results) || results.length !== list.length) {
      const err = new SkeinError('INTERNAL', 'a shard answered a batch append with the wrong number of results');
      for (const w of list) w.reject(err);
      return;
    }
    const misrouted: Waiting[] = [];
    results.forEach((r, i) => {
      const w = list[i]!;
      if (r.ok === true) {
        const { ok: _ok, status, ...body } = r;
        w.resolve({ status: typeof status === 'number' ? status : 201, body });
        return;
      }
      const { ok: _ok, ...problem } = r;
      const err = fromProblem(problem, typeof problem.status === 'number' ? problem.status : 500);
      if (isSkeinError(err, 'NOT_OWNER')) misrouted.push(w);
      else w.reject(err);
    });
    if (misrouted.length > 0) retryLater(misrouted, new SkeinError('NOT_OWNER', 'partition ownership keeps changing', { retryAfter: 1 }));
  }

  return {
    append(item) {
      const json = JSON.stringify(item);
      const bytes = Buffer.byteLength(json);
      // Only an append whose JSON grew past the public body limit on re-encoding (numbers
      // like 1e300 spelled out) can be refused here: SKEIN_ROUTER_MAX_BODY_BYTES leaves room.
      if (bytes + ENVELOPE_BYTES > APPEND_BATCH_LIMITS.maxBytes) {
        return Promise.reject(new SkeinError('PAYLOAD_TOO_LARGE', `the append is ${bytes} bytes once encoded; at most ${APPEND_BATCH_LIMITS.maxBytes - ENVELOPE_BYTES} allowed`, { limit: APPEND_BATCH_LIMITS.maxBytes - ENVELOPE_BYTES }));
      }
      return new Promise<AppendReply>((resolve, reject) => route({ item, json, bytes, queuedAt: clock(), attempts: 0, resolve, reject }));
    },
  };
}
