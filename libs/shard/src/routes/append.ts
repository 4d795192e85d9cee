import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { outcomeError, type AppendOutcome } from '@skein/engine';
import {
  APPEND_BATCH_LIMITS,
  SkeinError,
  appendResultToWire,
  parseExpectedVersion,
  toProblem,
  toWireAppendResult,
  validateIdempotencyKey,
  validatePartition,
  validateProposedEvents,
  validateStreamId,
  validationError,
  type ShardAppend,
} from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { asSkeinError, callerEpoch, ensureOwner, sendProblem } from '../http.ts';
import { appendBatch } from '../local-api.ts';

/** Most appends one batch request may carry (routers send at most APPEND_BATCH_LIMITS.maxAppends). */
export const MAX_APPENDS_PER_REQUEST = Math.max(10_000, APPEND_BATCH_LIMITS.maxAppends);

type Result = 'written' | 'duplicate' | 'rejected' | 'failed';

interface AppendBody {
  expectedVersion?: unknown;
  events?: unknown;
  idempotencyKey?: unknown;
}

/** One entry of a batch body, checked as the public API checks an append. */
function parseAppend(a: unknown, i: number): ShardAppend {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) throw validationError(`appends[${i}]`, `appends[${i}] must be an object`);
  const { partition, streamId, expectedVersion, events, idempotencyKey }: { [k: string]: unknown } = { ...a };
  if (typeof partition !== 'string') throw validationError(`appends[${i}].partition`, 'partition must be a string');
  if (typeof streamId !== 'string') throw validationError(`appends[${i}].streamId`, 'streamId must be a string');
  validatePartition(partition);
  validateStreamId(streamId);
  // Measured here, so the engine takes it as parsed (appendParsed) instead of walking it again.
  const sizes: number[] = [];
  const append: ShardAppend = { partition, streamId, expectedVersion: parseExpectedVersion(expectedVersion), events: validateProposedEvents(events, undefined, sizes), sizes };
  if (idempotencyKey !== undefined) append.idempotencyKey = validateIdempotencyKey(idempotencyKey);
  return append;
}

function contentLength(req: FastifyRequest): number {
  const n = Number(req.headers['content-length']);
  return Number.isFinite(n) ? n : 0;
}

/**
 * Appends.
 *
 * - `POST /internal/v1/append` `{ appends: [{ partition, streamId, expectedVersion?, events, idempotencyKey? }] }`
 *   → `200 { results: [...] }`, one entry per append in request order (`appendResultToWire`:
 *   `{ ok: true, streamId, firstVersion, lastVersion, firstPosition, lastPosition, duplicate? }`
 *   or a problem document with `ok: false`). Every append enters the group-commit batcher in the same
 *   tick, so they share batches. A stale epoch refuses the whole request (421); a
 *   partition this shard does not own refuses that entry only.
 * - `POST /internal/v1/partitions/:partition/streams/:streamId/events`
 *   `{ expectedVersion?, events, idempotencyKey? }` (or header `Idempotency-Key`)
 *   → `201` result, `200` with `duplicate: true`, or a problem document.
 */
export function registerAppendRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, metrics, ownership, options } = ctx;
  const core = { shardId: options.shardId, engine, ownership, safePoint: ctx.safePoint, metrics, safePointMaxWaitMs: options.safePointMaxWaitMs };

  /** Bytes of append requests received and not yet answered (options.maxPendingBytes bounds it). */
  let pendingBytes = 0;
  /** Reservations of requests whose handler has not started yet. */
  const reserved = new WeakMap<FastifyRequest, () => void>();

  /**
   * Before the body is read: reserve its declared length (the body limit when chunked), or
   * refuse with 503 and never read it. Released once the handler is done (the engine
   * answered every append in it), or when the caller leaves before the handler started:
   * a caller that gives up on a queued request does not free what the engine still holds.
   */
  async function admit(req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const declared = Number(req.headers['content-length']);
    const bytes = Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, options.maxBodyBytes) : options.maxBodyBytes;
    // An idle shard admits any one request (config keeps the bound ≥ the body limit).
    if (pendingBytes > 0 && pendingBytes + bytes > options.maxPendingBytes) {
      metrics.appendsOverCapacity.inc();
      throw new SkeinError('UNAVAILABLE', 'the shard holds as many append bytes as it may; retry later', { retryAfter: 1 });
    }
    pendingBytes += bytes;
    let held = true;
    const release = () => {
      if (held) pendingBytes -= bytes;
      held = false;
    };
    reserved.set(req, release);
    reply.raw.once('close', () => {
      if (reserved.delete(req)) release();
    });
    return payload;
  }

  async function holding<T>(req: FastifyRequest, handle: () => Promise<T>): Promise<T> {
    const release = reserved.get(req);
    reserved.delete(req);
    try {
      return await handle();
    } finally {
      release?.();
    }
  }

  function settle(outcome: AppendOutcome, started: number): { status: number; body: Record<string, unknown>; result: Result } {
    if (outcome.ok) {
      const result: Result = outcome.duplicate ? 'duplicate' : 'written';
      metrics.appendSeconds.observe({ result }, (performance.now() - started) / 1000);
      return { status: outcome.duplicate ? 200 : 201, body: toWireAppendResult(outcome), result };
    }
    metrics.appendSeconds.observe({ result: 'rejected' }, (performance.now() - started) / 1000);
    const problem = toProblem(outcomeError(outcome));
    return { status: problem.status, body: problem, result: 'rejected' };
  }

  function failed(err: unknown, started: number): { status: number; body: Record<string, unknown>; result: Result } {
    const e = asSkeinError(err);
    const result: Result = e.status >= 500 ? 'failed' : 'rejected';
    metrics.appendSeconds.observe({ result }, (performance.now() - started) / 1000);
    return { status: e.status, body: toProblem(e), result };
  }

  app.post<{ Params: { partition: string; streamId: string }; Body: AppendBody }>(
    '/partitions/:partition/streams/:streamId/events',
    { preParsing: admit },
    async (req, reply) =>
      holding(req, async () => {
        const started = performance.now();
        const { partition, streamId } = req.params;
        await ensureOwner(ownership, req, partition);
        const body = req.body;
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw validationError('body', 'the body must be a JSON object');
        const headerKey = req.headers['idempotency-key'];
        const idempotencyKey = (typeof headerKey === 'string' ? headerKey : undefined) ?? (body.idempotencyKey as string | undefined);
        let outcome: AppendOutcome;
        try {
          outcome = await engine.append(partition, streamId, {
            expectedVersion: parseExpectedVersion(body.expectedVersion),
            events: validateProposedEvents(body.events),
            ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
          });
        } catch (err) {
          const f = failed(err, started);
          if (f.status >= 500) req.log.warn({ err, partition, streamId }, 'append failed');
          return sendProblem(reply, err);
        }
        const s = settle(outcome, started);
        if (s.result === 'written') {
          metrics.eventsAppended.inc(outcome.ok ? outcome.lastVersion - outcome.firstVersion + 1 : 0);
          metrics.bytesAppended.inc(contentLength(req));
        }
        if (!outcome.ok) return sendProblem(reply, outcomeError(outcome));
        return reply.code(s.status).send(s.body);
      }),
  );

  app.post<{ Body: { appends?: unknown } }>('/append', { preParsing: admit }, async (req, reply) =>
    holding(req, async () => {
      const epoch = callerEpoch(req);
      const appends = req.body?.appends;
      if (!Array.isArray(appends)) throw validationError('appends', 'appends must be an array');
      if (appends.length > MAX_APPENDS_PER_REQUEST) throw validationError('appends', `at most ${MAX_APPENDS_PER_REQUEST} appends per request`);
      // Parsed once here, at the edge of the shard; a malformed entry refuses that entry only.
      const parsed = appends.map((a: unknown, i: number) => {
        try {
          return parseAppend(a, i);
        } catch (err) {
          return asSkeinError(err);
        }
      });
      const valid = parsed.filter((a): a is ShardAppend => !(a instanceof SkeinError));
      // A router sends a shard one batch at a time: its appends are `batched`.
      const answered = await appendBatch(core, valid, epoch, contentLength(req), true);
      let next = 0;
      const results = parsed.map((a) => appendResultToWire(a instanceof SkeinError ? { ok: false, error: a } : answered[next++]!));
      return reply.code(200).send({ results });
    }),
  );
}
