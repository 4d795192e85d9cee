import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { acceptUtf8JsonOnly, problemDocumentOptions } from '@skein/http';
import { CLUSTER_SECRET_HEADER, SkeinError } from '@skein/protocol';
import { createSecretCheck } from './cluster-secret.ts';
import { defaultShardAppOptions, type RouteContext, type ShardAppDeps, type ShardAppOptions } from './context.ts';
import { asSkeinError, sendProblem } from './http.ts';
import { registerAppendRoutes } from './routes/append.ts';
import { registerControlRecordRoutes } from './routes/control-records.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerLogRoutes } from './routes/logs.ts';
import { registerMetadataRoutes } from './routes/metadata.ts';
import { registerPartitionTransferRoutes } from './routes/partition-transfer.ts';
import { registerSafePointRoutes } from './routes/safe-point.ts';
import { registerSnapshotRoutes } from './routes/snapshots.ts';
import { registerStreamRoutes } from './routes/streams.ts';
import { registerSubscribeRoutes } from './routes/subscribe.ts';

export const INTERNAL_PREFIX = '/internal/v1';

/** Routes answered without the cluster secret: liveness, readiness and Prometheus must reach them. None returns data. */
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Builds the shard's HTTP service (internal API, health, metrics) from its
 * dependencies. Does not listen: `main.ts` does, tests use `app.inject()`.
 * Closing the app ends open subscriptions; it does not close the engine.
 */
export function createShardApp(deps: ShardAppDeps, options: ShardAppOptions): FastifyInstance {
  const opts: Required<ShardAppOptions> = { ...defaultShardAppOptions, ...stripUndefined(options) } as Required<ShardAppOptions>;
  let nextId = 0;
  // Typed as Fastify's logger (pino's is one), so routes see FastifyBaseLogger rather than pino's Logger.
  const logger: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    // Errors Fastify and Node's parser answer themselves are problem documents too.
    ...problemDocumentOptions,
    loggerInstance: logger,
    // Requests are logged where handled (errors) and measured by a histogram; a line
    // per request would cost more than the append itself.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.maxBodyBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => `${opts.shardId}-${(++nextId).toString(36)}`,
    return503OnClosing: true,
    // Stream ids are up to 256 bytes of UTF-8: up to 768 characters once percent-encoded.
    routerOptions: { maxParamLength: 2048 },
    forceCloseConnections: 'idle',
  });
  const ctx: RouteContext = { ...deps, options: opts, subscriptions: new Set() };
  // JSON only: anything else is 415; a body that is not UTF-8 is 400.
  app.removeContentTypeParser('text/plain');
  acceptUtf8JsonOnly(app);

  app.setErrorHandler((err, req, reply) => {
    const e = asSkeinError(err);
    if (e.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: e.code, detail: e.message }, 'request refused');
    return sendProblem(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, asSkeinError({ statusCode: 404 })));

  // Before the body is read: a request without the secret reaches no route and changes nothing.
  const secretMatches = createSecretCheck(opts.clusterSecret);
  app.addHook('onRequest', async (req) => {
    if (PROBES.has(req.routeOptions.url ?? '')) return;
    if (!secretMatches(req.headers[CLUSTER_SECRET_HEADER])) {
      throw new SkeinError('UNAUTHENTICATED', `the shard's internal API needs the cluster secret in the ${CLUSTER_SECRET_HEADER} header`);
    }
  });
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    deps.metrics.requestSeconds.observe({ route, code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    done();
  });
  app.addHook('preClose', (done) => {
    for (const end of ctx.subscriptions) end();
    done();
  });

  registerHealthRoutes(app, ctx);
  app.register(
    async (internal) => {
      registerAppendRoutes(internal, ctx);
      registerStreamRoutes(internal, ctx);
      registerMetadataRoutes(internal, ctx);
      registerSnapshotRoutes(internal, ctx);
      registerLogRoutes(internal, ctx);
      registerSafePointRoutes(internal, ctx);
      registerSubscribeRoutes(internal, ctx);
      if (deps.controlRecords) registerControlRecordRoutes(internal, deps.controlRecords);
      if (deps.transfer && deps.gate) registerPartitionTransferRoutes(internal, { transfer: deps.transfer, gate: deps.gate, ownership: deps.ownership });
    },
    { prefix: INTERNAL_PREFIX },
  );
  return app;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
