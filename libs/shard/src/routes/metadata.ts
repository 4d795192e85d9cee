import type { FastifyInstance } from 'fastify';
import { outcomeError } from '@skein/engine';
import { validateStreamMetadata } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { ensureOwner } from '../http.ts';

type StreamParams = { partition: string; streamId: string };

/**
 * Stream metadata.
 *
 * - `GET /internal/v1/partitions/:partition/streams/:streamId/metadata` → the metadata object (`{}` when none is set).
 * - `PUT /internal/v1/partitions/:partition/streams/:streamId/metadata` `{ maxAge?, maxCount?, truncateBefore?, custom? }`
 *   replaces it → `204`; `400 VALIDATION_FAILED`, `410 STREAM_DELETED`.
 */
export function registerMetadataRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, ownership } = ctx;

  app.get<{ Params: StreamParams }>('/partitions/:partition/streams/:streamId/metadata', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    return reply.send(engine.getMetadata(partition, streamId) ?? {});
  });

  app.put<{ Params: StreamParams; Body: unknown }>('/partitions/:partition/streams/:streamId/metadata', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    const outcome = await engine.setMetadata(partition, streamId, validateStreamMetadata(req.body));
    if (!outcome.ok) throw outcomeError(outcome);
    return reply.code(204).send();
  });
}
