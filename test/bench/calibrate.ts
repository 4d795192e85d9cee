import { fileURLToPath } from 'node:url';
import { startServiceProcess, type ServiceProcess } from '@skein/testing';
import { runHttpLoad } from './http-load.ts';

const ECHO = fileURLToPath(new URL('./echo-server.ts', import.meta.url));

/** The calibration server (echo-server.ts) in its own process; kill it with SIGTERM. */
export function startEchoServer(): Promise<ServiceProcess> {
  return startServiceProcess({ name: 'echo', main: ECHO, env: {}, listeningMessage: 'echo listening' });
}

/**
 * This machine's ceiling for one Fastify hop: a route that parses the body and answers
 * a fixed 201, in its own process, driven by the same lean load generator. Figures of
 * the same benchmark on two machines compare through it.
 */
export async function fastifyCeiling(connections: number, body: string, requests: { warmup: number; measured: number } = { warmup: 5_000, measured: 60_000 }): Promise<number> {
  const echo = await startEchoServer();
  try {
    const request = { method: 'POST' as const, path: '/echo/s', body };
    await runHttpLoad(echo.url, connections, requests.warmup, () => request);
    const { seconds, latencies } = await runHttpLoad(echo.url, connections, requests.measured, () => request);
    return latencies.length / seconds;
  } finally {
    await echo.kill('SIGTERM');
  }
}
