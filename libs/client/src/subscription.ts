import { SkeinError, isSkeinError } from '@skein/protocol';
import { decodeEvent } from './decode.ts';
import { sleep } from './http.ts';
import type { QueryValue, Transport } from './http.ts';
import { createSseParser } from './sse.ts';
import type { SkeinEvent } from './types.ts';

/** Reported before each reconnection attempt. */
export interface ReconnectInfo {
  /** 1 for the first reconnection after a connection was lost. */
  attempt: number;
  /** How long the subscription waits before reconnecting. */
  delayMs: number;
  /** Why the connection ended. */
  error: SkeinError;
  /** The `Last-Event-ID` the reconnection will send: the last event's id, or where the server said an `end` start resolved to. */
  lastEventId: string | undefined;
}

/** Options common to every subscription. */
export interface SubscribeOptions {
  /**
   * Ends the subscription: a pending `next()` rejects with the signal's reason. Use
   * `close()` / `return()` (or `break` in `for await`) to end it without an error.
   */
  signal?: AbortSignal;
  /** Reconnections in a row without receiving anything before giving up. Default: unlimited. */
  maxReconnects?: number;
  /** First reconnection delay in ms; doubles per failed attempt. Default 250 (or the server's `retry:`). */
  reconnectDelayMs?: number;
  /** Ceiling of the reconnection delay in ms. Default 10 000. */
  maxReconnectDelayMs?: number;
  /**
   * No byte for this long (heartbeats count) means the connection is dead: reconnect.
   * Default 45 000 (three of the server's 15 s heartbeat periods).
   */
  idleTimeoutMs?: number;
  /** Called before each reconnection; for logging. */
  onReconnect?: (info: ReconnectInfo) => void;
}

/**
 * A live subscription: an async iterator of events, from catch-up into live, that survives
 * disconnects. It reconnects with `Last-Event-ID` set to the last event delivered and skips
 * anything at or before it, so no event is delivered twice.
 *
 * It ends with an error on a failure that reconnecting cannot cure (`STREAM_DELETED`,
 * `FORBIDDEN`, `VALIDATION_FAILED`, …) and on the signal's abort; it ends quietly on
 * `close()` or `return()`.
 */
export interface Subscription extends AsyncIterableIterator<SkeinEvent> {
  /** The id (version or position) of the last event delivered, as the server sent it (before any: the start the server resolved `end` to, if it said). */
  readonly lastEventId: string | undefined;
  /** Ends the subscription and its connection. Safe to call more than once. */
  close(): Promise<void>;
}

/** What `openSubscription` needs to know about the target. */
export interface SubscriptionTarget {
  path: string;
  query: Record<string, QueryValue>;
  /** Which member of the event its SSE id is: versions for a stream, positions for a log. */
  idOf: (event: SkeinEvent) => string;
}

class Idle extends Error {
  override readonly name = 'IdleTimeout';
}

function compareIds(a: string, b: string): number | undefined {
  if (!/^[0-9]+$/.test(a) || !/^[0-9]+$/.test(b)) return undefined;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Opens a reconnecting SSE subscription (API.md, "Subscriptions"). */
export function openSubscription(transport: Transport, target: SubscriptionTarget, options: SubscribeOptions, connectTimeoutMs: number): Subscription {
  const closing = new AbortController();
  const userSignal = options.signal;
  const signal = userSignal ? AbortSignal.any([userSignal, closing.signal]) : closing.signal;
  const maxReconnects = options.maxReconnects ?? Infinity;
  const maxDelay = options.maxReconnectDelayMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  let baseDelay = options.reconnectDelayMs ?? 250;
  let lastEventId: string | undefined;

  // Ends the generator quietly when we closed it, with the caller's reason when they aborted.
  const stop = (): void => {
    if (userSignal?.aborted) throw userSignal.reason;
  };

  async function* run(): AsyncGenerator<SkeinEvent, void, undefined> {
    let failures = 0;
    for (;;) {
      const connection = new AbortController();
      const connSignal = AbortSignal.any([signal, connection.signal]);
      // Armed while we wait for bytes; not while the consumer holds an event (that is not the server's silence).
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => connection.abort(new Idle()), idleTimeoutMs);
      };
      let error: SkeinError;
      try {
        const headers: Record<string, string> = {};
        if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
        const res = await transport.open({ method: 'GET', path: target.path, query: target.query, headers, signal: connSignal }, connectTimeoutMs);
        if (!res.body) throw new SkeinError('INTERNAL', 'malformed response from server: subscription without a body');
        arm();
        const parser = createSseParser({ idOnly: true });
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          arm();
          for (const msg of parser.push(decoder.decode(chunk, { stream: true }))) {
            if (msg.retry !== undefined) baseDelay = msg.retry;
            if (msg.idOnly) {
              // An id without an event (where a start from `end` resolved to): a reconnect resumes after it.
              if (lastEventId === undefined || (compareIds(msg.id!, lastEventId) ?? 1) > 0) lastEventId = msg.id;
              continue;
            }
            let event: SkeinEvent;
            try {
              event = decodeEvent(JSON.parse(msg.data));
            } catch (err) {
              throw isSkeinError(err) ? err : new SkeinError('INTERNAL', 'malformed response from server: SSE data is not JSON', {}, { cause: err });
            }
            const id = msg.id ?? target.idOf(event);
            // A server that ignored Last-Event-ID (or replays after a failover) must not cause repeats.
            if (lastEventId !== undefined && (compareIds(id, lastEventId) ?? 1) <= 0) continue;
            lastEventId = id;
            failures = 0;
            clearTimeout(idle);
            yield event;
            arm();
          }
        }
        error = new SkeinError('UNAVAILABLE', 'the server ended the subscription');
      } catch (err) {
        if (signal.aborted) return void stop();
        if (connection.signal.aborted && connection.signal.reason instanceof Idle) {
          error = new SkeinError('UNAVAILABLE', `no data or heartbeat for ${idleTimeoutMs} ms`, {}, { cause: err });
        } else if (isSkeinError(err)) {
          if (!err.retryable) throw err;
          error = err;
        } else {
          // The body broke off mid-stream: a network failure, as far as the caller is concerned.
          error = new SkeinError('UNAVAILABLE', 'the subscription connection was lost', {}, { cause: err });
        }
      } finally {
        clearTimeout(idle);
        connection.abort();
      }
      failures++;
      if (failures > maxReconnects) throw error;
      const retryAfter = error.details.retryAfter;
      const delayMs =
        typeof retryAfter === 'number' && retryAfter >= 0
          ? Math.ceil(retryAfter * 1000)
          : Math.min(maxDelay, baseDelay * 2 ** (failures - 1));
      options.onReconnect?.({ attempt: failures, delayMs, error, lastEventId });
      try {
        await sleep(delayMs, signal);
      } catch {
        return void stop();
      }
    }
  }

  const gen = run();
  const subscription: Subscription = {
    get lastEventId() {
      return lastEventId;
    },
    next: () => gen.next(),
    return: async () => {
      closing.abort();
      return gen.return(undefined);
    },
    throw: (err?: unknown) => gen.throw(err),
    close: async () => {
      closing.abort();
      await gen.return(undefined);
    },
    [Symbol.asyncIterator]() {
      return subscription;
    },
  };
  return subscription;
}
