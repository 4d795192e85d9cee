export { createEngine, defaultEngineOptions, outcomeError } from './engine.ts';
export { createEmbeddedSequencer } from './embedded-sequencer.ts';
export { ReturnTally } from './return-tally.ts';
export { bucketIdOf } from './buckets.ts';
export type { BucketSpan } from './buckets.ts';
export { storageCodeOf, checkWritable, GuardedWrites } from './storage.ts';
export { partitionTransferOf } from './partition-transfer.ts';
export type { PartitionTransfer, TransferCursor, ExportPage, ChangesPage } from './partition-transfer.ts';
export type { StorageFault } from './storage.ts';
export type {
  AppendOutcome,
  AppendRequest,
  ParsedAppend,
  Clock,
  CommittedAppend,
  DeleteOutcome,
  EngineLogger,
  EngineObserver,
  EngineOptions,
  EventStore,
  LogPage,
  ReadLogOptions,
  ReadStreamOptions,
  ReadStreamOutcome,
  SkippedRecord,
  WriteOutcome,
  WriterState,
} from './types.ts';
export { maintenanceOf, restoreBackup, listBackups } from './maintenance.ts';
export type { Maintenance, RetentionOptions, RetentionResult, CompactionResult, BackupManifest } from './maintenance.ts';
