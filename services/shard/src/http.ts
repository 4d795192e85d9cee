import type { FastifyReply, FastifyRequest } from 'fastify';
import { SkeinError, isSkeinError, toProblem, toWireEvent, type LoggedEvent, type Problem, type WireEvent } from '@skein/protocol';
import type { Ownership } from './ownership.ts';

/** Header carrying the caller's topology epoch. */
export const EPOCH_HEADER = 'x-skein-epoch';

/** The caller's topology epoch, or undefined when the header is absent. */
export function callerEpoch(req: FastifyRequest): number | undefined {
  const raw = req.headers[EPOCH_HEADER];
  if (raw === undefined) return undefined;
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (text === undefined || !/^\d{1,15}$/.test(text)) {
    throw new SkeinError('VALIDATION_FAILED', `${EPOCH_HEADER} must be an integer ≥ 0`, { field: EPOCH_HEADER });
  }
  return Number(text);
}

/**
 * Throws NOT_OWNER (421, with the current `epoch`) unless this shard serves `partition`
 * at the caller's epoch. A caller ahead of the shard makes it re-read the topology first.
 */
export async function ensureOwner(ownership: Ownership, req: FastifyRequest, partition: string | undefined): Promise<void> {
  const epoch = callerEpoch(req);
  if (epoch !== undefined && epoch > ownership.epoch) await ownership.refresh();
  const err = ownership.check(partition, epoch);
  if (err) throw err;
}

/**
 * The registry error for anything a handler or Fastify threw: SkeinErrors unchanged,
 * Fastify's body and content-type failures mapped to their codes, anything else INTERNAL.
 */
export function asSkeinError(err: unknown): SkeinError {
  if (isSkeinError(err)) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SkeinError('PAYLOAD_TOO_LARGE', 'the request body is too large', {}, { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SkeinError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', {}, { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new SkeinError('MALFORMED_JSON', 'the body is not valid JSON', {}, { cause: err });
  }
  if (err instanceof SyntaxError && e.statusCode === 400) return new SkeinError('MALFORMED_JSON', 'the body is not valid JSON', {}, { cause: err });
  if (e?.statusCode === 400 && e.validation !== undefined) return new SkeinError('VALIDATION_FAILED', e.message ?? 'invalid request', {}, { cause: err });
  if (e?.statusCode === 404) return new SkeinError('NOT_FOUND', 'no such resource', {}, { cause: err });
  if (e?.statusCode === 503) return new SkeinError('UNAVAILABLE', 'the shard is closing', { retryAfter: 1 }, { cause: err });
  return new SkeinError('INTERNAL', 'Internal error', {}, { cause: err });
}

/** Sends `err` as a problem document, with Retry-After when the error carries `retryAfter`. */
export function sendProblem(reply: FastifyReply, err: unknown): FastifyReply {
  const e = asSkeinError(err);
  const problem: Problem = toProblem(e);
  const retryAfter = e.details.retryAfter;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

/** Wire form of an event of a log in global order (it names its partition). */
export function toWireLoggedEvent(e: LoggedEvent): WireEvent & { partition: string } {
  const wire = toWireEvent(e) as WireEvent & { partition: string };
  wire.partition = e.partition;
  return wire;
}

/** Comma-separated event types of a query string, or undefined. */
export function parseTypes(value: unknown): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new SkeinError('VALIDATION_FAILED', 'types must be a comma-separated list', { field: 'types' });
  return value.split(',').filter((t) => t.length > 0);
}

/** A string-valued query member, or undefined. Rejects repeated members. */
export function queryString(query: unknown, name: string): string | undefined {
  const v = (query as Record<string, unknown> | undefined)?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new SkeinError('VALIDATION_FAILED', `${name} must be given once`, { field: name });
  return v;
}
