import { ERROR_CODES, SkeinError, isErrorCode, isSkeinError } from '@skein/protocol';
import type { ErrorCode } from '@skein/protocol';

/** What the client passes to `fetch`. */
export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body: string | null;
  signal: AbortSignal;
}

/** What the client uses of a `fetch` response. */
export interface FetchResponse {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
  body: AsyncIterable<Uint8Array> | null;
}

/** A `fetch` implementation: the global one, undici's `fetch`, or a test double. */
export type FetchFunction = (url: string, init: FetchInit) => Promise<FetchResponse>;

export interface TransportOptions {
  url: string;
  apiKey: string | undefined;
  fetch: FetchFunction;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
}

export type QueryValue = string | number | undefined;

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Already percent-encoded, from the base URL's path on. */
  path: string;
  query?: Record<string, QueryValue>;
  /** Sent as JSON when defined. */
  body?: unknown;
  headers?: Record<string, string>;
  /** True when repeating the request cannot do harm (GETs, keyed appends). */
  retry: boolean;
  signal?: AbortSignal | undefined;
  /** Return the body as text instead of parsing JSON. */
  text?: boolean;
}

export interface HttpResponse {
  status: number;
  /** Parsed JSON (`undefined` for an empty body), or the text when the request asked for it. */
  body: unknown;
}

/** The HTTP layer: one place for headers, timeouts, error mapping and retries. */
export interface Transport {
  request(req: HttpRequest): Promise<HttpResponse>;
  /** One attempt, no timeout after the headers and no retry: for streams (SSE) the caller consumes. */
  open(req: Omit<HttpRequest, 'retry' | 'body'>, connectTimeoutMs: number): Promise<FetchResponse>;
  /** One GET, no retry: the status, whatever it is. Throws UNAVAILABLE when there is no answer. */
  status(path: string, signal?: AbortSignal): Promise<number>;
}

// Codes a bare HTTP status implies when the body is not a problem document (a proxy answered).
const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'UNAVAILABLE',
};

/**
 * Parses `Retry-After` (delta-seconds, fractions tolerated, or an HTTP date) to seconds.
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const text = header.trim();
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/**
 * Maps a non-2xx response to a SkeinError: the problem document's `code` and extension
 * members when it has one (RFC 9457), otherwise the code the status implies. `Retry-After`
 * becomes the `retryAfter` member (seconds) when the body does not carry one.
 */
export function errorFromResponse(status: number, headers: { get(name: string): string | null }, text: string): SkeinError {
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const problem = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  let err: SkeinError;
  if (problem && isErrorCode(problem.code)) {
    const { type: _type, title: _title, status: _status, detail, code, ...details } = problem;
    err = new SkeinError(code, typeof detail === 'string' && detail !== '' ? detail : undefined, details);
  } else {
    const code = STATUS_CODES[status] ?? 'INTERNAL';
    const detail = problem && typeof problem.detail === 'string' ? problem.detail : `${ERROR_CODES[code].title} (HTTP ${status})`;
    err = new SkeinError(code, detail, { httpStatus: status });
  }
  if (err.details.retryAfter === undefined) {
    const seconds = parseRetryAfter(headers.get('retry-after'));
    if (seconds !== undefined) err.details.retryAfter = seconds;
  }
  return err;
}

/** A 2xx body's JSON (`undefined` when empty). Throws INTERNAL when it is not JSON. */
export function parseJsonBody(text: string, status: number): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SkeinError('INTERNAL', `malformed response from server: not JSON (HTTP ${status})`, {}, { cause: err });
  }
}

const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A failure below HTTP as UNAVAILABLE. For writes it adds `outcome: 'unknown'` unless the
 * connection was never made: the request may have been applied.
 */
export function networkError(err: unknown, url: string, method: string): SkeinError {
  const code = causeCode(err);
  const reason = code ?? (err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err));
  const details: Record<string, unknown> = {};
  if (method !== 'GET' && !(code && NOT_SENT.has(code))) details.outcome = 'unknown';
  return new SkeinError('UNAVAILABLE', `cannot reach ${new URL(url).origin}: ${reason}`, details, { cause: err });
}

class Timeout extends Error {
  override readonly name = 'TimeoutError';
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function createTransport(options: TransportOptions): Transport {
  const base = options.url.replace(/\/+$/, '');

  const urlOf = (path: string, query?: Record<string, QueryValue>): string => {
    let url = base + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
      const qs = params.toString();
      if (qs) url += '?' + qs;
    }
    return url;
  };

  const headersOf = (extra: Record<string, string> | undefined, accept: string, hasBody: boolean): Record<string, string> => {
    const headers: Record<string, string> = { accept, ...extra };
    if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;
    if (hasBody) headers['content-type'] = 'application/json';
    return headers;
  };

  // One exchange: the timeout covers all of it, body included. Failures below HTTP become UNAVAILABLE.
  const send = async (req: Omit<HttpRequest, 'retry'>): Promise<{ res: FetchResponse; text: string }> => {
    const url = urlOf(req.path, req.query);
    const timeout = new AbortController();
    // Serialised first: a value JSON cannot hold is the caller's mistake, not the network's.
    const body = req.body === undefined ? null : JSON.stringify(req.body);
    const timer = setTimeout(() => timeout.abort(new Timeout(`request timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout.signal]) : timeout.signal;
    try {
      const res = await options.fetch(url, {
        method: req.method,
        headers: headersOf(req.headers, 'application/json, application/problem+json', body !== null),
        body,
        signal,
      });
      return { res, text: await res.text() };
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      if (timeout.signal.aborted) {
        const details: Record<string, unknown> = { timeoutMs: options.timeoutMs };
        if (req.method !== 'GET') details.outcome = 'unknown';
        throw new SkeinError('UNAVAILABLE', `request to ${url} timed out after ${options.timeoutMs} ms`, details, { cause: err });
      }
      throw networkError(err, url, req.method);
    } finally {
      clearTimeout(timer);
    }
  };

  const once = async (req: HttpRequest): Promise<HttpResponse> => {
    const { res, text } = await send(req);
    if (res.status < 200 || res.status > 299) throw errorFromResponse(res.status, res.headers, text);
    if (req.text) return { status: res.status, body: text };
    return { status: res.status, body: parseJsonBody(text, res.status) };
  };

  // How long to wait before attempt `attempt + 1` after `err`; undefined: do not retry.
  const retryDelay = (err: SkeinError, attempt: number): number | undefined => {
    const after = err.details.retryAfter;
    if (typeof after === 'number' && Number.isFinite(after) && after >= 0) {
      const ms = Math.ceil(after * 1000);
      // A server asking for a longer pause than we are willing to wait: give the caller the error.
      return ms > options.maxRetryDelayMs ? undefined : ms;
    }
    const ceiling = Math.min(options.maxRetryDelayMs, options.retryDelayMs * 2 ** attempt);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  };

  const request = async (req: HttpRequest): Promise<HttpResponse> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once(req);
      } catch (err) {
        if (!req.retry || attempt >= options.retries || !isSkeinError(err)) throw err;
        if (!err.retryable && err.details.outcome !== 'unknown') throw err;
        const delay = retryDelay(err, attempt);
        if (delay === undefined) throw err;
        await sleep(delay, req.signal);
      }
    }
  };

  const open = async (req: Omit<HttpRequest, 'retry' | 'body'>, connectTimeoutMs: number): Promise<FetchResponse> => {
    const url = urlOf(req.path, req.query);
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Timeout(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout.signal]) : timeout.signal;
    let res: FetchResponse;
    try {
      res = await options.fetch(url, { method: req.method, headers: headersOf(req.headers, 'text/event-stream', false), body: null, signal });
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      if (timeout.signal.aborted) {
        throw new SkeinError('UNAVAILABLE', `${url} gave no answer within ${connectTimeoutMs} ms`, { timeoutMs: connectTimeoutMs }, { cause: err });
      }
      throw networkError(err, url, req.method);
    } finally {
      clearTimeout(timer);
    }
    if (res.status < 200 || res.status > 299) {
      let text = '';
      try {
        text = await res.text();
      } catch {
        // The status alone still names the failure.
      }
      throw errorFromResponse(res.status, res.headers, text);
    }
    return res;
  };

  const status = async (path: string, signal?: AbortSignal): Promise<number> => {
    return (await send({ method: 'GET', path, signal })).res.status;
  };

  return { request, open, status };
}
