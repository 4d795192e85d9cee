import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { SkeinError } from '@skein/protocol';
import { createAppendBudget } from './append-budget.ts';
import { createAppendCoalescer } from './coalescer.ts';
import type { RouteContext, RouterDeps, RouterOptions } from './context.ts';
import { createQuotaGate } from './quota.ts';
import { createWatermarkHub } from './watermark-hub.ts';
import { acceptUtf8JsonOnly, asSkeinError, problemDocumentOptions } from '@skein/http';
import { declareRequestAccess } from './guard.ts';
import { childLoggerOnFirstUse, sendProblem } from './http.ts';
import { createRouterMetrics } from './metrics.ts';
import { translateRedisFailure } from './redis-errors.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerClusterRoutes } from './routes/cluster.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerLogRoutes } from './routes/logs.ts';
import { registerMaintenanceRoutes } from './routes/maintenance.ts';
import { registerStreamRoutes } from './routes/streams.ts';
import { registerSubscriptionRoutes } from './routes/subscribe.ts';

/** Builds the router's HTTP app from its dependencies (listen is the caller's). */
export async function createRouterApp(deps: RouterDeps, options: RouterOptions): Promise<FastifyInstance> {
  // Typed as Fastify's logger (pino's is one), so routes see FastifyBaseLogger rather than pino's Logger.
  const logger: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    // Errors Fastify and Node's parser answer themselves are problem documents too.
    ...problemDocumentOptions,
    loggerInstance: logger,
    bodyLimit: options.maxBodyBytes,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: childLoggerOnFirstUse,
    requestIdHeader: 'x-request-id',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
    // Stream ids are up to 256 bytes of UTF-8: up to 768 characters once percent-encoded.
    routerOptions: { maxParamLength: 2048 },
  });
  // JSON only: anything else is 415; a body that is not UTF-8 is 400.
  app.removeContentTypeParser('text/plain');
  acceptUtf8JsonOnly(app);
  const appendBudget = createAppendBudget({ maxBytes: options.maxPendingBytes, maxBytesPerShard: options.maxPendingBytesPerShard });
  const stats = createRouterMetrics(deps.metrics, { appendPendingBytes: () => appendBudget.pendingBytes });
  let startClosing!: () => void;
  const closing = new Promise<void>((r) => (startClosing = r));
  app.addHook('onClose', async () => startClosing());
  const ctx: RouteContext = {
    ...deps,
    options,
    stats,
    closing,
    coalescer: createAppendCoalescer(
      { shards: deps.shards, topology: deps.topology, observer: { batch: (n) => stats.appendBatchSize.observe(n) } },
      { queueTimeoutMs: options.shardTimeoutMs, ...(options.batchWaitMs === undefined ? {} : { batchWaitMs: options.batchWaitMs }) },
    ),
    appendBudget,
    quota: createQuotaGate({ store: deps.store, onRefused: () => stats.appendsRateLimited.inc() }),
    watermarks: createWatermarkHub({ shards: deps.shards, store: deps.store, pollMs: options.pollMs, onRound: () => stats.watermarkRounds.inc() }),
  };

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Skein', version: '1.0.0', description: 'Partitioned, multi-tenant event store. See API.md for the contract.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });

  // Callback style: no promise and no microtask turn per request.
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unknown';
    stats.requestSeconds.observe({ route, code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err, req, reply) => {
    // Redis failures from any path (registry, topology, quota, counter reads) are 503 here, in one place.
    const e = asSkeinError(translateRedisFailure(err));
    if (e.status >= 500) req.log.error({ err, code: e.code }, 'request failed');
    else req.log.info({ code: e.code, status: e.status, url: req.url }, 'request refused');
    return sendProblem(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, new SkeinError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));

  declareRequestAccess(app);
  registerHealthRoutes(app, ctx);
  await app.register(
    async (v1) => {
      registerStreamRoutes(v1, ctx);
      registerLogRoutes(v1, ctx);
      registerSubscriptionRoutes(v1, ctx);
      registerAdminRoutes(v1, ctx);
      if (deps.cluster) registerClusterRoutes(v1, ctx, deps.cluster);
      if (deps.jobs) registerMaintenanceRoutes(v1, ctx, deps.jobs);
    },
    { prefix: '/v1' },
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
