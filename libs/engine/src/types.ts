import type { ReturnTally } from './return-tally.ts';
import type {
  AppendSuccess,
  DeleteMode,
  Direction,
  ExpectedVersion,
  LoggedEvent,
  ProposedEvent,
  RecordedEvent,
  Sequencer,
  StreamMetadata,
} from '@skein/protocol';
import type { BucketSpan } from './buckets.ts';
import type { StorageFault } from './storage.ts';

/** A clock in milliseconds since the epoch; injected so tests can move time. */
export type Clock = () => number;

/** The logger shape the engine uses (pino-compatible); defaults to a no-op. */
export interface EngineLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Optional measurements the engine reports; the shard wires them to prom-client. */
export interface EngineObserver {
  /** One write batch committed (durably): how many operations and events, how long it took. */
  batch?(info: { ops: number; events: number; seconds: number }): void;
  /**
   * The store's storage faulted (a fault, once when it begins) or recovered (null).
   * While faulted, every write is refused with UNAVAILABLE.
   */
  storageFault?(fault: StorageFault | null): void;
  /** A write batch was refused because of a storage fault (its error's code). */
  storageRefused?(info: { code: string; ops: number }): void;
  /** A stored event record could not be decoded and was skipped by a read (once per read that met it). */
  undecodableRecord?(record: SkippedRecord): void;
}

/**
 * A stored event record a read skipped because it cannot be decoded. It is logged and
 * counted where it is met; the read returns everything else.
 */
export interface SkippedRecord {
  partition: string;
  streamId: string;
  version: number;
  /** Its global position, when the read knows it (log reads). */
  position?: bigint;
}

export interface EngineOptions {
  /** Directory of the store; created when missing. */
  path: string;
  /** Global positions. Default: an embedded sequencer whose counter lives in LMDB. */
  sequencer?: Sequencer;
  /** Time span of one bucket environment. Default `month`. */
  bucketSpan?: BucketSpan;
  /** Initial LMDB map size per environment, bytes. Default 1 GiB (grown on demand). */
  mapSizeBytes?: number;
  /**
   * Most disk space kept allocated (written) past a bucket's used pages, so that a full
   * disk fails the engine's own write before LMDB's (storage.ts). Small stores keep
   * their own size, at least 1 MiB. Default 64 MiB.
   */
  storageReserveBytes?: number;
  /** While storage is faulted, how often it is probed for recovery, ms. Default 1000. */
  storageProbeIntervalMs?: number;
  /** How long an Idempotency-Key is remembered, ms. Default 24 h. */
  idempotencyWindowMs?: number;
  /** Most operations gathered into one write transaction. Default 4096. */
  maxBatchOps?: number;
  /**
   * After a batch of two or more operations is answered, how long the next batch may
   * wait for that many operations to be queued again (its callers coming back) before it
   * is written, ms. Writers that each wait for their answer then share one batch per
   * commit: fewer, larger batches, less CPU per write, at up to this much latency. A
   * lone writer never waits. Default 0: the next batch is formed at once (with a commit
   * thread, while one commits). A shard sets it (SKEIN_SHARD_BATCH_WAIT_MS).
   */
  batchWaitMs?: number;
  /**
   * With `batchWaitMs`: the tally of writers answered and not back yet, shared by every
   * store of a process whose writers move between them (a node's shards: a writer
   * answered by one writes next to whichever owns its stream). A gathering batch also
   * ends once every writer any of them answered is queued again (return-tally.ts).
   * Default: the store's own.
   */
  returnTally?: ReturnTally;
  /**
   * Most bytes of events in one read page (stream and log reads), by each event's
   * measured size plus its envelope: a page stops before the event that would pass it,
   * and always holds at least one event. Keeps a page of large events within what one
   * response (one JavaScript string) can hold. Default 4 MiB.
   */
  readPageBytes?: number;
  /**
   * Most bucket environments kept open at once (file handles and maps); the one not used
   * for the longest time is closed when another must open. The current bucket always
   * stays open. Default 64.
   */
  maxOpenBuckets?: number;
  /**
   * Commit batches on a thread of their own (commit-writer.ts) instead of this one: the
   * page writes and fdatasync of a commit then never hold this thread's event loop, and
   * the next batch is decided and allocated while one commits. Answers still follow
   * durability. For a process that hosts more than the store (a node: the router and
   * other shards share its loop). Default false: a store alone in its process commits
   * inline, which saves a thread hop per batch.
   */
  commitThread?: boolean;
  /**
   * Tests only: sleep this long right before each batch commit, on the thread that
   * commits (a slow fdatasync). Default 0.
   */
  testCommitDelayMs?: number;
  /** Streams whose state is cached in memory. Default 100,000. */
  headCacheSize?: number;
  /** Per-event and per-append limits. Default: protocol's DEFAULT_LIMITS. */
  maxEventBytes?: number;
  maxEventsPerAppend?: number;
  clock?: Clock;
  logger?: EngineLogger;
  observer?: EngineObserver;
}

export interface AppendRequest {
  expectedVersion?: ExpectedVersion;
  events: ProposedEvent[];
  idempotencyKey?: string;
}

/** An append's outcome. Expected failures are values, not exceptions. */
export type AppendOutcome =
  | ({ ok: true } & AppendSuccess)
  | { ok: false; code: 'WRONG_EXPECTED_VERSION'; expected: ExpectedVersion; actual: number }
  | { ok: false; code: 'STREAM_DELETED' }
  | { ok: false; code: 'IDEMPOTENCY_KEY_REUSED' };

export type DeleteOutcome =
  | { ok: true }
  | { ok: false; code: 'WRONG_EXPECTED_VERSION'; expected: ExpectedVersion; actual: number }
  | { ok: false; code: 'STREAM_NOT_FOUND' | 'STREAM_DELETED' };

export type WriteOutcome = { ok: true } | { ok: false; code: 'STREAM_NOT_FOUND' | 'STREAM_DELETED' | 'VALIDATION_FAILED'; detail?: string };

export interface ReadStreamOptions {
  /** First version to return; default 1 forward, the last version backward. */
  from?: number;
  direction?: Direction;
  /** Default 100. */
  limit?: number;
  /** Most bytes of events in the page (see EngineOptions.readPageBytes, the default). */
  maxBytes?: number;
}

export type ReadStreamOutcome =
  | { ok: true; events: RecordedEvent[]; version: number; next: number | null; skipped?: SkippedRecord[] }
  | { ok: false; code: 'STREAM_NOT_FOUND' | 'STREAM_DELETED' };

export interface ReadLogOptions {
  /** First position to include. Default 0. */
  fromPosition?: bigint;
  /** Last position to include (for example a stable watermark). Default: no bound. */
  toPosition?: bigint;
  /** Default 100. */
  limit?: number;
  /** Only events of streams in this category. */
  category?: string;
  /** Only events of these types. */
  types?: readonly string[];
  /** Most bytes of events in the page (see EngineOptions.readPageBytes, the default). */
  maxBytes?: number;
  /**
   * Only events of partitions it accepts (the shard log read passes the partitions the
   * shard owns). Called once per log entry. Entries left out count toward neither `limit`
   * nor `maxBytes`, and `next` passes over the ones examined, so a range holding only such
   * entries ends in an empty page whose `next` is past them.
   */
  includePartition?: (partition: string) => boolean;
}

export interface LogPage {
  events: LoggedEvent[];
  /** The fromPosition of the next page; equals the given fromPosition on an empty page. */
  next: bigint;
  /** Records in the page's range that cannot be decoded; absent when there were none. */
  skipped?: SkippedRecord[];
  /**
   * The page stopped at its byte budget (maxBytes) before its limit: events may follow
   * within the range. Absent otherwise.
   */
  truncated?: true;
}

/** One append that became durable, as delivered to commit listeners. */
export interface CommittedAppend {
  partition: string;
  streamId: string;
  firstVersion: number;
  lastVersion: number;
  firstPosition: bigint;
  lastPosition: bigint;
}

/** Where the writer stands, for a shard's safe point (DESIGN.md, "Global order"). */
export interface WriterState {
  /** An allocation was sent and its reply has not arrived. */
  allocating: boolean;
  /** The lowest position allocated but not yet committed, or null. */
  lowestUncommitted: bigint | null;
  /** The highest position committed (0n when none). */
  highestCommitted: bigint;
}

/**
 * An append parsed and validated by the caller (validateProposedEvents, with `sizes`),
 * in the same process: `EventStore.appendParsed` trusts it.
 */
export interface ParsedAppend {
  expectedVersion: ExpectedVersion;
  events: ProposedEvent[];
  /** Each event's measured size, as validateProposedEvents reported it. */
  sizes: readonly number[];
  idempotencyKey?: string;
  /**
   * The append came in a caller's batch whose next batch is sent only once this one is
   * answered (a router over HTTP): the store does not wait for it to come back before its
   * next batch (`batchWaitMs`).
   */
  batched?: boolean;
}

/** The embedded event store: everything the API needs from storage, per partition. */
export interface EventStore {
  append(partition: string, streamId: string, request: AppendRequest): Promise<AppendOutcome>;
  /**
   * `append` for an append validated at the edge of this process (ParsedAppend): its
   * events are not walked or measured again; only this store's limits are checked on
   * their count and measured sizes.
   */
  appendParsed(partition: string, streamId: string, append: ParsedAppend): Promise<AppendOutcome>;
  readStream(partition: string, streamId: string, options?: ReadStreamOptions): ReadStreamOutcome;
  readPartitionLog(partition: string, options?: ReadLogOptions): LogPage;
  readShardLog(options?: ReadLogOptions): LogPage;
  deleteStream(partition: string, streamId: string, options?: { mode?: DeleteMode; expectedVersion?: ExpectedVersion }): Promise<DeleteOutcome>;
  getMetadata(partition: string, streamId: string): StreamMetadata | null;
  setMetadata(partition: string, streamId: string, metadata: StreamMetadata): Promise<WriteOutcome>;
  putSnapshot(partition: string, streamId: string, version: number, data: unknown): Promise<WriteOutcome>;
  latestSnapshot(partition: string, streamId: string): { version: number; data: unknown } | null;
  /** The current version of a stream (0 when it has no events), and its deletion state. */
  streamState(partition: string, streamId: string): { version: number; deleted: 'no' | 'soft' | 'hard' };
  /** Called after each durable batch with its appends, in position order. Returns an unsubscribe function. */
  onCommit(listener: (appends: readonly CommittedAppend[]) => void): () => void;
  writerState(): WriterState;
  /** The current storage fault (writes are refused while there is one), or null. */
  storageFault(): StorageFault | null;
  /** Bytes on disk per bucket environment. */
  environmentSizes(): { id: string; bytes: number }[];
  /** Bucket environments: how many exist and how many are open now. */
  environmentCount(): { total: number; open: number };
  /** Stops accepting writes, answers everything queued, closes the environments. */
  close(): Promise<void>;
}
