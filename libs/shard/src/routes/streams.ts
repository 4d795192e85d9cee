import type { FastifyInstance } from 'fastify';
import { outcomeError } from '@skein/engine';
import { EVENTS_HEADER, parseDeleteMode, parseDirection, parseExpectedVersion, parseLimit, parseVersion, streamPageJson } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { ensureOwner, queryString } from '../http.ts';

type StreamParams = { partition: string; streamId: string };

/**
 * Streams.
 *
 * - `GET /internal/v1/partitions/:partition/streams/:streamId?from&direction&limit`
 *   → `{ events, version, next }` (the public shape; header `x-skein-events`: how many);
 *   `404 STREAM_NOT_FOUND`, `410 STREAM_DELETED`.
 * - `GET /internal/v1/partitions/:partition/streams/:streamId/state` → `{ version, deleted: "no"|"soft"|"hard" }`.
 * - `DELETE /internal/v1/partitions/:partition/streams/:streamId?mode=soft|hard&expectedVersion`
 *   → `204`; `404`, `409 WRONG_EXPECTED_VERSION`, `410`.
 */
export function registerStreamRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, ownership } = ctx;

  app.get<{ Params: StreamParams }>('/partitions/:partition/streams/:streamId', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    const fromRaw = queryString(req.query, 'from');
    const outcome = engine.readStream(partition, streamId, {
      from: fromRaw === undefined ? undefined : parseVersion(fromRaw, 'from'),
      direction: parseDirection(queryString(req.query, 'direction')),
      limit: parseLimit(queryString(req.query, 'limit')),
    });
    if (!outcome.ok) throw outcomeError(outcome);
    // The router forwards this body to the client as it is; the header spares it a parse to count.
    reply.header(EVENTS_HEADER, String(outcome.events.length));
    return reply.type('application/json; charset=utf-8').send(streamPageJson(outcome.events, outcome.version, outcome.next));
  });

  app.get<{ Params: StreamParams }>('/partitions/:partition/streams/:streamId/state', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    return reply.send(engine.streamState(partition, streamId));
  });

  app.delete<{ Params: StreamParams }>('/partitions/:partition/streams/:streamId', async (req, reply) => {
    const { partition, streamId } = req.params;
    await ensureOwner(ownership, req, partition);
    const outcome = await engine.deleteStream(partition, streamId, {
      mode: parseDeleteMode(queryString(req.query, 'mode')),
      expectedVersion: parseExpectedVersion(queryString(req.query, 'expectedVersion'), 'query'),
    });
    if (!outcome.ok) throw outcomeError(outcome);
    return reply.code(204).send();
  });
}
