import { createServer } from 'node:net';

/**
 * A TCP port that was free on 127.0.0.1 a moment ago: the kernel picks one for a
 * listener on port 0, which is then closed. Another process may take it before the
 * caller binds it; tests accept that small race.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close((err) => (err ? reject(err) : port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A base port for `npm start` (SKEIN_PORT) with the ports it takes above it free a moment
 * ago: port … port+9 (router, shards, node-internal ports) and port+100 (its Redis).
 */
export async function freeStartPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const p = 20_000 + Math.floor(Math.random() * 20_000);
    const ports = [...Array.from({ length: 10 }, (_, i) => p + i), p + 100];
    if ((await Promise.all(ports.map(isPortFree))).every(Boolean)) return p;
  }
  throw new Error('no free port range for npm start');
}
