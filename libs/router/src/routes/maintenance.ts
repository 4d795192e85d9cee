import type { FastifyInstance } from 'fastify';
import { JOB_KINDS, JOB_STATES, MAINTENANCE_KINDS, SkeinError, partitionsOf, validatePartition, validationError, type JobData, type JobKind, type JobState, type MaintenanceKind } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { guards } from '../guard.ts';
import type { JobQueues } from '../jobs.ts';

const security = [{ bearer: [] }];
const runSchema = {
  summary: 'Run maintenance now on the owning shards (admin)',
  tags: ['admin'],
  security,
  body: {
    type: 'object',
    required: ['kind'],
    additionalProperties: false,
    properties: {
      kind: { type: 'string', enum: [...MAINTENANCE_KINDS] },
      tenant: { type: 'string', minLength: 1, maxLength: 128 },
      partition: { type: 'string', minLength: 1, maxLength: 256 },
    },
  },
} as const;
const listSchema = {
  summary: 'Recent maintenance jobs of every shard queue (admin)',
  tags: ['admin'],
  security,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      state: { type: 'string', enum: [...JOB_STATES] },
      kind: { type: 'string', enum: [...JOB_KINDS] },
      limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    },
  },
} as const;

function limitOf(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw validationError('limit', 'limit must be an integer from 1 to 1000');
  return n;
}

/** Maintenance, jobs and backups (API.md), admin key only: jobs run on the shards' queues. */
export function registerMaintenanceRoutes(app: FastifyInstance, ctx: RouteContext, jobs: JobQueues): void {
  const guard = guards(ctx.registry);
  const { registry, topology } = ctx;

  app.post<{ Body: { kind: MaintenanceKind; tenant?: string; partition?: string } }>('/admin/maintenance', { schema: runSchema, onRequest: guard.admin }, async (req, reply) => {
    const { kind, tenant, partition } = req.body;
    const view = await topology.refresh();
    let partitions: string[] | null = null;
    if (tenant !== undefined) {
      const t = await registry.getTenant(tenant);
      if (!t) throw new SkeinError('TENANT_NOT_FOUND', `no tenant ${tenant}`);
      partitions = partitionsOf(t.tenant, t.partitions);
      if (partition !== undefined && !partitions.includes(partition)) throw validationError('partition', `partition ${partition} is not one of tenant ${tenant}'s`);
    }
    if (partition !== undefined) partitions = [validatePartition(partition, 'partition')];
    partitions ??= Object.keys(view.topology.placements ?? {}).sort();
    const epoch = view.topology.epoch;
    const owners = new Map<string, string>();
    for (const p of partitions) {
      const owner = view.ownerOf(p);
      if (owner !== null) owners.set(p, owner);
    }
    const work: JobData[] =
      kind === 'retention'
        ? [...owners].map(([p, shard]) => ({ kind, shard, partition: p, epoch }))
        : // A compaction acts on a shard's buckets, which hold all its partitions: one per owning shard.
          [...new Set(tenant === undefined && partition === undefined ? view.topology.shards.map((s) => s.id) : owners.values())].map((shard) => ({ kind, shard, epoch }));
    const enqueued = await jobs.enqueue(work);
    req.log.info({ kind, tenant, partition, jobs: enqueued.length }, 'maintenance enqueued');
    return reply.code(202).send({ jobs: enqueued });
  });

  app.get<{ Querystring: { state?: JobState; kind?: JobKind; limit?: string } }>('/admin/jobs', { schema: listSchema, onRequest: guard.admin }, async (req, reply) => {
    const view = await topology.current();
    const limit = limitOf(req.query.limit, 100);
    const list = await jobs.list(view.topology.shards.map((s) => s.id), { ...(req.query.state ? { state: req.query.state } : {}), ...(req.query.kind ? { kind: req.query.kind } : {}), limit });
    return reply.send({ jobs: list });
  });

  app.get<{ Params: { id: string } }>('/admin/jobs/:id', { schema: { summary: 'One maintenance job (admin)', tags: ['admin'], security }, onRequest: guard.admin }, async (req, reply) => {
    const job = await jobs.get(req.params.id);
    if (!job) throw new SkeinError('NOT_FOUND', `no job ${req.params.id}`);
    return reply.send(job);
  });

  app.post('/admin/backups', { schema: { summary: 'Back up every shard now (admin)', tags: ['admin'], security }, onRequest: guard.admin }, async (req, reply) => {
    const view = await topology.refresh();
    const shards = view.topology.shards.map((s) => s.id);
    const backup = await jobs.createBackup(shards, view.topology.epoch);
    req.log.info({ backup: backup.id, shards: shards.length }, 'backup started');
    return reply.code(202).send(backup);
  });

  app.get<{ Querystring: { limit?: string } }>(
    '/admin/backups',
    { schema: { summary: 'Backups and their position per shard (admin)', tags: ['admin'], security, querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^[0-9]{1,4}$' } } } }, onRequest: guard.admin },
    async (req, reply) => reply.send({ backups: await jobs.listBackups(limitOf(req.query.limit, 100)) }),
  );
}
