// A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections, one
// request in flight per connection, requests pre-encoded where they repeat, responses
// parsed only as far as status and Content-Length. A general client (undici, the
// SDK) spends 2-3× the CPU per request, and on a 2-core machine every cycle the load
// generator burns is a cycle the server under test does not get.
import { connect, type Socket } from 'node:net';

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  /** JSON text. */
  body?: string;
  headers?: Record<string, string>;
}

export interface LoadResult {
  seconds: number;
  /** Per-request latencies, ms. */
  latencies: number[];
  /** Responses by status code. */
  statuses: Map<number, number>;
}

function encode(host: string, r: LoadRequest): Buffer {
  let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (r.body === undefined) return Buffer.from(`${head}\r\n`, 'latin1');
  const body = Buffer.from(r.body, 'utf8');
  return Buffer.concat([Buffer.from(`${head}content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]);
}

/**
 * Sends `total` requests over `connections` keep-alive connections to `baseUrl`;
 * `request(i)` gives the i-th (return the same object to reuse its encoding).
 * Rejects on a response it cannot parse (chunked bodies are not supported).
 */
export async function runHttpLoad(baseUrl: string, connections: number, total: number, request: (i: number) => LoadRequest): Promise<LoadResult> {
  const url = new URL(baseUrl);
  const encoded = new WeakMap<LoadRequest, Buffer>();
  const bytesOf = (r: LoadRequest) => {
    let b = encoded.get(r);
    if (!b) encoded.set(r, (b = encode(url.host, r)));
    return b;
  };
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  const started = performance.now();

  function drive(socket: Socket): Promise<void> {
    return new Promise((resolve, reject) => {
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      const send = () => {
        if (next >= total) {
          socket.end();
          return resolve();
        }
        const r = request(next++);
        sentAt = performance.now();
        socket.write(bytesOf(r));
      };
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = pending.toString('latin1', 0, end);
          if (/\r\ntransfer-encoding: chunked/i.test(head)) return reject(new Error('chunked responses are not supported'));
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (pending.length < end + 4 + length) return;
          const status = Number(head.slice(9, 12));
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          pending = pending.subarray(end + 4 + length);
          latencies.push(performance.now() - sentAt);
          send();
        }
      });
      send();
    });
  }

  await Promise.all(
    Array.from({ length: connections }, async () => {
      const socket = connect(Number(url.port), url.hostname);
      socket.setNoDelay(true);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      await drive(socket);
    }),
  );
  return { seconds: (performance.now() - started) / 1000, latencies, statuses };
}
