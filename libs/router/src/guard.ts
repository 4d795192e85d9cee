import type { FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, requireAdmin, tenantAccess } from './http.ts';
import type { Principal, Registry, Tenant } from './registry.ts';

interface Access {
  principal: Principal;
  tenant?: Tenant;
}

const access = new WeakMap<FastifyRequest, Access>();

/**
 * `onRequest` hooks that authenticate before anything else (before the body is even
 * read): 401 for no or an unknown key, 403 for another tenant, 404 for a missing tenant
 * (admin key only), so nothing about other tenants leaks through validation errors.
 */
export function guards(registry: Registry) {
  return {
    tenant: async (req: FastifyRequest, _reply: FastifyReply) => {
      const principal = await authenticate(req, registry);
      const tenant = await tenantAccess(principal, (req.params as { tenant: string }).tenant, registry);
      access.set(req, { principal, tenant });
    },
    admin: async (req: FastifyRequest, _reply: FastifyReply) => {
      const principal = await authenticate(req, registry);
      requireAdmin(principal);
      access.set(req, { principal });
    },
  };
}

/** The tenant a guarded request acts on. */
export function tenantOf(req: FastifyRequest): Tenant {
  const t = access.get(req)?.tenant;
  if (!t) throw new Error('tenantOf() on a route without the tenant guard');
  return t;
}
