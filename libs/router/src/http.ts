import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { asSkeinError, sendProblem as sendAnyProblem } from '@skein/http';
import { SkeinError, validateTenant } from '@skein/protocol';
import type { Principal, Registry, Tenant } from './registry.ts';

/**
 * Sends `err` as a problem document to a public client. Facts only the cluster needs
 * (which shard a re-seed waits for) stay out, and a 421 between router and shard
 * that could not be resolved is the client's 503.
 */
export function sendProblem(reply: FastifyReply, err: unknown): FastifyReply {
  const e = asSkeinError(err);
  const { waitingFor: _w, ...details } = e.details;
  return sendAnyProblem(reply, new SkeinError(e.code === 'NOT_OWNER' ? 'UNAVAILABLE' : e.code, e.message, e.code === 'NOT_OWNER' ? { retryAfter: 1 } : details));
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
  checkTenantParam(principal, tenantParam);
  const tenant = await registry.getTenant(tenantParam);
  if (!tenant) {
    if (principal.kind === 'tenant') throw new SkeinError('FORBIDDEN', 'this key does not give access to that tenant');
    throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${tenantParam}`);
  }
  return tenant;
}

/** tenantAccess's checks before the tenant is looked up. */
function checkTenantParam(principal: Principal, tenantParam: string): void {
  if (principal.kind === 'tenant' && principal.tenant !== tenantParam) throw new SkeinError('FORBIDDEN', 'this key does not give access to that tenant');
  if (principal.kind === 'admin') validateTenant(tenantParam);
}

/**
 * authenticate then tenantAccess answered from the registry's caches, synchronously:
 * undefined when either would read the store (then call them). Throws as they do, in the
 * same order, for what the caches decide (a malformed header, another tenant's key).
 */
export function cachedTenantAccess(req: FastifyRequest, tenantParam: string, registry: Registry): { principal: Principal; tenant: Tenant } | undefined {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? BEARER_RE.exec(header) : null;
  if (!m) throw new SkeinError('UNAUTHENTICATED', 'send Authorization: Bearer <api key>');
  const principal = registry.cachedPrincipal(m[1]!);
  if (principal === undefined) return undefined;
  checkTenantParam(principal, tenantParam);
  const tenant = registry.cachedTenant(tenantParam);
  return tenant === undefined ? undefined : { principal, tenant };
}

/** 403 unless the admin key is used. */
export function requireAdmin(principal: Principal): void {
  if (principal.kind !== 'admin') throw new SkeinError('FORBIDDEN', 'this needs the admin key');
}

type ChildBindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
type LogMethod = (...args: unknown[]) => void;

/**
 * A request's child logger (its `reqId` bound) made on its first use. Request logging is
 * off, so most requests never log a line; a pino child made for each of them cost its
 * bindings' serialization and a `setLevel` over every level (1.9% of the main thread of
 * `npm start` under 32 appending clients). The lines and their bindings are the same.
 */
class ChildOnFirstUse implements FastifyBaseLogger {
  #child: FastifyBaseLogger | null = null;
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: ChildBindings;
  readonly #options: ChildOptions;

  constructor(parent: FastifyBaseLogger, bindings: ChildBindings, options: ChildOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #log(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return this.#child?.level ?? this.#options?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#log().level = level;
  }

  fatal(...args: unknown[]): void {
    const log = this.#log();
    (log.fatal as LogMethod).apply(log, args);
  }

  error(...args: unknown[]): void {
    const log = this.#log();
    (log.error as LogMethod).apply(log, args);
  }

  warn(...args: unknown[]): void {
    const log = this.#log();
    (log.warn as LogMethod).apply(log, args);
  }

  info(...args: unknown[]): void {
    const log = this.#log();
    (log.info as LogMethod).apply(log, args);
  }

  debug(...args: unknown[]): void {
    const log = this.#log();
    (log.debug as LogMethod).apply(log, args);
  }

  trace(...args: unknown[]): void {
    const log = this.#log();
    (log.trace as LogMethod).apply(log, args);
  }

  silent(...args: unknown[]): void {
    const log = this.#log();
    (log.silent as LogMethod).apply(log, args);
  }

  child(bindings: ChildBindings, options?: ChildOptions): FastifyBaseLogger {
    return this.#log().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: each request's child logger, made when it first logs. */
export function childLoggerOnFirstUse(logger: FastifyBaseLogger, bindings: ChildBindings, options: ChildOptions): FastifyBaseLogger {
  return new ChildOnFirstUse(logger, bindings, options);
}
