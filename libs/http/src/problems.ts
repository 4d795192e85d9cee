import type { FastifyError, FastifyReply } from 'fastify';
import { SkeinError, isSkeinError, toProblem } from '@skein/protocol';

/**
 * The registry error for anything a handler, a hook or Fastify threw: SkeinErrors
 * unchanged; Fastify's schema, body and content-type failures mapped to their codes
 * (a schema failure names the offending `field`); anything else INTERNAL, its message
 * never shown. The one translation of Fastify errors for every Skein service.
 */
export function asSkeinError(err: unknown): SkeinError {
  if (isSkeinError(err)) return err;
  const e = err as FastifyError & { validation?: { instancePath?: string; params?: Record<string, unknown> }[]; validationContext?: string };
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SkeinError('PAYLOAD_TOO_LARGE', 'the request body is too large', {}, { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SkeinError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', {}, { cause: err });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new SkeinError('MALFORMED_JSON', 'the body is not valid JSON', {}, { cause: err });
  }
  if (e?.validation && e.validation.length > 0) {
    const first = e.validation[0]!;
    const missing = first.params?.missingProperty ?? first.params?.additionalProperty;
    const path = (first.instancePath ?? '').replace(/^\//, '').replace(/\/(\d+)/g, '[$1]').replace(/\//g, '.');
    const field = [path, typeof missing === 'string' ? missing : ''].filter(Boolean).join('.') || e.validationContext || 'body';
    const detail = e.message.replace(/^(body|querystring|params|headers)\/?\S*\s*/, '').trim() || 'is invalid';
    return new SkeinError('VALIDATION_FAILED', `${e.validationContext ?? 'request'} ${detail}`, { field }, { cause: err });
  }
  // Fastify's JSON body parser fails with a SyntaxError marked 400. Any other SyntaxError
  // (a handler parsing stored state, say) is the server's fault: INTERNAL, below.
  if (err instanceof SyntaxError && e.statusCode === 400) return new SkeinError('MALFORMED_JSON', 'the body is not valid JSON', {}, { cause: err });
  switch (e?.statusCode) {
    case 404:
      return new SkeinError('NOT_FOUND', 'no such resource', {}, { cause: err });
    case 413:
      return new SkeinError('PAYLOAD_TOO_LARGE', 'the request body is too large', {}, { cause: err });
    case 415:
      return new SkeinError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', {}, { cause: err });
    case 503:
      return new SkeinError('UNAVAILABLE', 'the service is closing', { retryAfter: 1 }, { cause: err });
  }
  return new SkeinError('INTERNAL', 'Internal error', {}, { cause: err });
}

/**
 * Sends `err` as an RFC 9457 problem document (`application/problem+json`), with a
 * Retry-After header when the error carries `retryAfter`.
 */
export function sendProblem(reply: FastifyReply, err: unknown): FastifyReply {
  const e = asSkeinError(err);
  const retryAfter = e.details.retryAfter;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  const problem = toProblem(e);
  return reply.code(problem.status).type('application/problem+json').send(problem);
}
