// The shard as a ShardApi in the router's own process: calls go to the engine, the
// ownership check and the safe point directly, with no HTTP and no JSON.
import { outcomeError, type EventStore } from '@skein/engine';
import { asSkeinError } from '@skein/http';
import {
  SkeinError,
  streamPageJson,
  toWireEvent,
  type ControlRecord,
  type ShardApi,
  type ShardAppend,
  type ShardAppendResult,
  type StreamPage,
} from '@skein/protocol';
import type { ControlRecordStore } from './control-records.ts';
import { toWireLoggedEvent } from './http.ts';
import { checkOwner, mayBeNewPlacement, ownedLogFilter } from './owner-check.ts';
import type { ShardMetrics } from './metrics.ts';
import type { Ownership } from './ownership.ts';
import type { SafePointTracker } from './safe-point.ts';

/** What a shard's appends and reads are served from, over HTTP or in-process. */
export interface ShardCore {
  shardId: string;
  engine: EventStore;
  ownership: Ownership;
  safePoint: SafePointTracker;
  metrics: ShardMetrics;
  controlRecords?: ControlRecordStore;
  /** The longest a safe-point wait may take, ms. */
  safePointMaxWaitMs: number;
}

/**
 * Appends a batch: every append enters the engine's group-commit batcher in this tick, so
 * they share batches. A stale caller epoch refuses the whole batch (throws NOT_OWNER); a
 * partition this shard does not own refuses that entry only. `bytes`: the request's size
 * where it arrived over HTTP, counted in skein_shard_appended_bytes_total. `batched`: the
 * caller sends its next batch only once this one is answered (a router over HTTP), so the
 * engine does not wait for these appends to come back (ParsedAppend.batched).
 */
export async function appendBatch(core: ShardCore, batch: readonly ShardAppend[], epoch: number | undefined, bytes = 0, batched = false): Promise<ShardAppendResult[]> {
  const { ownership, metrics } = core;
  await checkOwner(ownership, undefined, epoch);
  for (const a of batch) {
    const err = ownership.check(a.partition, epoch);
    if (err !== null && mayBeNewPlacement(ownership, err, epoch)) {
      await ownership.refresh();
      break;
    }
  }
  // Module-level steps and one tally per batch rather than closures per batch (a batch
  // is 1-4 appends under load; the closures showed in the main thread's profile).
  const tally: BatchTally = { started: performance.now(), totalEvents: 0, writtenEvents: 0 };
  const pending = new Array<Promise<ShardAppendResult>>(batch.length);
  for (let i = 0; i < batch.length; i++) pending[i] = appendOne(core, batch[i]!, epoch, tally, batched);
  const results = await Promise.all(pending);
  if (tally.writtenEvents > 0) {
    metrics.eventsAppended.inc(tally.writtenEvents);
    if (bytes > 0) metrics.bytesAppended.inc(Math.round((bytes * tally.writtenEvents) / Math.max(1, tally.totalEvents)));
  }
  return results;
}

interface BatchTally {
  /** When the batch entered appendBatch (performance.now()). */
  started: number;
  /** Events of the appends this shard owns. */
  totalEvents: number;
  /** Events written (duplicates not counted). */
  writtenEvents: number;
}

/** One append of a batch: refused if this shard does not own its partition at `epoch`, else the engine's outcome. */
async function appendOne(core: ShardCore, a: ShardAppend, epoch: number | undefined, tally: BatchTally, batched: boolean): Promise<ShardAppendResult> {
  const { engine, ownership, metrics } = core;
  const notOwner = ownership.check(a.partition, epoch);
  if (notOwner) {
    metrics.appendSeconds.observe({ result: 'rejected' }, (performance.now() - tally.started) / 1000);
    return { ok: false, error: notOwner };
  }
  tally.totalEvents += a.events.length;
  let result: 'written' | 'duplicate' | 'rejected' | 'failed';
  let answer: ShardAppendResult;
  try {
    // Measured at the edge of this process (the router's validation): not again.
    const outcome =
      a.sizes !== undefined && a.sizes.length === a.events.length
        ? await engine.appendParsed(a.partition, a.streamId, a.idempotencyKey === undefined ? { expectedVersion: a.expectedVersion, events: a.events, sizes: a.sizes, batched } : { expectedVersion: a.expectedVersion, events: a.events, idempotencyKey: a.idempotencyKey, sizes: a.sizes, batched })
        : await engine.append(a.partition, a.streamId, a.idempotencyKey === undefined ? { expectedVersion: a.expectedVersion, events: a.events } : { expectedVersion: a.expectedVersion, events: a.events, idempotencyKey: a.idempotencyKey });
    if (!outcome.ok) {
      result = 'rejected';
      answer = { ok: false, error: outcomeError(outcome) };
    } else {
      result = outcome.duplicate ? 'duplicate' : 'written';
      if (!outcome.duplicate) tally.writtenEvents += outcome.lastVersion - outcome.firstVersion + 1;
      answer = { ok: true, success: outcome };
    }
  } catch (err) {
    const error = asSkeinError(err);
    result = error.status >= 500 ? 'failed' : 'rejected';
    answer = { ok: false, error };
  }
  metrics.appendSeconds.observe({ result }, (performance.now() - tally.started) / 1000);
  return answer;
}

/**
 * Append batches a router in the same process may have under way at once: they join the
 * engine's queue, whose batcher decides the next batch while one commits.
 */
const LOCAL_APPENDS_IN_FLIGHT = 4;

/** This shard as a ShardApi for a router in the same process, routing at `callerEpoch()`. */
export function createLocalShardApi(core: ShardCore, callerEpoch: () => number): ShardApi {
  const { engine, ownership, safePoint } = core;
  const owned = (partition: string | undefined) => checkOwner(ownership, partition, callerEpoch());

  async function readStream(partition: string, streamId: string, query: { from?: number; direction?: 'forward' | 'backward'; limit?: number }): Promise<StreamPage> {
    await owned(partition);
    const outcome = engine.readStream(partition, streamId, query);
    if (!outcome.ok) throw outcomeError(outcome);
    return { events: outcome.events.map((e) => toWireEvent(e)), version: outcome.version, next: outcome.next };
  }

  function controlRecords(): ControlRecordStore {
    if (!core.controlRecords) throw new SkeinError('NOT_FOUND', 'this shard keeps no control records');
    return core.controlRecords;
  }

  return {
    id: core.shardId,
    appendsInFlight: LOCAL_APPENDS_IN_FLIGHT,
    append: (batch) => appendBatch(core, batch, callerEpoch()),
    readStream,
    async readStreamJson(partition, streamId, query) {
      await owned(partition);
      const outcome = engine.readStream(partition, streamId, query);
      if (!outcome.ok) throw outcomeError(outcome);
      return { json: streamPageJson(outcome.events, outcome.version, outcome.next), events: outcome.events.length };
    },
    async streamState(partition, streamId) {
      await owned(partition);
      return engine.streamState(partition, streamId);
    },
    async deleteStream(partition, streamId, options) {
      await owned(partition);
      const outcome = await engine.deleteStream(partition, streamId, options);
      if (!outcome.ok) throw outcomeError(outcome);
    },
    async getMetadata(partition, streamId) {
      await owned(partition);
      return engine.getMetadata(partition, streamId) ?? {};
    },
    async setMetadata(partition, streamId, metadata) {
      await owned(partition);
      const outcome = await engine.setMetadata(partition, streamId, metadata);
      if (!outcome.ok) throw outcomeError(outcome);
    },
    async putSnapshot(partition, streamId, version, data) {
      await owned(partition);
      const outcome = await engine.putSnapshot(partition, streamId, version, data);
      if (!outcome.ok) throw outcomeError(outcome);
    },
    async latestSnapshot(partition, streamId) {
      await owned(partition);
      const snapshot = engine.latestSnapshot(partition, streamId);
      if (!snapshot) throw new SkeinError('SNAPSHOT_NOT_FOUND', 'the stream has no snapshot');
      return snapshot;
    },
    async readLog(query) {
      const options = { fromPosition: query.fromPosition, toPosition: query.toPosition, limit: query.limit, category: query.category, types: query.types, maxBytes: query.maxBytes };
      let page;
      if (query.partition === undefined) {
        // Only the partitions this shard owns, at exactly the caller's epoch (owner-check.ts).
        const includePartition = await ownedLogFilter(ownership, callerEpoch());
        page = engine.readShardLog({ ...options, includePartition });
      } else {
        await owned(query.partition);
        page = engine.readPartitionLog(query.partition, options);
      }
      return { events: page.events.map(toWireLoggedEvent), next: page.next, ...(page.truncated ? { truncated: true } : {}) };
    },
    async safePoint(wait) {
      await owned(undefined);
      const value = wait ? await safePoint.waitFor(wait.atLeast, Math.min(wait.waitMs, core.safePointMaxWaitMs)) : safePoint.current();
      return { safePoint: value, highestCommitted: engine.writerState().highestCommitted };
    },
    watchSafePoint: (listener) => safePoint.onAdvance(listener),
    async info() {
      return { shard: core.shardId, epoch: ownership.epoch, safePoint: safePoint.current(), highestCommitted: engine.writerState().highestCommitted };
    },
    async controlRecords() {
      return controlRecords().all();
    },
    async storeControlRecords(records: readonly ControlRecord[]) {
      return controlRecords().apply([...records]);
    },
  };
}
