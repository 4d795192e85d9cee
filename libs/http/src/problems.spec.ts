import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { acceptUtf8JsonOnly, asSkeinError, problemDocumentOptions, sendProblem } from './index.ts';

test('Fastify failures map to registry codes, with the offending field', async () => {
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) => sendProblem(reply, err));
  // A handler that fails to parse JSON of its own is not the client's malformed body.
  app.get('/stored', async () => JSON.parse('{not json'));
  app.post('/x', { schema: { body: { type: 'object', required: ['events'], properties: { events: { type: 'array', items: { type: 'object', required: ['data'] } } } } } }, async () => ({}));
  const missing = await app.inject({ method: 'POST', url: '/x', payload: { events: [{}] } });
  assert.equal(missing.statusCode, 400);
  assert.equal(missing.json().code, 'VALIDATION_FAILED');
  assert.equal(missing.json().field, 'events[0].data');
  const malformed = await app.inject({ method: 'POST', url: '/x', payload: '{', headers: { 'content-type': 'application/json' } });
  assert.equal(malformed.json().code, 'MALFORMED_JSON');
  assert.equal(asSkeinError(new Error('boom')).code, 'INTERNAL');
  const stored = await app.inject({ method: 'GET', url: '/stored' });
  assert.equal(stored.statusCode, 500);
  assert.equal(stored.json().code, 'INTERNAL');
  await app.close();
});

/** One raw HTTP/1.1 exchange over a socket; the answer's status, content type and parsed body. */
async function rawExchange(port: number, request: string | Buffer): Promise<{ status: number; type: string; body: Record<string, unknown> }> {
  const { connect } = await import('node:net');
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
  const [head, ...rest] = text.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1]);
  const type = /content-type: ([^\r\n]+)/i.exec(head ?? '')?.[1] ?? '';
  return { status, type, body: JSON.parse(rest.join('\r\n\r\n')) };
}

test('errors Fastify and Node answer before any handler are problem documents with registry codes', async () => {
  const { default: FastifyFactory } = await import('fastify');
  const app = FastifyFactory({ ...problemDocumentOptions, routerOptions: { maxParamLength: 100 } });
  acceptUtf8JsonOnly(app);
  app.setErrorHandler((err, _req, reply) => sendProblem(reply, err));
  const bodies: unknown[] = [];
  app.post('/s/:id', async (req) => {
    bodies.push(req.body);
    return { ok: true };
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const port = Number(new URL(address).port);
  try {
    const cases: [string, string | Buffer, number, string][] = [
      ['param over maxParamLength', `POST /s/${'a'.repeat(200)} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`, 414, 'URI_TOO_LONG'],
      ['URL over the header limit', `GET /s/${'a'.repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
      ['headers over the limit', `GET /s/a HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
      ['not HTTP', 'garbage garbage\r\n\r\n', 400, 'VALIDATION_FAILED'],
      ['percent-encoding that is not UTF-8', 'POST /s/%E0%A4%A HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n', 400, 'VALIDATION_FAILED'],
      ['a body that is not UTF-8', Buffer.concat([Buffer.from('POST /s/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('}')]), 400, 'MALFORMED_JSON'],
      ['garbage JSON', 'POST /s/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{{{{{', 400, 'MALFORMED_JSON'],
    ];
    for (const [name, request, status, code] of cases) {
      const res = await rawExchange(port, request);
      assert.equal(res.status, status, name);
      assert.match(res.type, /^application\/problem\+json/, name);
      assert.equal(res.body.code, code, name);
      assert.equal(res.body.status, status, name);
    }
    assert.deepEqual(bodies, [], 'no handler ran for any of them');
    // UTF-8 bodies parse as before, escapes included; a lone surrogate escape is for the validators.
    const good = await app.inject({ method: 'POST', url: '/s/a', headers: { 'content-type': 'application/json' }, payload: '{"é":"\\ud83d\\ude00","l":"\\ud800"}' });
    assert.equal(good.statusCode, 200);
    assert.deepEqual(bodies, [{ é: '😀', l: '\ud800' }]);
  } finally {
    await app.close();
  }
});
