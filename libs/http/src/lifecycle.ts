import type { Logger } from 'pino';
import { ConfigError } from './settings.ts';

/**
 * What every service's `main` does around its own wiring: a configuration error is one
 * clear fatal line and exit 1 (no stack trace), an uncaught exception is fatal, and
 * SIGTERM or SIGINT stops the service once, with a deadline.
 */
export function loadOrExit<C>(load: () => C, boot: Logger): C {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      boot.fatal({ violations: err.violations }, err.message);
      process.exit(1);
    }
    throw err;
  }
}

export function exitOnUncaught(boot: Logger): void {
  process.on('uncaughtException', (err) => {
    boot.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
}

/**
 * On the first SIGTERM or SIGINT: logs `message`, runs `stop`, exits 0 once it resolved
 * (1 if it failed, or if it takes longer than `deadlineMs`).
 */
export function stopOnSignals(options: { logger: Logger; message: string; deadlineMs: number; stop: () => Promise<unknown> }): void {
  const { logger } = options;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, options.message);
    const force = setTimeout(() => {
      logger.error({ deadlineMs: options.deadlineMs }, 'stopping took too long; exiting');
      process.exit(1);
    }, options.deadlineMs);
    force.unref();
    options.stop().then(
      () => {
        logger.info({}, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stopping failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
