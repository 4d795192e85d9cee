import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SkeinError, parsePosition, parseVersion, validatePartition, validateStreamId } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { ensureOwner, parseTypes, queryString } from '../http.ts';
import { startSubscription, type SubscriptionSink, type SubscriptionTarget } from '../subscription.ts';

function lastEventId(req: FastifyRequest): string | undefined {
  const raw = req.headers['last-event-id'];
  return typeof raw === 'string' && raw !== '' ? raw : undefined;
}

/**
 * Live subscriptions, as Server-Sent Events: catch-up from the start point, then live,
 * with no gap and no duplicate between the two.
 *
 * `GET /internal/v1/subscribe?` one of
 * - `partition=&streamId=&from=<version>|end` a stream (`id:` is the version);
 * - `partition=&fromPosition=<position>|end[&category&types]` a partition log;
 * - `fromPosition=<position>|end[&category&types]` the shard log (`id:` is the position).
 *
 * `Last-Event-ID` resumes after that id and wins over `from`/`fromPosition`. Without a
 * start point, from the beginning. A hard-deleted stream is `410` (and ends a running
 * stream subscription). Heartbeat comments every `heartbeatMs`; a consumer that stops
 * reading is disconnected after `slowSubscriberMs`.
 */
export function registerSubscribeRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, ownership, metrics, options } = ctx;

  app.get('/subscribe', async (req, reply) => {
    const partition = queryString(req.query, 'partition');
    const streamId = queryString(req.query, 'streamId');
    await ensureOwner(ownership, req, partition);
    const resume = lastEventId(req);
    let target: SubscriptionTarget;

    if (streamId !== undefined) {
      if (partition === undefined) throw new SkeinError('VALIDATION_FAILED', 'a stream subscription needs partition', { field: 'partition' });
      validatePartition(partition);
      validateStreamId(streamId);
      const state = engine.streamState(partition, streamId);
      if (state.deleted === 'hard') throw new SkeinError('STREAM_DELETED', 'the stream was hard-deleted');
      const fromRaw = queryString(req.query, 'from');
      let from: number;
      if (resume !== undefined) from = parseVersion(resume, 'Last-Event-ID', 0) + 1;
      else if (fromRaw === undefined) from = 1;
      else if (fromRaw === 'end') from = state.version + 1;
      else from = parseVersion(fromRaw, 'from');
      target = { kind: 'stream', partition, streamId, from };
    } else {
      const fromRaw = queryString(req.query, 'fromPosition');
      let fromPosition: bigint;
      if (resume !== undefined) fromPosition = parsePosition(resume, 'Last-Event-ID') + 1n;
      else if (fromRaw === undefined) fromPosition = 0n;
      else if (fromRaw === 'end') fromPosition = engine.writerState().highestCommitted + 1n;
      else fromPosition = parsePosition(fromRaw, 'fromPosition');
      const category = queryString(req.query, 'category') || undefined;
      const types = parseTypes(queryString(req.query, 'types'));
      if (partition !== undefined) validatePartition(partition);
      target = partition === undefined ? { kind: 'shard', fromPosition, category, types } : { kind: 'partition', partition, fromPosition, category, types };
    }

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': subscribed\n\n');

    let gone = false;
    const drainWaiters = new Set<(ok: boolean) => void>();
    const sink: SubscriptionSink = {
      write: (chunk) => (gone ? false : res.write(chunk)),
      waitDrain: (timeoutMs) =>
        new Promise<boolean>((resolve) => {
          if (gone) return resolve(false);
          const finish = (ok: boolean) => {
            clearTimeout(timer);
            res.off('drain', onDrain);
            drainWaiters.delete(finish);
            resolve(ok);
          };
          const onDrain = () => finish(true);
          const timer = setTimeout(() => finish(false), timeoutMs);
          res.once('drain', onDrain);
          drainWaiters.add(finish);
        }),
    };
    const subscription = startSubscription(engine, target, sink, { heartbeatMs: options.heartbeatMs, slowMs: options.slowSubscriberMs });
    const end = () => {
      subscription.close();
      if (!res.writableEnded) res.end();
    };
    ctx.subscriptions.add(end);
    metrics.subscribers.inc();
    res.once('close', () => {
      gone = true;
      for (const finish of drainWaiters) finish(false);
      subscription.close();
    });

    const why = await subscription.done;
    ctx.subscriptions.delete(end);
    metrics.subscribers.dec();
    if (why === 'slow') {
      metrics.subscribersDropped.inc();
      req.log.info({ partition, streamId }, 'slow subscriber disconnected');
      res.destroy();
    } else if (!res.writableEnded) {
      res.end();
    }
  });
}
