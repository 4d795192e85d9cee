/** `any`, `no_stream`, `stream_exists`, or an exact version n ≥ 0 (0 ≡ no events, like `no_stream`). */
export type ExpectedVersion = 'any' | 'no_stream' | 'stream_exists' | number;

/** An event as a client proposes it. */
export interface ProposedEvent {
  /** A UUID; the server assigns one when absent. */
  id?: string;
  type: string;
  data: unknown;
  metadata?: unknown;
}

/** An event as stored. Positions are bigint inside the cluster and decimal strings on the wire. */
export interface RecordedEvent {
  id: string;
  type: string;
  data: unknown;
  metadata: unknown;
  streamId: string;
  version: number;
  position: bigint;
  /** Milliseconds since the epoch, UTC. */
  timestamp: number;
}

/** An event of a log in global order also names its partition. */
export interface LoggedEvent extends RecordedEvent {
  partition: string;
}

/** The success answer of an append. `duplicate` marks the original result returned again. */
export interface AppendSuccess {
  streamId: string;
  firstVersion: number;
  lastVersion: number;
  firstPosition: bigint;
  lastPosition: bigint;
  duplicate?: true;
}

export type Direction = 'forward' | 'backward';

/** Per-stream metadata (API.md, "Stream metadata"). Applied at read time. */
export interface StreamMetadata {
  /** Seconds; events older than this are hidden from stream reads. */
  maxAge?: number;
  /** Only the newest maxCount events are visible in stream reads. */
  maxCount?: number;
  /** Events with a lower version are hidden from stream reads. */
  truncateBefore?: number;
  custom?: unknown;
}

export type DeleteMode = 'soft' | 'hard';

/** Wire form of an event (API.md, "Events"). */
export interface WireEvent {
  id: string;
  type: string;
  data: unknown;
  metadata: unknown;
  streamId: string;
  version: number;
  position: string;
  timestamp: string;
  tenant?: string;
}

/** Converts a stored event to its wire form. */
export function toWireEvent(e: RecordedEvent, tenant?: string): WireEvent {
  const wire: WireEvent = {
    id: e.id,
    type: e.type,
    data: e.data,
    metadata: e.metadata,
    streamId: e.streamId,
    version: e.version,
    position: e.position.toString(),
    timestamp: new Date(e.timestamp).toISOString(),
  };
  if (tenant !== undefined) wire.tenant = tenant;
  return wire;
}

/** Wire form of an append result. */
export function toWireAppendResult(r: AppendSuccess): Record<string, unknown> {
  const out: Record<string, unknown> = {
    streamId: r.streamId,
    firstVersion: r.firstVersion,
    lastVersion: r.lastVersion,
    firstPosition: r.firstPosition.toString(),
    lastPosition: r.lastPosition.toString(),
  };
  if (r.duplicate) out.duplicate = true;
  return out;
}
