import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { asSkeinError, sendProblem } from './index.ts';

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
