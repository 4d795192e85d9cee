import type { FastifyInstance } from 'fastify';
import { parseLimit, parsePosition, partitionsOf, tenantOfPartition } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { readGlobal } from '../global-read.ts';
import { guards, tenantOf } from '../guard.ts';
import * as schemas from '../schemas.ts';

type LogQuery = { fromPosition?: string; limit?: string; category?: string; types?: string };

/**
 * Logs in global order (API.md): a tenant's events over all its partitions, and the
 * whole cluster's (admin), merged by position up to the stable watermark.
 */
export function registerLogRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const guard = guards(ctx.registry);

  app.get<{ Params: { tenant: string }; Querystring: LogQuery }>('/tenants/:tenant/events', { schema: schemas.tenantLogSchema, onRequest: guard.tenant }, async (req, reply) => {
    const tenant = tenantOf(req);
    const page = await readGlobal(ctx, {
      partitions: partitionsOf(tenant.tenant, tenant.partitions),
      fromPosition: parsePosition(req.query.fromPosition ?? '0'),
      limit: parseLimit(req.query.limit),
      ...(req.query.category !== undefined ? { category: req.query.category } : {}),
      ...(req.query.types !== undefined ? { types: req.query.types } : {}),
    });
    ctx.stats.eventsRead.inc(page.events.length);
    return reply.send({ events: page.events.map(({ partition: _p, ...e }) => e), next: page.next.toString() });
  });

  app.get<{ Querystring: LogQuery }>('/events', { schema: schemas.clusterLogSchema, onRequest: guard.admin }, async (req, reply) => {
    const page = await readGlobal(ctx, {
      fromPosition: parsePosition(req.query.fromPosition ?? '0'),
      limit: parseLimit(req.query.limit),
      ...(req.query.category !== undefined ? { category: req.query.category } : {}),
      ...(req.query.types !== undefined ? { types: req.query.types } : {}),
    });
    ctx.stats.eventsRead.inc(page.events.length);
    return reply.send({ events: page.events.map(({ partition, ...e }) => ({ ...e, tenant: tenantOfPartition(partition) })), next: page.next.toString() });
  });
}
