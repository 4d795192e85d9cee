/**
 * The one registry of error codes (API.md, "Errors"), with each code's HTTP status
 * and whether a client may retry the same request unchanged.
 *
 * `internal: true` codes never leave the cluster: they travel between the router
 * and the shards only.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: { status: 400, retryable: false, title: 'Validation failed' },
  MALFORMED_JSON: { status: 400, retryable: false, title: 'Malformed JSON' },
  UNAUTHENTICATED: { status: 401, retryable: false, title: 'Unauthenticated' },
  FORBIDDEN: { status: 403, retryable: false, title: 'Forbidden' },
  NOT_FOUND: { status: 404, retryable: false, title: 'Not found' },
  STREAM_NOT_FOUND: { status: 404, retryable: false, title: 'Stream not found' },
  SNAPSHOT_NOT_FOUND: { status: 404, retryable: false, title: 'Snapshot not found' },
  TENANT_NOT_FOUND: { status: 404, retryable: false, title: 'Tenant not found' },
  WRONG_EXPECTED_VERSION: { status: 409, retryable: false, title: 'Wrong expected version' },
  TENANT_EXISTS: { status: 409, retryable: false, title: 'Tenant exists' },
  /** A shard still owns partitions: drain it before removing it. */
  SHARD_NOT_EMPTY: { status: 409, retryable: false, title: 'Shard not empty' },
  /** The request conflicts with the cluster's state (a shard id that exists, a partition already moving). */
  CONFLICT: { status: 409, retryable: false, title: 'Conflict' },
  STREAM_DELETED: { status: 410, retryable: false, title: 'Stream deleted' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, title: 'Payload too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, title: 'Unsupported media type' },
  URI_TOO_LONG: { status: 414, retryable: false, title: 'URI too long' },
  HEADERS_TOO_LARGE: { status: 431, retryable: false, title: 'Request header fields too large' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, retryable: false, title: 'Idempotency key reused' },
  RATE_LIMITED: { status: 429, retryable: true, title: 'Rate limited' },
  INTERNAL: { status: 500, retryable: false, title: 'Internal error' },
  UNAVAILABLE: { status: 503, retryable: true, title: 'Unavailable' },
  /** A shard does not own the partition at the caller's topology epoch; refresh and retry. */
  NOT_OWNER: { status: 421, retryable: true, title: 'Misdirected request', internal: true },
} as const satisfies Record<string, { status: number; retryable: boolean; title: string; internal?: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** Facts a client needs beside the code: `field`, `expected`, `actual`, `retryAfter`, `epoch`, … */
export type ErrorDetails = Record<string, unknown>;

/**
 * The one error class of Skein. Carries a registry code, its HTTP status, whether
 * the request may be retried, extension members for the problem document, and the
 * underlying cause.
 */
export class SkeinError extends Error {
  override readonly name = 'SkeinError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message?: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code].title, options);
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = details;
  }
}

/** True when `err` is a SkeinError, and (when given) has one of the codes. */
export function isSkeinError(err: unknown, ...codes: ErrorCode[]): err is SkeinError {
  return err instanceof SkeinError && (codes.length === 0 || codes.includes(err.code));
}

/** Shorthand for a VALIDATION_FAILED error naming the offending field. */
export function validationError(field: string, detail: string): SkeinError {
  return new SkeinError('VALIDATION_FAILED', detail, { field });
}

/** RFC 9457 problem document, as every Skein service answers errors. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [extension: string]: unknown;
}

const PROBLEM_TYPE_BASE = 'https://skein.dev/problems/';

/** Renders any error as a problem document; anything that is not a SkeinError is INTERNAL, with no internals shown. */
export function toProblem(err: unknown): Problem {
  const e = isSkeinError(err) ? err : new SkeinError('INTERNAL', 'Internal error');
  const extensions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e.details)) {
    extensions[k] = typeof v === 'bigint' ? v.toString() : v;
  }
  return {
    ...extensions,
    type: PROBLEM_TYPE_BASE + e.code.toLowerCase().replace(/_/g, '-'),
    title: ERROR_CODES[e.code].title,
    status: e.status,
    detail: e.message,
    code: e.code,
  };
}

/** Rebuilds a SkeinError from a problem document received over HTTP (router ← shard, client ← router). */
export function fromProblem(problem: unknown, fallbackStatus = 500): SkeinError {
  if (problem && typeof problem === 'object' && isErrorCode((problem as Problem).code)) {
    const { type: _t, title: _ti, status: _s, detail, code, ...details } = problem as Problem;
    return new SkeinError(code, typeof detail === 'string' ? detail : undefined, details);
  }
  return new SkeinError(fallbackStatus === 503 ? 'UNAVAILABLE' : 'INTERNAL', `unexpected error response (${fallbackStatus})`);
}
