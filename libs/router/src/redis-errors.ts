import { SkeinError, isSkeinError } from '@skein/protocol';

/** Seconds a client should wait before retrying a request Redis could not serve. */
export const REDIS_RETRY_AFTER_SECONDS = 1;

// Replies meaning "Redis cannot serve this right now", as opposed to a bug in a script
// or a key of the wrong type (those stay INTERNAL).
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MISCONF|OOM|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

// ioredis 5 rejects commands with plain Errors when the connection is down or slow; their
// messages are all it gives to tell them apart (built/Redis.js, Command.js, utils). The
// spec in redis-errors.spec.ts produces each against a real redis-server, so a change of
// ioredis that renames one fails there.
const CONNECTION_MESSAGES = [
  "Stream isn't writeable and enableOfflineQueue options is false",
  'Connection is closed.',
  'Command timed out',
];
const CONNECTION_ERROR_NAMES = new Set(['MaxRetriesPerRequestError', 'AbortError', 'InterruptError', 'ParserError']);
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

/**
 * The one translation of the router's Redis failures (every ioredis client the router
 * uses: registry, topology, quota, counter reads, the control plane): connection lost,
 * offline, timed out, or a reply saying Redis cannot serve now → `UNAVAILABLE`
 * (`retryAfter` 1 s, the original as `cause`). Null for anything else, which the caller
 * handles as it would have (a script bug stays INTERNAL).
 */
export function fromRedisFailure(err: unknown): SkeinError | null {
  if (isSkeinError(err) || !(err instanceof Error)) return null;
  const code = (err as NodeJS.ErrnoException).code;
  const transient =
    (err.name === 'ReplyError' && TRANSIENT_REPLY.test(err.message)) ||
    CONNECTION_ERROR_NAMES.has(err.name) ||
    CONNECTION_MESSAGES.some((m) => err.message.startsWith(m)) ||
    (code !== undefined && SOCKET_CODES.has(code));
  return transient ? new SkeinError('UNAVAILABLE', 'the control plane (Redis) is unavailable; retry', { retryAfter: REDIS_RETRY_AFTER_SECONDS }, { cause: err }) : null;
}

/** `err` with Redis failures made UNAVAILABLE (see {@link fromRedisFailure}); anything else unchanged. */
export function translateRedisFailure(err: unknown): unknown {
  return fromRedisFailure(err) ?? err;
}
