import type { FastifyReply } from 'fastify';

export interface SseOptions {
  heartbeatMs: number;
  /** A subscriber whose unsent bytes pass this is disconnected (bounded memory per subscriber). */
  maxBufferedBytes: number;
  /** Called when a slow subscriber is cut off. */
  onCutOff?: () => void;
}

/** One Server-Sent Events response: events, heartbeats, backpressure, close. */
export interface SseStream {
  /** False once the client went away or was cut off. */
  readonly open: boolean;
  send(type: string, id: string, data: unknown): void;
  /** Resolves when the client has taken what was sent (or went away). */
  drained(): Promise<void>;
  close(): void;
  /** Resolves when the stream closes for any reason. */
  readonly closed: Promise<void>;
}

/** Starts an SSE response (status 200, `text/event-stream`) on a Fastify reply. */
export function openSse(reply: FastifyReply, options: SseOptions): SseStream {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': connected\n\n');
  let open = true;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const heartbeat = setInterval(() => {
    if (open) res.write(': heartbeat\n\n');
  }, options.heartbeatMs);
  heartbeat.unref();
  const finish = () => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    resolveClosed();
  };
  res.on('close', finish);
  res.on('error', finish);

  return {
    get open() {
      return open;
    },
    send(type, id, data) {
      if (!open) return;
      res.write(`event: ${type}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
      if (res.writableLength > options.maxBufferedBytes) {
        // A slow consumer: cut it off rather than buffer without bound.
        res.destroy();
        finish();
        options.onCutOff?.();
      }
    },
    drained() {
      if (!open || res.writableLength === 0 || !res.writableNeedDrain) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          resolve();
        };
        res.on('drain', done);
        void closed.then(done);
      });
    },
    close() {
      if (open) res.end();
      finish();
    },
    closed,
  };
}
