import type { CommittedAppend, EventStore } from '@skein/engine';
import { toWireEvent, type RecordedEvent } from '@skein/protocol';
import { toWireLoggedEvent } from './http.ts';

/** What a subscription follows, and where it starts (the first version / position to deliver). */
export type SubscriptionTarget =
  | { kind: 'stream'; partition: string; streamId: string; from: number }
  | { kind: 'partition'; partition: string; fromPosition: bigint; category?: string; types?: string[] }
  | { kind: 'shard'; fromPosition: bigint; category?: string; types?: string[] };

/** Where a subscription writes: an SSE response in production, an array in tests. */
export interface SubscriptionSink {
  /** Writes one chunk; false when the consumer's buffer is full (wait for drain). */
  write(chunk: string): boolean;
  /** Resolves true once the buffer drained, false after `timeoutMs` or when the consumer went away. */
  waitDrain(timeoutMs: number): Promise<boolean>;
}

export type SubscriptionEnd = 'closed' | 'slow' | 'deleted';

export interface Subscription {
  /** Resolves when the subscription ends, saying why. */
  readonly done: Promise<SubscriptionEnd>;
  /** Ends it (the consumer went away, or the shard is closing). */
  close(): void;
}

export interface SubscriptionOptions {
  /** Events read from the store per page. Default 100. */
  pageSize?: number;
  /** Heartbeat comment period. Default 15 s. */
  heartbeatMs?: number;
  /** A consumer whose buffer stays full this long is disconnected. Default 30 s. */
  slowMs?: number;
}

/** One SSE message: `event: <type>`, `id: <version or position>`, `data: <event JSON>`. */
export function sseMessage(type: string, id: string, data: unknown): string {
  return `event: ${type}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}

function matcher(target: SubscriptionTarget): (a: CommittedAppend) => boolean {
  switch (target.kind) {
    case 'stream':
      return (a) => a.partition === target.partition && a.streamId === target.streamId;
    case 'partition':
      return (a) => a.partition === target.partition;
    case 'shard':
      return () => true;
  }
}

/**
 * Delivers committed events from `target`'s start point: catch-up from the store, then
 * live. There is no separate live buffer to reconcile: the subscription keeps a cursor
 * (next version or position to send) and always reads from the store at the cursor.
 * Commit notifications (registered before the first read) only wake it up, so no event
 * is skipped or sent twice at the seam, and memory per subscriber is one page plus the
 * socket's buffer: a consumer that stops reading is waited for (the cursor stays put)
 * and disconnected once its buffer stays full for `slowMs`.
 */
export function startSubscription(
  engine: EventStore,
  target: SubscriptionTarget,
  sink: SubscriptionSink,
  options: SubscriptionOptions = {},
): Subscription {
  const pageSize = options.pageSize ?? 100;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const slowMs = options.slowMs ?? 30_000;
  const matches = matcher(target);

  let closed = false;
  let dirty = true;
  let wake: (() => void) | null = null;
  const signal = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  const unsubscribe = engine.onCommit((appends) => {
    for (const a of appends) {
      if (matches(a)) {
        dirty = true;
        signal();
        return;
      }
    }
  });
  const heartbeat = setInterval(() => sink.write(': heartbeat\n\n'), heartbeatMs);
  heartbeat.unref();

  let streamCursor = target.kind === 'stream' ? target.from : 0;
  let logCursor = target.kind === 'stream' ? 0n : target.fromPosition;

  /** One page from the cursor, as SSE messages with the cursor after each; null when the stream was hard-deleted. */
  function readPage(): { chunk: string; next: () => void }[] | null {
    if (target.kind === 'stream') {
      const out = engine.readStream(target.partition, target.streamId, { from: streamCursor, limit: pageSize });
      if (!out.ok) return out.code === 'STREAM_DELETED' ? null : [];
      return out.events.map((e: RecordedEvent) => ({
        chunk: sseMessage(e.type, String(e.version), toWireEvent(e)),
        next: () => {
          streamCursor = e.version + 1;
        },
      }));
    }
    const opts = { fromPosition: logCursor, limit: pageSize, category: target.category, types: target.types };
    const page = target.kind === 'partition' ? engine.readPartitionLog(target.partition, opts) : engine.readShardLog(opts);
    // Defensive: never send a position below the cursor, whatever the page holds.
    return page.events.filter((e) => e.position >= logCursor).map((e) => ({
      chunk: sseMessage(e.type, e.position.toString(), toWireLoggedEvent(e)),
      next: () => {
        logCursor = e.position + 1n;
      },
    }));
  }

  async function run(): Promise<SubscriptionEnd> {
    try {
      while (!closed) {
        if (!dirty) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          continue;
        }
        // Cleared before reading: a commit during the read sets it again.
        dirty = false;
        for (;;) {
          const page = readPage();
          if (page === null) return 'deleted';
          for (const m of page) {
            if (closed) return 'closed';
            const ok = sink.write(m.chunk);
            m.next();
            if (!ok && !(await sink.waitDrain(slowMs))) return closed ? 'closed' : 'slow';
          }
          if (page.length < pageSize) break;
        }
      }
      return 'closed';
    } finally {
      closed = true;
      unsubscribe();
      clearInterval(heartbeat);
    }
  }

  const done = run();
  return {
    done,
    close() {
      closed = true;
      signal();
    },
  };
}
