import type { FastifyInstance } from 'fastify';
import { SkeinError, partitionsOf } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { guards } from '../guard.ts';
import * as schemas from '../schemas.ts';

/** Administration (API.md, admin key only): tenants, keys, the cluster's state. */
export function registerAdminRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { registry, topology, shards, control } = ctx;
  const guard = guards(registry);

  app.post<{ Body: { tenant: string; partitions?: number } }>('/admin/tenants', { schema: schemas.createTenantSchema, onRequest: guard.admin }, async (req, reply) => {
    // Placement first: a placement for a tenant that then fails to be created is harmless,
    // a tenant whose partitions have no recorded home is not. Both are recorded on the
    // shards before the 201 (control-plane.ts); after a wipe of Redis, the first call
    // rebuilds the topology and the tenants from the shards' records.
    await topology.place(partitionsOf(req.body.tenant, req.body.partitions ?? 1), control);
    const created = await registry.createTenant(req.body);
    req.log.info({ tenant: created.tenant, partitions: created.partitions }, 'tenant created');
    return reply.code(201).send(created);
  });

  app.get<{ Params: { tenant: string } }>('/admin/tenants/:tenant', { schema: schemas.getTenantSchema, onRequest: guard.admin }, async (req, reply) => {
    const tenant = await registry.getTenant(req.params.tenant);
    if (!tenant) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${req.params.tenant}`);
    const view = await topology.current();
    return reply.send({ ...tenant, placement: Object.fromEntries(partitionsOf(tenant.tenant, tenant.partitions).map((p) => [p, view.ownerOf(p)])) });
  });

  app.patch<{ Params: { tenant: string }; Body: unknown }>('/admin/tenants/:tenant', { schema: schemas.updateTenantSchema, onRequest: guard.admin }, async (req, reply) => {
    const updated = await registry.updateTenant(req.params.tenant, req.body);
    if (!updated) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${req.params.tenant}`);
    req.log.info({ tenant: updated.tenant, retention: updated.retention, quota: updated.quota ?? null }, 'tenant updated');
    return reply.send(updated);
  });

  app.post<{ Params: { tenant: string } }>('/admin/tenants/:tenant/keys', { schema: schemas.createKeySchema, onRequest: guard.admin }, async (req, reply) => {
    if (!(await registry.getTenant(req.params.tenant))) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${req.params.tenant}`);
    return reply.code(201).send(await registry.createKey(req.params.tenant));
  });

  app.delete<{ Params: { tenant: string; keyId: string } }>('/admin/tenants/:tenant/keys/:keyId', { schema: schemas.deleteKeySchema, onRequest: guard.admin }, async (req, reply) => {
    if (!(await registry.getTenant(req.params.tenant))) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${req.params.tenant}`);
    if (!(await registry.deleteKey(req.params.tenant, req.params.keyId))) throw new SkeinError('NOT_FOUND', 'no such key');
    req.log.info({ tenant: req.params.tenant, keyId: req.params.keyId }, 'api key revoked');
    return reply.code(204).send();
  });

  app.get('/admin/cluster', { schema: schemas.clusterSchema, onRequest: guard.admin }, async (_req, reply) => {
    const view = await topology.refresh();
    const placements = view.topology.placements ?? {};
    const shardInfo = await Promise.all(
      view.topology.shards.map(async ({ id, url, state = 'active' }) => {
        const partitions = Object.keys(placements).filter((p) => placements[p] === id).sort();
        try {
          const info = await shards.get(id).info();
          return { id, url, state, healthy: true, epoch: info.epoch, safePoint: info.safePoint.toString(), highestCommitted: info.highestCommitted.toString(), partitions };
        } catch {
          return { id, url, state, healthy: false, partitions };
        }
      }),
    );
    const safePoints = shardInfo.filter((s) => s.healthy).map((s) => BigInt(s.safePoint!));
    const watermark = shardInfo.every((s) => s.healthy) && safePoints.length > 0 ? safePoints.reduce((a, b) => (b < a ? b : a)).toString() : null;
    let sequencer: string | null = null;
    try {
      sequencer = (await ctx.store.readCounter()).toString();
    } catch {
      sequencer = null;
    }
    return reply.send({ epoch: view.topology.epoch, shards: shardInfo, sequencer: { position: sequencer }, watermark });
  });
}
