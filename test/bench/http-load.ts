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

/** A load that runs until stopped; see {@link startHttpLoad}. */
export interface RunningLoad {
  /** Starts the measured window: what was recorded before (the warm-up) is dropped. */
  measure(): void;
  /** Ends the window now (responses after this are not recorded), lets the requests in flight finish, and returns the window's figures. */
  stop(): Promise<LoadResult>;
}

/**
 * Keeps `connections` keep-alive connections to `baseUrl` busy, one request in flight each,
 * until stopped. `request(connection)` gives a connection's next request (bodies may
 * differ every time); `onResponse(connection, status)` hears its answer before the
 * connection asks for the next one, so a connection can track its own streams' versions.
 */
export async function startHttpLoad(
  baseUrl: string,
  connections: number,
  request: (connection: number) => LoadRequest,
  onResponse?: (connection: number, status: number) => void,
): Promise<RunningLoad> {
  const url = new URL(baseUrl);
  let latencies: number[] = [];
  let statuses = new Map<number, number>();
  let recording = true;
  let stopping = false;
  let windowStart = performance.now();
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url)));
  const done = sockets.map((socket, c) =>
    drive(socket, {
      next: () => (stopping ? null : encode(url.host, request(c))),
      answered: (status, ms) => {
        onResponse?.(c, status);
        if (!recording) return;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        latencies.push(ms);
      },
    }),
  );
  return {
    measure() {
      latencies = [];
      statuses = new Map();
      windowStart = performance.now();
    },
    async stop() {
      recording = false;
      stopping = true;
      const seconds = (performance.now() - windowStart) / 1000;
      await Promise.all(done);
      return { seconds, latencies, statuses };
    },
  };
}

async function open(url: URL): Promise<Socket> {
  const socket = connect(Number(url.port), url.hostname);
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Sends `next()` requests one at a time on `socket` until it gives null, then ends the socket. */
function drive(socket: Socket, io: { next(): Buffer | null; answered(status: number, ms: number): void }): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    let sentAt = 0;
    const send = () => {
      const bytes = io.next();
      if (bytes === null) {
        socket.end();
        return resolve();
      }
      sentAt = performance.now();
      socket.write(bytes);
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
        pending = pending.subarray(end + 4 + length);
        io.answered(Number(head.slice(9, 12)), performance.now() - sentAt);
        send();
      }
    });
    send();
  });
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
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url)));
  await Promise.all(
    sockets.map((socket) =>
      drive(socket, {
        next: () => (next < total ? bytesOf(request(next++)) : null),
        answered: (status, ms) => {
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          latencies.push(ms);
        },
      }),
    ),
  );
  return { seconds: (performance.now() - started) / 1000, latencies, statuses };
}
