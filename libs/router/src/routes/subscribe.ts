import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SkeinError, isSkeinError, partitionOf, partitionsOf, parsePosition, tenantOfPartition, validateStreamId, type WireEvent } from '@skein/protocol';
import type { RouteContext } from '../context.ts';
import { readGlobal } from '../global-read.ts';
import { guards, tenantOf } from '../guard.ts';
import { authenticate } from '../http.ts';
import { openSse, type SseStream } from '../sse.ts';
import * as schemas from '../schemas.ts';

const PAGE = 500;
/**
 * How often an open subscription re-authenticates its key. The registry answers from a
 * cache it keeps for 1 s and clears on any router's revocation, so Redis sees at most one
 * look-up per key per second, and a revoked key's subscriptions end within 1.5 s even
 * when the revocation announcement was missed.
 */
const REAUTHENTICATE_MS = 500;

function lastEventId(req: FastifyRequest): string | undefined {
  const v = req.headers['last-event-id'];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * Subscriptions over SSE (API.md "Subscriptions"): catch-up from the start point, then
 * live. Both phases are one loop reading pages after the last event sent (by version
 * for a stream, by position up to the stable watermark for logs), so there is no seam
 * to lose or repeat an event at. The loop never reads ahead of what the socket has
 * taken; a subscriber whose socket stays backed up past the grace period, or buffers
 * past the bound, is cut off. A subscription whose key is revoked ends.
 */
export function registerSubscriptionRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const guard = guards(ctx.registry);
  const { shards, options, watermarks } = ctx;

  /** Counts the subscription in the open gauge until it closes. */
  function track(sse: SseStream, kind: 'stream' | 'tenant' | 'cluster'): void {
    ctx.stats.subscriptions.inc({ kind });
    void sse.closed.then(() => ctx.stats.subscriptions.dec({ kind }));
  }

  /** Counts a page sent; the age of its newest event is how far behind live the subscriber is. */
  function sent(events: readonly { timestamp: string }[]): void {
    ctx.stats.eventsRead.inc(events.length);
    const newest = events.at(-1);
    if (newest) ctx.stats.subscriptionLagSeconds.observe(Math.max(0, Date.now() - Date.parse(newest.timestamp)) / 1000);
  }

  /**
   * Sends page after page; when caught up, waits on the watermark hub until the shards
   * involved have moved past what the last page saw (or the subscription or the router
   * closes), then reads again.
   */
  async function pump(sse: SseStream, nextPage: () => Promise<number>, moreAfter: (until: Promise<void>) => Promise<unknown>): Promise<void> {
    const until = Promise.race([sse.closed, ctx.closing]);
    let reason: string | undefined;
    try {
      while (sse.open) {
        const sent = await nextPage();
        if (!sse.open) break;
        if (sent === 0) await moreAfter(until);
        else await sse.drained();
      }
    } catch (err) {
      // A shard or Redis that went away ends the subscription; the client resumes with Last-Event-ID.
      app.log.info({ err: isSkeinError(err) ? { code: err.code } : err }, 'subscription ended');
      reason = 'unavailable';
    } finally {
      sse.close(reason);
    }
  }

  function start(req: FastifyRequest, reply: FastifyReply): SseStream {
    const sse = openSse(reply, {
      heartbeatMs: options.heartbeatMs,
      maxBufferedBytes: options.subscriberBufferBytes,
      slowMs: options.slowSubscriberMs,
      onCutOff: () => {
        ctx.stats.slowSubscribersCut.inc();
        req.log.info({ url: req.url }, 'slow subscriber disconnected');
      },
    });
    void ctx.closing.then(() => sse.close('router stopping'));
    const reauthenticate = setInterval(() => {
      authenticate(req, ctx.registry).then(
        () => {},
        (err: unknown) => {
          // Only a key the registry no longer knows ends it; Redis away is not a revocation.
          if (!isSkeinError(err, 'UNAUTHENTICATED') || !sse.open) return;
          ctx.stats.revokedSubscriptionsClosed.inc();
          sse.close('key revoked');
        },
      );
    }, REAUTHENTICATE_MS);
    reauthenticate.unref();
    void sse.closed.then(() => clearInterval(reauthenticate));
    return sse;
  }

  app.get<{ Params: { tenant: string; stream: string }; Querystring: { from?: string } }>(
    '/tenants/:tenant/streams/:stream/subscribe',
    { schema: schemas.subscribeStreamSchema, onRequest: guard.tenant },
    async (req, reply) => {
      const stream = validateStreamId(req.params.stream, 'stream');
      const tenant = tenantOf(req);
      const partition = partitionOf(tenant.tenant, tenant.partitions, stream);
      const state = await shards.forPartition(partition, (shard) => shard.streamState(partition, stream));
      if (state.deleted === 'hard') throw new SkeinError('STREAM_DELETED', 'the stream was hard-deleted');
      const resume = lastEventId(req);
      let from: number;
      if (resume !== undefined) {
        if (!/^[0-9]{1,15}$/.test(resume)) throw new SkeinError('VALIDATION_FAILED', 'Last-Event-ID must be a stream version', { field: 'Last-Event-ID' });
        from = Number(resume) + 1;
      } else from = req.query.from === 'end' ? state.version + 1 : Number(req.query.from ?? '1');

      ctx.stats.subscriptionsOpened.inc({ kind: 'stream' });
      const sse = start(req, reply);
      track(sse, 'stream');
      // `end` resolved to a version: a reconnect resumes after it, not at a later end.
      if (resume === undefined && req.query.from === 'end') sse.mark(String(from - 1));
      // The owner's safe point before each read: anything the read missed commits above it.
      let owner = '';
      let seen = 0n;
      await pump(
        sse,
        async () => {
          owner = (await ctx.topology.current()).ownerOf(partition) ?? '';
          seen = watermarks.current(owner);
          let page: { events: WireEvent[] };
          try {
            page = await shards.forPartition(partition, (shard) => shard.readStream(partition, stream, { from, limit: PAGE }));
          } catch (err) {
            if (isSkeinError(err, 'STREAM_NOT_FOUND')) return 0; // not there yet (or soft-deleted): wait for it
            throw err;
          }
          for (const e of page.events) {
            sse.send(e.type, String(e.version), e);
            from = e.version + 1;
          }
          sent(page.events);
          return page.events.length;
        },
        (until) => watermarks.next(owner ? [owner] : [], seen, until),
      );
    },
  );

  async function logSubscription(
    req: FastifyRequest<{ Querystring: { fromPosition?: string; category?: string; types?: string } }>,
    reply: FastifyReply,
    partitions: readonly string[] | undefined,
    withTenant: boolean,
  ): Promise<void> {
    const resume = lastEventId(req);
    let from: bigint;
    if (resume !== undefined) from = parsePosition(resume, 'Last-Event-ID') + 1n;
    else if (req.query.fromPosition === 'end') {
      const probe = await readGlobal(ctx, { ...(partitions ? { partitions } : {}), fromPosition: 0n, limit: 1 });
      from = probe.watermark + 1n;
    } else from = parsePosition(req.query.fromPosition ?? '0');

    ctx.stats.subscriptionsOpened.inc({ kind: partitions ? 'tenant' : 'cluster' });
    const sse = start(req, reply);
    track(sse, partitions ? 'tenant' : 'cluster');
    // `end` resolved to a position: a reconnect resumes after it, not at a later end
    // (events committed while the client was away would be skipped).
    if (resume === undefined && req.query.fromPosition === 'end') sse.mark(String(from - 1n));
    let involved: string[] = [];
    let seen = 0n;
    await pump(
      sse,
      async () => {
        const page = await readGlobal(ctx, {
          ...(partitions ? { partitions } : {}),
          fromPosition: from,
          limit: PAGE,
          readYourWrites: false,
          ...(req.query.category !== undefined ? { category: req.query.category } : {}),
          ...(req.query.types !== undefined ? { types: req.query.types } : {}),
        });
        // Up to the safe points as they are (no read-your-writes wait): an event not yet
        // below them is delivered by the read the hub wakes once they passed it.
        for (const { partition, ...e } of page.events) sse.send(e.type, e.position, withTenant ? { ...e, tenant: tenantOfPartition(partition) } : e);
        sent(page.events);
        involved = page.involved;
        seen = page.watermark;
        // A complete page holds every event up to the watermark, and nothing at or below it
        // can still commit: the next read starts above it. A page cut short (by its limit or
        // a shard's byte budget) goes on from its next position.
        from = page.complete && page.watermark + 1n > page.next ? page.watermark + 1n : page.next;
        return page.events.length;
      },
      (until) => watermarks.next(involved, seen, until),
    );
  }

  app.get<{ Params: { tenant: string }; Querystring: { fromPosition?: string; category?: string; types?: string } }>(
    '/tenants/:tenant/events/subscribe',
    { schema: schemas.subscribeTenantSchema, onRequest: guard.tenant },
    async (req, reply) => {
      const tenant = tenantOf(req);
      await logSubscription(req, reply, partitionsOf(tenant.tenant, tenant.partitions), false);
    },
  );

  app.get<{ Querystring: { fromPosition?: string; category?: string; types?: string } }>(
    '/events/subscribe',
    { schema: schemas.subscribeClusterSchema, onRequest: guard.admin },
    async (req, reply) => logSubscription(req, reply, undefined, true),
  );
}
