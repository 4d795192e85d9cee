import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SkeinError, isSkeinError, toProblem, validateTenant } from '@skein/protocol';
import type { Principal, Registry, Tenant } from './registry.ts';

/**
 * The registry error for anything a handler, a hook or Fastify threw: SkeinErrors
 * unchanged; Fastify's schema, body and content-type failures mapped to their codes;
 * anything else INTERNAL (logged, never shown).
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
    return new SkeinError('VALIDATION_FAILED', `${e.validationContext ?? 'request'} ${e.message.replace(/^(body|querystring|params|headers)\/?\S*\s*/, '').trim() || 'is invalid'}`.trim(), { field }, { cause: err });
  }
  if (err instanceof SyntaxError) return new SkeinError('MALFORMED_JSON', 'the body is not valid JSON', {}, { cause: err });
  if (e?.statusCode === 413) return new SkeinError('PAYLOAD_TOO_LARGE', 'the request body is too large', {}, { cause: err });
  if (e?.statusCode === 415) return new SkeinError('UNSUPPORTED_MEDIA_TYPE', 'send application/json', {}, { cause: err });
  return new SkeinError('INTERNAL', 'Internal error', {}, { cause: err });
}

/** Sends `err` as a problem document, with Retry-After when the error carries `retryAfter`. */
export function sendProblem(reply: FastifyReply, err: unknown): FastifyReply {
  const e = asSkeinError(err);
  const retryAfter = e.details.retryAfter;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  // Facts only the cluster needs (which shard waited for what) stay out of the body.
  const { waitingFor: _w, ...details } = e.details;
  const problem = toProblem(new SkeinError(e.code === 'NOT_OWNER' ? 'UNAVAILABLE' : e.code, e.message, details));
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

const BEARER_RE = /^Bearer ([\x21-\x7e]{1,512})$/;

/** Who is calling: 401 UNAUTHENTICATED for a missing, malformed or unknown key. */
export async function authenticate(req: FastifyRequest, registry: Registry): Promise<Principal> {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? BEARER_RE.exec(header) : null;
  if (!m) throw new SkeinError('UNAUTHENTICATED', 'send Authorization: Bearer <api key>');
  const principal = await registry.authenticate(m[1]!);
  if (!principal) throw new SkeinError('UNAUTHENTICATED', 'unknown API key');
  return principal;
}

/**
 * The tenant a request acts on. A tenant key reaches its own tenant only: any other
 * tenant, existing or not, is 403 with nothing revealed. The admin key reaches every
 * tenant; a missing one is 404 TENANT_NOT_FOUND.
 */
export async function tenantAccess(principal: Principal, tenantParam: string, registry: Registry): Promise<Tenant> {
  if (principal.kind === 'tenant' && principal.tenant !== tenantParam) throw new SkeinError('FORBIDDEN', 'this key does not give access to that tenant');
  if (principal.kind === 'admin') validateTenant(tenantParam);
  const tenant = await registry.getTenant(tenantParam);
  if (!tenant) {
    if (principal.kind === 'tenant') throw new SkeinError('FORBIDDEN', 'this key does not give access to that tenant');
    throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${tenantParam}`);
  }
  return tenant;
}

/** 403 unless the admin key is used. */
export function requireAdmin(principal: Principal): void {
  if (principal.kind !== 'admin') throw new SkeinError('FORBIDDEN', 'this needs the admin key');
}
