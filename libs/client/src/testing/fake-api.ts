// A real HTTP server on a free port that plays back canned API answers, for the client's
// and the CLI's tests. Not part of the public surface.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request as the fake API received it. */
export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
  /** 1 for the first request the server received. */
  n: number;
}

/** Answers one request; may write slowly, drop the connection, or never answer. */
export type FakeHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface FakeApi {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * Starts the fake API. A list of handlers answers the requests in order (the last one
 * answers every request after it); a single handler answers all of them.
 */
export async function startFakeApi(handlers: FakeHandler | FakeHandler[]): Promise<FakeApi> {
  const list = Array.isArray(handlers) ? handlers : [handlers];
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        n: requests.length + 1,
      };
      requests.push(recorded);
      const handler = list[Math.min(recorded.n, list.length) - 1]!;
      Promise.resolve(handler(recorded, res)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(599);
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers JSON. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): FakeHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

/** Answers an empty body. */
export function empty(status: number, headers: Record<string, string> = {}): FakeHandler {
  return (_req, res) => {
    res.writeHead(status, headers);
    res.end();
  };
}

/** Answers an RFC 9457 problem document, the way the router does. */
export function problem(status: number, code: string, extensions: Record<string, unknown> = {}, headers: Record<string, string> = {}): FakeHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
    res.end(
      JSON.stringify({
        type: `https://skein.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`,
        title: code,
        status,
        detail: `detail of ${code}`,
        code,
        ...extensions,
      }),
    );
  };
}

/** Breaks the connection without an answer. */
export const drop: FakeHandler = (req, res) => {
  res.socket?.destroy();
};

/** Never answers (until the server closes). */
export const hang: FakeHandler = () => undefined;

/** A wire event (API.md, "Events"). */
export function wireEvent(version: number, position: string | number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `00000000-0000-4000-8000-${String(version).padStart(12, '0')}`,
    type: 'Happened',
    data: { n: version },
    metadata: null,
    streamId: 'order-1',
    version,
    position: String(position),
    timestamp: '2026-11-27T10:00:00.000Z',
    ...overrides,
  };
}

/** One SSE message for an event, as the router writes it. */
export function sseMessage(id: string | number, event: Record<string, unknown>): string {
  return `event: ${String(event.type)}\nid: ${id}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** Starts an SSE answer. */
export function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  res.write(': subscribed\n\n');
}
