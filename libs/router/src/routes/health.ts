import type { FastifyInstance } from 'fastify';
import type { RouteContext } from '../context.ts';

/**
 * - `GET /healthz`: the process is alive.
 * - `GET /readyz`: 200 only when the control store (Redis or embedded) answers and every shard of the topology is ready.
 * - `GET /metrics`: Prometheus text format.
 */
export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const problems: string[] = [];
    try {
      await ctx.store.ping();
    } catch {
      problems.push(ctx.store.kind === 'redis' ? 'redis' : 'control store');
    }
    try {
      const view = await ctx.topology.refresh();
      const down = await Promise.all(
        view.topology.shards.map(async (s) => {
          try {
            const res = await fetch(`${s.url}/readyz`, { signal: AbortSignal.timeout(2000) });
            return res.ok ? null : s.id;
          } catch {
            return s.id;
          }
        }),
      );
      problems.push(...down.filter((d): d is string => d !== null).map((id) => `shard ${id}`));
      if (view.topology.shards.length === 0) problems.push('no shards');
    } catch {
      problems.push('topology');
    }
    if (problems.length > 0) return reply.code(503).header('retry-after', '1').send({ status: 'not ready', problems });
    return reply.send({ status: 'ready' });
  });

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    return reply.type(ctx.metrics.contentType).send(await ctx.metrics.metrics());
  });
}
