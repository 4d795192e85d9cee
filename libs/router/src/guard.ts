import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, cachedTenantAccess, requireAdmin, tenantAccess } from './http.ts';
import type { Principal, Registry, Tenant } from './registry.ts';

interface Access {
  principal: Principal;
  tenant?: Tenant;
}

/**
 * Who a guarded request acts for, kept on the request itself (declared by
 * `declareRequestAccess`, so every request has the same shape): a WeakMap entry per
 * request cost more (set, get, and the GC's ephemeron work).
 */
const ACCESS = Symbol('skein.access');
type GuardedRequest = FastifyRequest & { [ACCESS]: Access | null };

/** Declares the slot the guards fill on every request of `app` (call before registering routes). */
export function declareRequestAccess(app: FastifyInstance): void {
  app.decorateRequest(ACCESS, null);
}

/**
 * `onRequest` hooks that authenticate before anything else (before the body is even
 * read): 401 for no or an unknown key, 403 for another tenant, 404 for a missing tenant
 * (admin key only), so nothing about other tenants leaks through validation errors.
 */
export function guards(registry: Registry) {
  async function tenantFromStore(req: FastifyRequest, tenantParam: string): Promise<void> {
    const principal = await authenticate(req, registry);
    const tenant = await tenantAccess(principal, tenantParam, registry);
    (req as GuardedRequest)[ACCESS] = { principal, tenant };
  }
  return {
    /**
     * Callback style, answered at once when the key and the tenant are cached (nearly
     * every request): no async function, promise or microtask turn per request; the
     * store is read, as before, only when a cache misses.
     */
    tenant: (req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
      const tenantParam = (req.params as { tenant: string }).tenant;
      let access: Access | undefined;
      try {
        access = cachedTenantAccess(req, tenantParam, registry);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (access !== undefined) {
        (req as GuardedRequest)[ACCESS] = access;
        done();
        return;
      }
      tenantFromStore(req, tenantParam).then(() => done(), done);
    },
    admin: async (req: FastifyRequest, _reply: FastifyReply) => {
      const principal = await authenticate(req, registry);
      requireAdmin(principal);
      (req as GuardedRequest)[ACCESS] = { principal };
    },
  };
}

/** The tenant a guarded request acts on. */
export function tenantOf(req: FastifyRequest): Tenant {
  const t = (req as GuardedRequest)[ACCESS]?.tenant;
  if (!t) throw new Error('tenantOf() on a route without the tenant guard');
  return t;
}
