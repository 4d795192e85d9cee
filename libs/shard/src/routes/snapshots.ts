import type { FastifyInstance } from 'fastify';
import { outcomeError } from '@skein/engine';
import { SkeinError, parseVersion } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { ensureOwner } from '../http.ts';

type StreamParams = { partition: string; streamId: string };

/**
 * Snapshots.
 *
 * - `PUT /internal/v1/partitions/:partition/streams/:streamId/snapshots/:version` body: any JSON
 *   → `204`; `404 STREAM_NOT_FOUND`; `400 VALIDATION_FAILED` beyond the stream's version.
 * - `GET /internal/v1/partitions/:partition/streams/:streamId/snapshots/latest` → `{ version, data }`; `404 SNAPSHOT_NOT_FOUND`.
 */
export function registerSnapshotRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, ownership } = ctx;

  app.put<{ Params: StreamParams & { version: string }; Body: unknown }>(
    '/partitions/:partition/streams/:streamId/snapshots/:version',
    async (req, reply) => {
      const { partition, streamId } = req.params;
      await ensureOwner(ownership, req, partition);
      const version = parseVersion(req.params.version, 'version');
      const outcome = await engine.putSnapshot(partition, streamId, version, req.body);
      if (!outcome.ok) throw outcomeError(outcome);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: StreamParams }>('/partitions/:partition/streams/:streamId/snapshots/latest', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    const snapshot = engine.latestSnapshot(partition, streamId);
    if (!snapshot) throw new SkeinError('SNAPSHOT_NOT_FOUND', 'the stream has no snapshot');
    return reply.send(snapshot);
  });
}
