import { SkeinError } from '@skein/protocol';
import type { ErrorCode, ErrorDetails, ExpectedVersion } from '@skein/protocol';

/** The extension members API.md promises for some codes. Others carry `ErrorDetails` only. */
export interface ErrorDetailsByCode {
  WRONG_EXPECTED_VERSION: { expected: ExpectedVersion; actual: number };
  VALIDATION_FAILED: { field?: string };
  PAYLOAD_TOO_LARGE: { field?: string; limit?: number };
  RATE_LIMITED: { retryAfter?: number };
  /** `outcome: 'unknown'`: a write may have been applied (retry it only with its Idempotency-Key). */
  UNAVAILABLE: { retryAfter?: number; outcome?: 'unknown'; timeoutMs?: number };
  INTERNAL: { outcome?: 'unknown' };
}

/** A SkeinError narrowed to one of `C`, with the details API.md names for it. */
export type SkeinErrorOf<C extends ErrorCode> = SkeinError & {
  readonly code: C;
  readonly details: ErrorDetails & (C extends keyof ErrorDetailsByCode ? Partial<ErrorDetailsByCode[C]> : unknown);
};

/**
 * Like `isSkeinError`, with the details typed by code:
 * `if (hasErrorCode(err, 'WRONG_EXPECTED_VERSION')) retryFrom(err.details.actual)`.
 */
export function hasErrorCode<C extends ErrorCode>(err: unknown, ...codes: [C, ...C[]]): err is SkeinErrorOf<C> {
  return err instanceof SkeinError && (codes as ErrorCode[]).includes(err.code);
}

/** True for `STREAM_NOT_FOUND`, `SNAPSHOT_NOT_FOUND`, `TENANT_NOT_FOUND` and `NOT_FOUND`. */
export function isNotFound(err: unknown): err is SkeinError {
  return hasErrorCode(err, 'NOT_FOUND', 'STREAM_NOT_FOUND', 'SNAPSHOT_NOT_FOUND', 'TENANT_NOT_FOUND');
}

/** True when the error leaves unknown whether a write was applied (a broken connection, a timeout, `"outcome": "unknown"`). */
export function isOutcomeUnknown(err: unknown): err is SkeinError {
  return err instanceof SkeinError && err.details.outcome === 'unknown';
}

/**
 * One line for a human: `WRONG_EXPECTED_VERSION: expected 3, stream is at 5`,
 * `VALIDATION_FAILED: events[0].type must be a non-empty string (field events[0].type)`.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof SkeinError)) return err instanceof Error ? err.message : String(err);
  const d = err.details;
  if (err.code === 'WRONG_EXPECTED_VERSION' && d.expected !== undefined && d.actual !== undefined) {
    return `${err.code}: expected ${String(d.expected)}, stream is at ${String(d.actual)}`;
  }
  let line = `${err.code}: ${err.message}`;
  if (typeof d.field === 'string' && !err.message.includes(d.field)) line += ` (field ${d.field})`;
  if (typeof d.retryAfter === 'number') line += ` (retry after ${d.retryAfter} s)`;
  if (d.outcome === 'unknown') line += ' (the write may have been applied)';
  return line;
}
