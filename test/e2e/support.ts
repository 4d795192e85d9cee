import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';

/** A raw HTTP call to the router: status, headers and parsed body. */
export interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

/**
 * Announces an oversized body (content-length) and sends only its first bytes: a
 * server must refuse it from the header alone (413), without reading megabytes.
 */
export function postOversized(base: string, path: string, key: string, bytes: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(bytes) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>), body: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.write('{"events":[{"type":"A","data":"');
  });
}

export async function call(base: string, method: string, path: string, options: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key && headers.authorization === undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Asserts a problem document with the given status and code. */
export function assertProblem(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status} ${JSON.stringify(reply.body)}`);
  assert.match(reply.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(reply.body.code, code);
  assert.equal(reply.body.status, status);
  assert.equal(typeof reply.body.title, 'string');
  assert.equal(typeof reply.body.type, 'string');
  assert.equal(typeof reply.body.detail, 'string');
}

/** A fresh tenant name per test, so tests never share state. */
export function tenantName(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Reads SSE messages from a response body until `count` events arrived or `timeoutMs` passed. */
export async function readSse(
  url: string,
  headers: Record<string, string>,
  count: number,
  timeoutMs = 20_000,
): Promise<{ event: string; id: string; data: any }[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const out: { event: string; id: string; data: any }[] = [];
  try {
    const res = await fetch(url, { headers, signal: controller.signal });
    if (res.status !== 200) assert.fail(`subscription answered ${res.status}: ${await res.text()}`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const msg: { event: string; id: string; data: string } = { event: '', id: '', data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const value = rest.join(':').replace(/^ /, '');
          if (field === 'event') msg.event = value;
          else if (field === 'id') msg.id = value;
          else if (field === 'data') msg.data += value;
        }
        if (msg.data) out.push({ ...msg, data: JSON.parse(msg.data) });
        if (out.length >= count) return out;
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return out;
}
