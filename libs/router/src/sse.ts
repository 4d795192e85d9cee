import type { FastifyReply } from 'fastify';

export interface SseOptions {
  heartbeatMs: number;
  /** A subscriber whose unsent bytes pass this is disconnected at once. */
  maxBufferedBytes: number;
  /**
   * A subscriber whose socket stays backed up (a write was refused and no 'drain' came)
   * this long is disconnected: a consumer that stopped reading holds no more than one
   * page and its socket buffers, and no longer than this.
   */
  slowMs: number;
  /** Called when a slow subscriber is cut off. */
  onCutOff?: () => void;
}

/** One Server-Sent Events response: events, heartbeats, backpressure, close. */
export interface SseStream {
  /** False once the client went away, was cut off, or the stream was closed. */
  readonly open: boolean;
  send(type: string, id: string, data: unknown): void;
  /**
   * Sends an `id:` with no event: an SSE client's last event ID becomes `id` (WHATWG HTML,
   * "Server-sent events": the id of a message without data still sets it), so a reconnect
   * resumes after it. A subscription that resolved `end` to a position says where it began.
   */
  mark(id: string): void;
  /** Resolves when the client has taken what was sent (or went away, or was cut off). */
  drained(): Promise<void>;
  /**
   * Ends the response. With a `reason`, a last comment `: closed: <reason>` says why. A
   * socket that is backed up gets what is left of its grace period to take the rest
   * (the bound keeps that small) and is destroyed after it.
   */
  close(reason?: string): void;
  /** Resolves when the stream closes for any reason. */
  readonly closed: Promise<void>;
}

/** Starts an SSE response (status 200, `text/event-stream`) on a Fastify reply. */
export function openSse(reply: FastifyReply, options: SseOptions, clock: () => number = Date.now): SseStream {
  const res = reply.raw;
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  let open = true;
  /** When a write was last refused with no 'drain' since; null while the socket keeps up. */
  let backedUpSince: number | null = null;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const write = (chunk: string) => {
    if (!res.write(chunk) && backedUpSince === null) backedUpSince = clock();
  };
  const cutOff = () => {
    if (!open) return;
    res.destroy();
    finish();
    options.onCutOff?.();
  };
  const heartbeat = setInterval(() => {
    if (open) write(': heartbeat\n\n');
  }, options.heartbeatMs);
  heartbeat.unref();
  const watchdog = setInterval(
    () => {
      if (open && backedUpSince !== null && clock() - backedUpSince >= options.slowMs) cutOff();
    },
    Math.max(10, Math.min(1000, Math.floor(options.slowMs / 4))),
  );
  watchdog.unref();
  function finish(): void {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    clearInterval(watchdog);
    resolveClosed();
  }
  let corked = false;
  const uncork = () => {
    corked = false;
    res.uncork();
  };
  res.on('drain', () => (backedUpSince = null));
  res.on('close', finish);
  res.on('error', finish);
  write(': connected\n\n');

  return {
    get open() {
      return open;
    },
    send(type, id, data) {
      if (!open) return;
      // The events sent in one tick (a page) leave in one write, not one syscall each.
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(uncork);
      }
      write(`event: ${type}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
      // A page larger than the bound: cut it off rather than buffer without bound.
      if (res.writableLength > options.maxBufferedBytes) cutOff();
    },
    mark(id) {
      if (open) write(`id: ${id}\n\n`);
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
    close(reason) {
      if (!open) return;
      if (reason !== undefined) res.write(`: closed: ${reason}\n\n`);
      res.end();
      // The comment waits behind what the client has not read yet; a client that reads
      // it gets it, one that stopped reading is destroyed when its grace period runs out.
      if (backedUpSince !== null) {
        const left = Math.max(0, options.slowMs - (clock() - backedUpSince));
        setTimeout(() => res.destroy(), left).unref();
      }
      finish();
    },
    closed,
  };
}
