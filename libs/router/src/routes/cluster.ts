import type { FastifyInstance } from 'fastify';
import { SkeinError, validatePartition } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { guards } from '../guard.ts';
import type { MoveCoordinator } from '../moves/coordinator.ts';
import type { Membership } from '../moves/membership.ts';

const security = [{ bearer: [] }];
const shardId = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' } as const;
const addShardSchema = {
  summary: 'Add an empty shard (admin)',
  tags: ['admin'],
  security,
  body: { type: 'object', required: ['id', 'url'], additionalProperties: false, properties: { id: shardId, url: { type: 'string', minLength: 1, maxLength: 2048, pattern: '^https?://' } } },
} as const;
const shardParams = { type: 'object', required: ['id'], properties: { id: shardId } } as const;
const moveSchema = {
  summary: 'Move a partition to another shard (admin)',
  tags: ['admin'],
  security,
  params: { type: 'object', required: ['partition'], properties: { partition: { type: 'string', minLength: 1, maxLength: 256 } } },
  body: { type: 'object', required: ['to'], additionalProperties: false, properties: { to: shardId } },
} as const;
const rebalanceSchema = {
  summary: 'Move partitions to where rendezvous placement asks (admin)',
  tags: ['admin'],
  security,
  body: { type: 'object', additionalProperties: false, properties: { dryRun: { type: 'boolean' } } },
} as const;

/** Membership and partition moves (API.md, "Membership and partition moves"), admin key only. */
export function registerClusterRoutes(app: FastifyInstance, ctx: RouteContext, deps: { moves: MoveCoordinator; membership: Membership }): void {
  const guard = guards(ctx.registry);
  const { moves, membership } = deps;

  app.post<{ Body: { id: string; url: string } }>('/admin/cluster/shards', { schema: addShardSchema, onRequest: guard.admin }, async (req, reply) => {
    await membership.add(req.body.id, req.body.url);
    req.log.info({ shard: req.body.id, url: req.body.url }, 'shard added');
    return reply.code(201).send({ id: req.body.id, url: req.body.url, state: 'active' });
  });

  app.post<{ Params: { id: string } }>('/admin/cluster/shards/:id/drain', { schema: { summary: 'Move every partition off a shard (admin)', tags: ['admin'], security, params: shardParams }, onRequest: guard.admin }, async (req, reply) => {
    await membership.drain(req.params.id);
    const plan = (await moves.plan()).filter((m) => m.from === req.params.id);
    req.log.info({ shard: req.params.id, moves: plan.length }, 'shard draining');
    return reply.code(202).send({ moves: await moves.execute(plan) });
  });

  app.delete<{ Params: { id: string } }>('/admin/cluster/shards/:id', { schema: { summary: 'Remove a shard that owns nothing (admin)', tags: ['admin'], security, params: shardParams }, onRequest: guard.admin }, async (req, reply) => {
    await membership.remove(req.params.id);
    req.log.info({ shard: req.params.id }, 'shard removed');
    return reply.code(204).send();
  });

  app.post<{ Params: { partition: string }; Body: { to: string } }>('/admin/partitions/:partition/move', { schema: moveSchema, onRequest: guard.admin }, async (req, reply) => {
    const partition = validatePartition(req.params.partition, 'partition');
    const move = await moves.start(partition, req.body.to);
    return reply.code(202).send(move);
  });

  app.get<{ Params: { id: string } }>('/admin/moves/:id', { schema: { summary: 'A partition move (admin)', tags: ['admin'], security }, onRequest: guard.admin }, async (req, reply) => {
    const move = await moves.get(req.params.id);
    if (!move) throw new SkeinError('NOT_FOUND', `no move ${req.params.id}`);
    return reply.send(move);
  });

  app.post<{ Body: { dryRun?: boolean } | null }>('/admin/cluster/rebalance', { schema: rebalanceSchema, onRequest: guard.admin }, async (req, reply) => {
    const plan = await moves.plan();
    if (req.body?.dryRun) return reply.send({ moves: plan });
    return reply.code(202).send({ moves: await moves.execute(plan) });
  });
}
