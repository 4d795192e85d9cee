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
