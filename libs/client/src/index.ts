export { createClient, DEFAULT_CLIENT_OPTIONS } from './client.ts';
export type { ClientOptions, SkeinClient, AdminClient, SubscribeStreamOptions, SubscribeLogOptions, TenantChange, EnqueuedJob, PartitionMove, PlannedMove } from './client.ts';
export type { Subscription, SubscribeOptions, ReconnectInfo } from './subscription.ts';
export type { FetchFunction, FetchInit, FetchResponse } from './http.ts';
export { errorFromResponse } from './http.ts';
export { hasErrorCode, isNotFound, isOutcomeUnknown, describeError } from './errors.ts';
export type { ErrorDetailsByCode, SkeinErrorOf } from './errors.ts';
export { createSseParser } from './sse.ts';
export type { SseMessage } from './sse.ts';
export { decodeEvent } from './decode.ts';
export type {
  AppendRequest,
  AppendResult,
  CallOptions,
  ClusterStatus,
  CreateTenantOptions,
  CreatedKey,
  CreatedTenant,
  DeleteStreamOptions,
  LogEventsOptions,
  LogPage,
  PositionInput,
  ReadLogOptions,
  ReadStreamOptions,
  SkeinEvent,
  Snapshot,
  StreamEventsOptions,
  StreamPage,
  TenantInfo,
  DeleteMode,
  Direction,
  ExpectedVersion,
  ProposedEvent,
  StreamMetadata,
} from './types.ts';
export { SkeinError, isSkeinError, ERROR_CODES } from '@skein/protocol';
export type { ErrorCode } from '@skein/protocol';
export type { JobView, JobKind, JobState, MaintenanceKind, BackupView, BackupShardView } from '@skein/protocol';
