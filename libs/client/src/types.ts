import type { AppendSuccess, DeleteMode, Direction, ExpectedVersion, ProposedEvent, StreamMetadata, WireEvent } from '@skein/protocol';

/** A global position as the client accepts it: a bigint, a safe integer, or a decimal string. */
export type PositionInput = bigint | number | string;

/**
 * An event as the client returns it: the wire form of API.md ("Events", protocol's
 * `WireEvent`) with `position` parsed to a bigint (positions can pass 2^53).
 */
export type SkeinEvent = Omit<WireEvent, 'position'> & { position: bigint };

/** What `append` sends. */
export interface AppendRequest {
  /** One or more events; each needs `type` and `data` (`null` allowed). */
  events: ProposedEvent[];
  /** Defaults to `'any'` on the server. */
  expectedVersion?: ExpectedVersion;
  /**
   * 1–128 printable ASCII characters. With a key, the append is retried on `UNAVAILABLE`,
   * `RATE_LIMITED` and broken connections (the server answers a repeat with the original
   * result and `duplicate: true`); without one, an append is never retried.
   */
  idempotencyKey?: string;
}

/** The answer of a successful append (protocol's `AppendSuccess`); `duplicate` marks a repeat that wrote nothing. */
export type AppendResult = AppendSuccess;

/** One page of a stream read. */
export interface StreamPage {
  events: SkeinEvent[];
  /** The stream's current version. */
  version: number;
  /** The `from` of the following page in the same direction; `null` when there is none. */
  next: number | null;
}

/** One page of a log in global order. */
export interface LogPage {
  events: SkeinEvent[];
  /** The `fromPosition` of the following page; equal to the one given when the page is empty. */
  next: bigint;
}

/** The latest snapshot of a stream. */
export interface Snapshot {
  version: number;
  data: unknown;
}

/** A tenant as the admin API describes it. */
export interface TenantInfo {
  tenant: string;
  partitions: number;
  retention?: { maxAge?: number };
  quota?: { eventsPerSecond: number };
  [member: string]: unknown;
}

/** The answer of `createTenant`: the only time the tenant's first API key is shown. */
export interface CreatedTenant {
  tenant: string;
  partitions: number;
  quota?: { eventsPerSecond: number };
  apiKey: string;
}

/** The answer of `createKey`: the only time the key is shown. */
export interface CreatedKey {
  keyId: string;
  apiKey: string;
}

/**
 * `GET /v1/admin/cluster`: shards, their partitions, health, topology epoch, sequencer
 * position and stable watermark. Members are passed through as the router sends them.
 */
export interface ClusterStatus {
  shards?: unknown[];
  epoch?: number;
  [member: string]: unknown;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Aborts the call (and its retries); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ReadStreamOptions extends CallOptions {
  /** First version to read; backward reads default to the last version. */
  from?: number;
  direction?: Direction;
  /** 1–1000, server default 100. */
  limit?: number;
}

export interface StreamEventsOptions extends CallOptions {
  from?: number;
  direction?: Direction;
  /** Events per request, 1–1000; default 100 (the server's). */
  pageSize?: number;
  /**
   * At most this many events in all: the iterator ends after them and asks for no page
   * beyond them (the next page is otherwise requested ahead, while these are handed out).
   */
  limit?: number;
}

export interface ReadLogOptions extends CallOptions {
  /** Default 0. */
  fromPosition?: PositionInput;
  /** 1–1000, server default 100. */
  limit?: number;
  /** Only streams of this category. */
  category?: string;
  /** Only events of these types. */
  types?: string[];
}

export interface LogEventsOptions extends CallOptions {
  fromPosition?: PositionInput;
  /** Events per request, 1–1000; default 100 (the server's). */
  pageSize?: number;
  category?: string;
  types?: string[];
}

export interface DeleteStreamOptions extends CallOptions {
  /** Default `soft`: hidden until the next append. `hard` is permanent. */
  mode?: DeleteMode;
  /** Default `any`. */
  expectedVersion?: ExpectedVersion;
}

export interface CreateTenantOptions extends CallOptions {
  /** Default 1 (server side). */
  partitions?: number;
  retention?: { maxAge?: number };
  /** Append quota of the whole tenant; over it, appends fail with RATE_LIMITED. Default: none. */
  quota?: { eventsPerSecond: number };
}

export type { DeleteMode, Direction, ExpectedVersion, ProposedEvent, StreamMetadata };
