import type { FastifyInstance } from 'fastify';
import { SkeinError } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { sendProblem } from '../http.ts';

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * - `GET /healthz`: the process is alive → `200 { status: "ok" }`.
 * - `GET /readyz`: the environments are open, storage takes writes and Redis answers PING →
 *   `200 { status: "ready" }`, otherwise `503 UNAVAILABLE` naming what is not ready (`check`:
 *   `engine`, `storage` with the errno or LMDB code in `storage`, or `redis`). A storage fault clears
 *   by itself once the engine's probe write succeeds (see DESIGN.md, "Storage faults").
 * - `GET /metrics`: Prometheus text format.
 */
export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/healthz', async (_req, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (ctx.isOpen && !ctx.isOpen()) {
      return sendProblem(reply, new SkeinError('UNAVAILABLE', 'the store is closed or closing', { retryAfter: 1, check: 'engine' }));
    }
    const fault = ctx.engine.storageFault();
    if (fault) {
      return sendProblem(
        reply,
        new SkeinError('UNAVAILABLE', `storage is faulted since ${new Date(fault.since).toISOString()}: ${fault.reason}`, {
          retryAfter: 1,
          check: 'storage',
          storage: fault.code,
        }),
      );
    }
    if (ctx.redis) {
      try {
        await withTimeout(ctx.redis.ping(), ctx.options.readyTimeoutMs);
      } catch {
        return sendProblem(reply, new SkeinError('UNAVAILABLE', 'Redis does not answer PING', { retryAfter: 1, check: 'redis' }));
      }
    }
    return reply.send({ status: 'ready' });
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await ctx.registry.metrics();
    return reply.type(ctx.registry.contentType).send(text);
  });
}
