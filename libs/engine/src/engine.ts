import { createHash } from 'node:crypto';
import {
  SkeinError,
  parseDeleteMode,
  parseExpectedVersion,
  validateIdempotencyKey,
  validateJsonValue,
  validatePartition,
  validateProposedEvents,
  validateStreamId,
  validateStreamMetadata,
  validationError,
  type AppendSuccess,
  type ExpectedVersion,
  type ProposedEvent,
  type Sequencer,
} from '@skein/protocol';
import { createBatcher } from './batcher.ts';
import { configOf } from './config.ts';
import { createEmbeddedSequencer } from './embedded-sequencer.ts';
import { attachPartitionTransfer } from './partition-transfer.ts';
import { attachMaintenance } from './maintenance.ts';
import { latestSnapshot, readLog, readStream } from './reads.ts';
import { Deleted } from './records.ts';
import { createStoreAccess, streamRef } from './store-access.ts';
import type { AppendOutcome, AppendRequest, DeleteOutcome, EngineOptions, EventStore, WriteOutcome } from './types.ts';

export { defaultEngineOptions } from './config.ts';

function fingerprintOf(streamId: string, expected: ExpectedVersion, events: ProposedEvent[]): string {
  return createHash('sha256').update(JSON.stringify([streamId, expected, events])).digest('base64');
}

/**
 * Opens (or creates) the embedded event store at `options.path`.
 *
 * Durability: every write is answered only after the transaction holding it is synced
 * to disk: batches commit with a synchronous LMDB transaction, which returns after the
 * fdatasync of its pages and the synchronous write of its meta page. Nothing is
 * answered, and no commit listener hears of a write, before that.
 *
 * The parts, each in its own file: store-access.ts (buckets, head cache, committed
 * lookups), decide.ts (each write's decision over the batch state), batcher.ts (the
 * group-commit loop: queue, decide, allocate, maintenance writes), commit.ts (a batch's
 * writes, its transaction, its answers), faults.ts (the storage fault state), reads.ts
 * (stream and log reads). This file validates the public entries and composes them.
 */
export function createEngine(options: EngineOptions): EventStore {
  const cfg = configOf(options);
  const access = createStoreAccess(cfg);
  const { buckets, heads, clock } = access;
  const ownSequencer = options.sequencer === undefined;
  const sequencer: Sequencer = options.sequencer ?? createEmbeddedSequencer(buckets.catalog);
  const limits = { maxEventBytes: cfg.maxEventBytes, maxEventsPerAppend: cfg.maxEventsPerAppend };
  const batcher = createBatcher(access, sequencer);
  const { enqueue } = batcher;
  let closed = false;

  // ---- the public surface ----

  const store: EventStore = {
    appendParsed(partition, streamId, append) {
      const { events, sizes, expectedVersion: expected, idempotencyKey } = append;
      const batched = append.batched === true;
      if (events.length > limits.maxEventsPerAppend) return Promise.reject(validationError('events', `at most ${limits.maxEventsPerAppend} events per append`));
      for (let i = 0; i < sizes.length; i++) {
        if (sizes[i]! > limits.maxEventBytes) {
          return Promise.reject(new SkeinError('PAYLOAD_TOO_LARGE', `events[${i}] is ${sizes[i]} bytes; at most ${limits.maxEventBytes} allowed`, { field: `events[${i}]`, limit: limits.maxEventBytes }));
        }
      }
      const fingerprint = idempotencyKey === undefined ? undefined : fingerprintOf(streamId, expected, events);
      return enqueue<AppendOutcome>((pending) => ({ kind: 'append', partition, streamId, expected, events, sizes: sizes as number[], idempotencyKey, fingerprint, batched, ...pending }));
    },

    append(partition: string, streamId: string, request: AppendRequest): Promise<AppendOutcome> {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const expected = parseExpectedVersion(request.expectedVersion);
        const sizes: number[] = [];
        const events = validateProposedEvents(request.events, limits, sizes);
        const idempotencyKey = request.idempotencyKey === undefined ? undefined : validateIdempotencyKey(request.idempotencyKey);
        const fingerprint = idempotencyKey === undefined ? undefined : fingerprintOf(streamId, expected, events);
        return enqueue<AppendOutcome>((pending) => ({
          kind: 'append',
          partition,
          streamId,
          expected,
          events,
          sizes,
          idempotencyKey,
          fingerprint,
          batched: false,
          ...pending,
        }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    readStream(partition, streamId, opts = {}) {
      validatePartition(partition);
      validateStreamId(streamId);
      return readStream(access, partition, streamId, opts);
    },
    readPartitionLog(partition, opts = {}) {
      validatePartition(partition);
      return readLog(access, partition, opts);
    },
    readShardLog(opts = {}) {
      return readLog(access, undefined, opts);
    },

    deleteStream(partition, streamId, opts = {}) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const mode = parseDeleteMode(opts.mode);
        const expected = parseExpectedVersion(opts.expectedVersion);
        return enqueue<DeleteOutcome>((pending) => ({ kind: 'delete', partition, streamId, mode, expected, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    getMetadata(partition, streamId) {
      validatePartition(partition);
      validateStreamId(streamId);
      return access.getMetadata(partition, streamId);
    },

    setMetadata(partition, streamId, metadata) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        const valid = validateStreamMetadata(metadata);
        return enqueue<WriteOutcome>((pending) => ({ kind: 'metadata', partition, streamId, metadata: valid, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    putSnapshot(partition, streamId, version, data) {
      try {
        validatePartition(partition);
        validateStreamId(streamId);
        if (!Number.isSafeInteger(version) || version < 1) throw new SkeinError('VALIDATION_FAILED', 'version must be an integer ≥ 1', { field: 'version' });
        if (data === undefined) throw new SkeinError('VALIDATION_FAILED', 'snapshot data is required', { field: 'data' });
        validateJsonValue(data, 'data');
        return enqueue<WriteOutcome>((pending) => ({ kind: 'snapshot', partition, streamId, version, data, ...pending }));
      } catch (err) {
        return Promise.reject(err);
      }
    },

    latestSnapshot(partition, streamId) {
      validatePartition(partition);
      validateStreamId(streamId);
      return latestSnapshot(access, partition, streamId);
    },

    streamState(partition, streamId) {
      const head = access.loadHead(partition, streamId);
      const del = head.del ?? Deleted.No;
      return { version: head.v, deleted: del === Deleted.Hard ? 'hard' : del === Deleted.Soft ? 'soft' : 'no' };
    },

    onCommit: batcher.onCommit,
    writerState: batcher.writerState,
    storageFault: batcher.storageFault,

    environmentSizes() {
      return buckets.sizes();
    },

    environmentCount() {
      return { total: buckets.all.length, open: buckets.openEnvironments };
    },

    async close() {
      if (closed) return;
      closed = true;
      await batcher.close();
      if (ownSequencer) await sequencer.close();
      await buckets.close();
    },
  };
  // Partition moves (partition-transfer.ts): range copies in and out of the buckets.
  attachPartitionTransfer(store, { buckets, clock, forgetCachedState: () => heads.clear(), loadHead: (p, s) => access.loadHead(p, s) });
  attachMaintenance(store, {
    buckets,
    clock,
    idempotencyWindowMs: cfg.idempotencyWindowMs,
    exclusiveWrite: batcher.exclusiveWrite,
    loadHead: (p, s) => access.loadHead(p, s),
    cacheHead: (p, s, head) => heads.set(streamRef(p, s), head),
    getMetadata: access.getMetadata,
    log: access.log,
  });
  return store;
}

/** Converts a failed outcome into the registry error a service answers with. */
export function outcomeError(outcome: { ok: false; code: string; expected?: ExpectedVersion; actual?: number; detail?: string }): SkeinError {
  switch (outcome.code) {
    case 'WRONG_EXPECTED_VERSION':
      return new SkeinError('WRONG_EXPECTED_VERSION', `expected version ${String(outcome.expected)}, stream is at ${outcome.actual}`, {
        expected: outcome.expected,
        actual: outcome.actual,
      });
    case 'STREAM_DELETED':
      return new SkeinError('STREAM_DELETED', 'the stream was hard-deleted');
    case 'STREAM_NOT_FOUND':
      return new SkeinError('STREAM_NOT_FOUND', 'no such stream');
    case 'IDEMPOTENCY_KEY_REUSED':
      return new SkeinError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
    case 'VALIDATION_FAILED':
      return new SkeinError('VALIDATION_FAILED', outcome.detail ?? 'invalid request', { field: 'version' });
    default:
      return new SkeinError('INTERNAL', 'unexpected outcome');
  }
}

export type { AppendSuccess };
