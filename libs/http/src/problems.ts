import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new SkeinError('URI_TOO_LONG', 'a path segment of the URL is too long', {}, { cause: err });
    case 'FST_ERR_BAD_URL':
      return new SkeinError('VALIDATION_FAILED', 'the URL is not valid (percent-encoding that is not UTF-8?)', { field: 'url' }, { cause: err });
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
    case 414:
      return new SkeinError('URI_TOO_LONG', 'the URL is too long', {}, { cause: err });
    case 415:
      return new SkeinError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', {}, { cause: err });
    case 431:
      return new SkeinError('HEADERS_TOO_LARGE', 'the request line and headers are too large', {}, { cause: err });
    case 503:
      return new SkeinError('UNAVAILABLE', 'the service is closing', { retryAfter: 1 }, { cause: err });
  }
  // Any other client error Fastify raises itself (FST_ERR_*, 400) is a request it could not take.
  if (typeof e?.code === 'string' && e.code.startsWith('FST_ERR_') && e.statusCode === 400) {
    return new SkeinError('VALIDATION_FAILED', 'the request is not valid', { field: 'request' }, { cause: err });
  }
  return new SkeinError('INTERNAL', 'Internal error', {}, { cause: err });
}

/**
 * Fastify options that make the errors Fastify and Node's HTTP parser answer before any
 * route or error handler (a malformed URL, a path segment over `maxParamLength`, headers
 * over Node's 16 KiB `maxHeaderSize`, a request that is not HTTP) problem documents too.
 * Spread into the `Fastify({...})` options of every service.
 */
export const problemDocumentOptions = Object.freeze({
  frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
    sendProblem(reply, err);
  },
  /**
   * Node's parser refuses the request before Fastify sees one, so the answer is written
   * on the socket by hand and the connection closed (its framing is lost). A timeout
   * (the request did not arrive within Node's `requestTimeout`) and a reset connection
   * get no answer: there is no request to answer.
   */
  clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || socket.destroyed) {
      socket.destroy();
      return;
    }
    const e =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new SkeinError('HEADERS_TOO_LARGE', 'the request line and headers are over the 16 KiB limit')
        : new SkeinError('VALIDATION_FAILED', 'the request is not valid HTTP/1.1', { field: 'request' });
    const body = JSON.stringify(toProblem(e));
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  },
});

/**
 * Replaces Fastify's JSON body parser with one that refuses bodies that are not UTF-8
 * (400 MALFORMED_JSON) instead of decoding them with U+FFFD in place of the bad bytes.
 * `isUtf8` is one SIMD pass over the bytes; parsing is Fastify's own (with its
 * `__proto__` and `constructor` poisoning checks), so nothing else changes. Lone
 * surrogates written as `\ud800` escapes are valid UTF-8 text: the validators refuse
 * them in the values they check (validateJsonValue, stream ids, types).
 */
export function acceptUtf8JsonOnly(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(new SkeinError('MALFORMED_JSON', 'the body is not valid UTF-8'), undefined);
      return;
    }
    parseJson(req, bytes.toString('utf8'), done);
  });
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
