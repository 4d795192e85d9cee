import type { StreamMetadata } from '@skein/protocol';

/** What an event key holds. `pos` is the global position. */
export interface EventRecord {
  id: string;
  type: string;
  data: unknown;
  metadata: unknown;
  /** Milliseconds since the epoch. */
  ts: number;
  pos: bigint;
  /**
   * The event's size as measured when it was validated (UTF-8 bytes of its type, and of
   * its data and metadata as JSON). Read pages are bounded by it. Absent in records
   * written before it was kept: measured when read.
   */
  n?: number;
}

export const enum Deleted {
  No = 0,
  Soft = 1,
  Hard = 2,
}

/**
 * The state of one stream. `version` never goes back, whatever was deleted or
 * retained: a stream's numbering never restarts.
 */
export interface HeadRecord {
  /**
   * Version of the last event; 0 for a stream with no events. As stored, a lower bound:
   * an append that only advances it writes no head, and the stream's highest event key
   * in bucket `lb` (or a newer one) holds the rest (store-access.ts, withLastVersion).
   */
  v: number;
  /** First version visible to stream reads (raised by a soft delete). Absent means 1. */
  start?: number;
  /** Deletion state. Absent means not deleted. */
  del?: Deleted;
  /**
   * Bucket ids (catalog format 2, buckets.ts): the oldest bucket that may hold the
   * stream's events (a lower bound: retention may have removed them since), the bucket of
   * its last append, of its metadata and of its latest snapshot. Reads visit only those.
   */
  fb?: string;
  lb?: string;
  mb?: string;
  sb?: string;
}

/** An idempotency key's memory: the request fingerprint and the original result. */
export interface IdempotencyRecord {
  /** sha256 of the request (stream and parsed body), base64. */
  h: string;
  /** Milliseconds since the epoch when it was written. */
  at: number;
  streamId: string;
  firstVersion: number;
  lastVersion: number;
  firstPosition: bigint;
  lastPosition: bigint;
}

export type { StreamMetadata };
