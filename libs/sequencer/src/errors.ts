import { SkeinError, isSkeinError } from '@skein/protocol';

/**
 * The first element of every script reply. `OK` carries a result; the others are
 * outcomes the sequencer handles (re-seed) or turns into a registry code.
 */
export const SCRIPT_CODES = {
  OK: 0,
  /** The marker is missing or differs from the caller's: join or re-seed before allocating. */
  MARKER_MISMATCH: -1,
  /** The range would end beyond 2^63-1; nothing was changed. */
  RANGE_OVERFLOW: -2,
  /** The counter is below a value the caller observed: Redis lost data. The script deleted the marker. */
  DATA_LOSS: -3,
  /** A re-seed is in progress and some members have not reported their high-water yet. */
  RESEED_WAITING: -4,
  /** The member was fenced after a write of the batch was admitted (a partition move); nothing was allocated. */
  FENCED: -5,
} as const;

export type ScriptCode = (typeof SCRIPT_CODES)[keyof typeof SCRIPT_CODES];

/** A script answer other than OK, as handed to {@link toSkeinError}. */
export interface ScriptFailure {
  script: 'allocate' | 'current' | 'reseed';
  code: ScriptCode;
  /** Facts for the error: `waitingFor`, `counter`, … */
  details?: Record<string, unknown>;
}

/** Seconds a caller should wait before retrying an UNAVAILABLE sequencer call. */
export const RETRY_AFTER_SECONDS = 1;

// Replies that mean "Redis cannot serve this right now", as opposed to a bug in the
// script or a key of the wrong type.
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MISCONF|OOM|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

function isScriptFailure(value: unknown): value is ScriptFailure {
  return typeof value === 'object' && value !== null && 'script' in value && 'code' in value && typeof (value as ScriptFailure).code === 'number';
}

/**
 * The one translation of sequencer failures into registry codes: script return codes
 * ({@link ScriptFailure}), Redis error replies, connection failures and timeouts.
 *
 * - RANGE_OVERFLOW, and Redis' own integer overflow reply → VALIDATION_FAILED (field `count`).
 * - FENCED → NOT_OWNER (421): the router re-reads the topology and re-routes; nothing was allocated.
 * - MARKER_MISMATCH, DATA_LOSS, RESEED_WAITING → UNAVAILABLE: positions cannot be handed
 *   out until the re-seed completes.
 * - Connection closed, offline, command timed out, LOADING/BUSY/READONLY/… replies →
 *   UNAVAILABLE, `retryAfter` 1 s, with the original error as `cause`. Nothing was
 *   allocated as far as the client knows (a timeout after the script ran leaves a gap).
 * - Any other reply (a script bug, WRONGTYPE) → INTERNAL, with the cause.
 * - A SkeinError is returned unchanged.
 */
export function toSkeinError(failure: unknown): SkeinError {
  if (isSkeinError(failure)) return failure;
  if (isScriptFailure(failure)) {
    const details = failure.details ?? {};
    switch (failure.code) {
      case SCRIPT_CODES.RANGE_OVERFLOW:
        return new SkeinError('VALIDATION_FAILED', 'the range would end beyond 2^63-1, the largest position the Redis sequencer can hold', { field: 'count', ...details });
      case SCRIPT_CODES.RESEED_WAITING:
        return new SkeinError('UNAVAILABLE', 'the sequencer is re-seeding after Redis lost its data; waiting for every member to report its high-water', { retryAfter: RETRY_AFTER_SECONDS, ...details });
      case SCRIPT_CODES.DATA_LOSS:
        return new SkeinError('UNAVAILABLE', 'the counter went below a value already observed: Redis lost data; re-seeding', { retryAfter: RETRY_AFTER_SECONDS, ...details });
      case SCRIPT_CODES.FENCED:
        return new SkeinError('NOT_OWNER', 'a partition of this shard was fenced for a move after the batch was admitted; nothing was written', { retryAfter: RETRY_AFTER_SECONDS, ...details });
      case SCRIPT_CODES.MARKER_MISMATCH:
        return new SkeinError('UNAVAILABLE', 'the sequencer epoch changed while joining; retry', { retryAfter: RETRY_AFTER_SECONDS, ...details });
      default:
        return new SkeinError('INTERNAL', `unexpected ${failure.script} script reply ${String(failure.code)}`, details);
    }
  }
  const err = failure instanceof Error ? failure : new Error(String(failure));
  if (err.name === 'ReplyError') {
    if (TRANSIENT_REPLY.test(err.message)) {
      return new SkeinError('UNAVAILABLE', `Redis cannot serve the sequencer: ${err.message}`, { retryAfter: RETRY_AFTER_SECONDS }, { cause: err });
    }
    if (/overflow/i.test(err.message)) {
      return new SkeinError('VALIDATION_FAILED', 'the range would end beyond 2^63-1', { field: 'count' }, { cause: err });
    }
    return new SkeinError('INTERNAL', 'the sequencer script failed', {}, { cause: err });
  }
  // Everything else comes from the connection: refused, closed, offline, timed out.
  return new SkeinError('UNAVAILABLE', `Redis is unreachable: ${err.message}`, { retryAfter: RETRY_AFTER_SECONDS }, { cause: err });
}
