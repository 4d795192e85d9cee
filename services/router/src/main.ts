// The router process (split deployments): configuration, root logger, metrics registry,
// wiring (`startRouter`, shared with services/node), signals.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { exitOnUncaught, loadOrExit, stopOnSignals } from '@skein/http';
import { loadRouterConfig, startRouter, type RunningRouter } from '@skein/router';

const bootLogger = pino({ base: { component: 'router' } });
exitOnUncaught(bootLogger);

async function main(): Promise<void> {
  const config = loadOrExit(() => loadRouterConfig(process.env), bootLogger);
  const logger = pino({
    level: config.logLevel,
    base: { component: 'router', pid: process.pid },
    redact: ['req.headers.authorization', 'headers.authorization', 'authorization', '*.apiKey', 'apiKey'],
  });
  let router: RunningRouter;
  try {
    router = await startRouter(config, { logger, metrics: new Registry() });
  } catch (err) {
    logger.fatal({ err }, 'router could not start');
    process.exit(1);
  }
  logger.info({ url: router.url, epoch: router.epoch }, 'router listening');

  stopOnSignals({ logger, message: 'stopping', deadlineMs: 10_000, stop: () => router.close() });
}

await main();
