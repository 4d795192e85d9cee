import type { FastifyInstance } from 'fastify';
import { parsePosition, parseVersion } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { ensureOwner, queryString } from '../http.ts';

/**
 * The shard's safe point (DESIGN.md, "Global order and the sequencer").
 *
 * - `GET /internal/v1/safe-point?atLeast=<position>&waitMs=<ms>` → `{ safePoint, highestCommitted }`.
 *   With `atLeast`, waits (at most `waitMs`, capped by configuration) until the safe
 *   point reaches it; answers with whatever it is then, so the caller compares.
 * - `GET /internal/v1/info` → `{ shard, epoch, safePoint, highestCommitted, environments }`.
 */
export function registerSafePointRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { safePoint, engine, ownership, options } = ctx;

  app.get('/safe-point', async (req, reply) => {
    await ensureOwner(ownership, req, undefined);
    const atLeastRaw = queryString(req.query, 'atLeast');
    const waitRaw = queryString(req.query, 'waitMs');
    let value = safePoint.current();
    if (atLeastRaw !== undefined) {
      const atLeast = parsePosition(atLeastRaw, 'atLeast');
      const waitMs = Math.min(waitRaw === undefined ? options.safePointMaxWaitMs : parseVersion(waitRaw, 'waitMs', 0), options.safePointMaxWaitMs);
      value = await safePoint.waitFor(atLeast, waitMs);
    }
    return reply.send({ safePoint: value.toString(), highestCommitted: engine.writerState().highestCommitted.toString() });
  });

  app.get('/info', async (_req, reply) => {
    return reply.send({
      shard: options.shardId,
      epoch: ownership.epoch,
      safePoint: safePoint.current().toString(),
      highestCommitted: engine.writerState().highestCommitted.toString(),
      environments: engine.environmentSizes(),
    });
  });
}
