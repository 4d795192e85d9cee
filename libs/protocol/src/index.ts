export {
  ERROR_CODES,
  SkeinError,
  isSkeinError,
  isErrorCode,
  validationError,
  toProblem,
  fromProblem,
} from './errors.ts';
export type { ErrorCode, ErrorDetails, Problem } from './errors.ts';
export {
  DEFAULT_LIMITS,
  MAX_POSITION,
  isValidTenant,
  validateTenant,
  validatePartition,
  tenantOfPartition,
  validateStreamId,
  validateEventType,
  categoryOf,
  isUuid,
  validateIdempotencyKey,
  parseExpectedVersion,
  validateProposedEvents,
  parseLimit,
  parseVersion,
  parsePosition,
  parseDirection,
  parseDeleteMode,
  validateStreamMetadata,
  validateJsonValue,
  MAX_JSON_DEPTH,
} from './validation.ts';
export type { Limits } from './validation.ts';
export { toWireEvent, toWireAppendResult } from './types.ts';
export type {
  ExpectedVersion,
  ProposedEvent,
  RecordedEvent,
  LoggedEvent,
  AppendSuccess,
  Direction,
  StreamMetadata,
  DeleteMode,
  WireEvent,
} from './types.ts';
export type { Sequencer, PositionRange } from './sequencer.ts';
export { partitionOf, partitionsOf, MAX_PARTITIONS } from './partitions.ts';
export { APPEND_BATCH_LIMITS, CLUSTER_SECRET_HEADER, EPOCH_HEADER, EVENTS_HEADER } from './internal-api.ts';
export { supersedes, mergeControlRecords, parseControlRecord } from './control-records.ts';
export type { ControlRecord } from './control-records.ts';
export type { ControlStore, Marked, NewTenant, Refusal, StoredApiKey, StoredTenant, TopologyChange } from './control-store.ts';
export { appendResultFromWire, appendResultToWire, streamPageJson } from './shard-api.ts';
export type {
  ShardApi,
  ShardAppend,
  ShardAppendResult,
  LoggedWireEvent,
  StreamPage,
  StreamPageJson,
  ReadStreamQuery,
  ReadLogQuery,
  LogPageWire,
  SafePointReading,
  ShardInfo,
} from './shard-api.ts';
export { JOB_KINDS, MAINTENANCE_KINDS, JOB_STATES, JOB_DEFAULTS, maintenanceQueueName, jobIdOf, parseJobId, parseJobData, deduplicationIdOf, BACKUPS_KEY, backupKey, BACKUP_ID_RE, MOVES_QUEUE, MOVE_STATES, MOVE_JOB_DEFAULTS, movePercent, parseMoveJobData, parseMoveJobProgress } from './jobs.ts';
export type { JobKind, MaintenanceKind, JobState, JobData, JobView, BackupView, BackupShardView, EnqueuedJob, JobQueues, MoveState, MoveJobData, MoveJobProgress } from './jobs.ts';
