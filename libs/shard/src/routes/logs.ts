import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ReadLogOptions } from '@skein/engine';
import { SkeinError, parseLimit, parsePosition } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { callerEpoch, ensureOwner, parseTypes, queryString, toWireLoggedEvent } from '../http.ts';
import { ownedLogFilter } from '../owner-check.ts';

function logOptions(req: FastifyRequest): ReadLogOptions {
  const from = queryString(req.query, 'fromPosition');
  const to = queryString(req.query, 'toPosition');
  return {
    fromPosition: from === undefined ? 0n : parsePosition(from, 'fromPosition'),
    toPosition: to === undefined ? undefined : parsePosition(to, 'toPosition'),
    limit: parseLimit(queryString(req.query, 'limit')),
    category: queryString(req.query, 'category') || undefined,
    types: parseTypes(queryString(req.query, 'types')),
    maxBytes: parseMaxBytes(queryString(req.query, 'maxBytes')),
  };
}

/** A page's byte budget asked by the router (a share of its own); absent: the engine's. */
function parseMaxBytes(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new SkeinError('VALIDATION_FAILED', 'maxBytes must be an integer ≥ 1', { field: 'maxBytes' });
  return n;
}

/**
 * Logs in global order (positions ascending; a shard's own log has no holes it could
 * still fill: batches commit in position order).
 *
 * - `GET /internal/v1/partitions/:partition/log?fromPosition&toPosition&limit&category&types`
 * - `GET /internal/v1/log?fromPosition&toPosition&limit&category&types` (every partition of the shard)
 *
 * → `{ events: [event + partition], next, truncated? }`; `next` is the fromPosition of the following
 * page (equal to fromPosition on an empty page); `truncated` says the page stopped at the
 * engine's byte budget (readPageBytes) before `limit`, so events may follow. `toPosition` is inclusive: the router
 * passes the stable watermark.
 */
export function registerLogRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, ownership } = ctx;

  app.get<{ Params: { partition: string } }>('/partitions/:partition/log', async (req, reply) => {
    const { partition } = req.params;
    await ensureOwner(ownership, req, partition);
    const page = engine.readPartitionLog(partition, logOptions(req));
    return reply.send({ events: page.events.map(toWireLoggedEvent), next: page.next.toString(), ...(page.truncated ? { truncated: true } : {}) });
  });

  // Only the partitions this shard owns (ownedLogFilter): a partition copied here by a move
  // before its flip, or left on its former owner until cleanup, shows in one shard log only.
  app.get('/log', async (req, reply) => {
    const includePartition = await ownedLogFilter(ownership, callerEpoch(req));
    const page = engine.readShardLog({ ...logOptions(req), includePartition });
    return reply.send({ events: page.events.map(toWireLoggedEvent), next: page.next.toString(), ...(page.truncated ? { truncated: true } : {}) });
  });
}
