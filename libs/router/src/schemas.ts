/**
 * JSON schemas of the public API: the single source of request validation (Fastify
 * compiles them) and of the OpenAPI 3.1 document at /openapi.json (@fastify/swagger
 * reads them). Checks JSON schema cannot express (byte lengths of UTF-8 names) run
 * after, in @skein/protocol's validators.
 */

const uuid = { type: 'string', pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' } as const;
const decimal = { type: 'string', pattern: '^(0|[1-9][0-9]{0,19})$' } as const;
const positionOrEnd = { type: 'string', pattern: '^(0|[1-9][0-9]{0,19}|end)$' } as const;
const versionParam = { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } as const;
const limit = { type: 'string', pattern: '^[1-9][0-9]{0,3}$', description: '1–1000, default 100' } as const;
const tenantName = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } as const;
const streamName = { type: 'string', minLength: 1, maxLength: 256 } as const;

export const expectedVersionSchema = {
  oneOf: [{ type: 'string', enum: ['any', 'no_stream', 'stream_exists'] }, { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }],
} as const;

export const eventSchema = {
  type: 'object',
  required: ['type', 'data'],
  additionalProperties: false,
  properties: {
    id: uuid,
    type: { type: 'string', minLength: 1, maxLength: 128 },
    data: { description: 'any JSON value, null included' },
    metadata: { description: 'any JSON value' },
  },
} as const;

export const wireEventSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    data: {},
    metadata: {},
    streamId: { type: 'string' },
    version: { type: 'integer' },
    position: { type: 'string' },
    timestamp: { type: 'string' },
    tenant: { type: 'string' },
  },
} as const;

const problem = {
  type: 'object',
  description: 'RFC 9457 problem document; extension members (field, expected, actual, retryAfter, outcome) as the code needs',
  additionalProperties: true,
  properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' } },
} as const;

export const tenantParams = { type: 'object', required: ['tenant'], properties: { tenant: tenantName } } as const;
export const streamParams = { type: 'object', required: ['tenant', 'stream'], properties: { tenant: tenantName, stream: streamName } } as const;

const appendResult = {
  type: 'object',
  properties: {
    streamId: { type: 'string' },
    firstVersion: { type: 'integer' },
    lastVersion: { type: 'integer' },
    firstPosition: { type: 'string' },
    lastPosition: { type: 'string' },
    duplicate: { type: 'boolean' },
  },
} as const;

const security = [{ bearer: [] }];

export const appendSchema = {
  summary: 'Append events to a stream',
  tags: ['streams'],
  security,
  params: streamParams,
  headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' } } },
  body: {
    type: 'object',
    required: ['events'],
    additionalProperties: false,
    properties: { expectedVersion: expectedVersionSchema, events: { type: 'array', minItems: 1, items: eventSchema } },
  },
  response: { 201: appendResult, 200: appendResult, '4xx': problem, '5xx': problem },
} as const;

export const readStreamSchema = {
  summary: 'Read a stream',
  tags: ['streams'],
  security,
  params: streamParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { from: versionParam, direction: { type: 'string', enum: ['forward', 'backward'] }, limit },
  },
  response: {
    200: { type: 'object', properties: { events: { type: 'array', items: wireEventSchema }, version: { type: 'integer' }, next: { type: ['integer', 'null'] } } },
    '4xx': problem,
  },
} as const;

export const metadataBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxAge: { type: 'integer', minimum: 1 },
    maxCount: { type: 'integer', minimum: 1 },
    truncateBefore: { type: 'integer', minimum: 0 },
    custom: {},
  },
} as const;

export const getMetadataSchema = { summary: 'Read stream metadata', tags: ['streams'], security, params: streamParams, response: { 200: metadataBody, '4xx': problem } } as const;
export const putMetadataSchema = { summary: 'Replace stream metadata', tags: ['streams'], security, params: streamParams, body: metadataBody, response: { '4xx': problem } } as const;

export const deleteStreamSchema = {
  summary: 'Delete a stream (soft or hard)',
  tags: ['streams'],
  security,
  params: streamParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      mode: { type: 'string', enum: ['soft', 'hard'] },
      expectedVersion: { type: 'string', pattern: '^(any|no_stream|stream_exists|0|[1-9][0-9]{0,14})$' },
    },
  },
  response: { '4xx': problem },
} as const;

export const putSnapshotSchema = {
  summary: 'Store a snapshot of a stream at a version',
  tags: ['snapshots'],
  security,
  params: { type: 'object', required: ['tenant', 'stream', 'version'], properties: { tenant: tenantName, stream: streamName, version: versionParam } },
  response: { '4xx': problem },
} as const;

export const latestSnapshotSchema = {
  summary: 'The latest snapshot of a stream',
  tags: ['snapshots'],
  security,
  params: streamParams,
  response: { 200: { type: 'object', properties: { version: { type: 'integer' }, data: {} } }, '4xx': problem },
} as const;

const logQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { fromPosition: decimal, limit, category: { type: 'string', minLength: 1, maxLength: 256 }, types: { type: 'string', minLength: 1 } },
} as const;
const logPage = { type: 'object', properties: { events: { type: 'array', items: wireEventSchema }, next: { type: 'string' } } } as const;

export const tenantLogSchema = { summary: "A tenant's events in global order", tags: ['logs'], security, params: tenantParams, querystring: logQuery, response: { 200: logPage, '4xx': problem } } as const;
export const clusterLogSchema = { summary: 'Every event of the cluster in global order (admin)', tags: ['logs'], security, querystring: logQuery, response: { 200: logPage, '4xx': problem } } as const;

const sseDescription = 'Server-Sent Events: catch-up then live; `Last-Event-ID` resumes after it; from `end`, a first `id:` without data says where it began; heartbeats every 15 s.';
export const subscribeStreamSchema = {
  summary: 'Subscribe to a stream',
  description: sseDescription,
  tags: ['subscriptions'],
  security,
  params: streamParams,
  querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string', pattern: '^([1-9][0-9]{0,14}|end)$' } } },
} as const;
const logSubscribeQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { fromPosition: positionOrEnd, category: { type: 'string', minLength: 1, maxLength: 256 }, types: { type: 'string', minLength: 1 } },
} as const;
export const subscribeTenantSchema = { summary: "Subscribe to a tenant's log", description: sseDescription, tags: ['subscriptions'], security, params: tenantParams, querystring: logSubscribeQuery } as const;
export const subscribeClusterSchema = { summary: "Subscribe to the cluster's log (admin)", description: sseDescription, tags: ['subscriptions'], security, querystring: logSubscribeQuery } as const;

export const createTenantSchema = {
  summary: 'Create a tenant (admin)',
  tags: ['admin'],
  security,
  body: {
    type: 'object',
    required: ['tenant'],
    additionalProperties: false,
    properties: {
      tenant: tenantName,
      partitions: { type: 'integer', minimum: 1, maximum: 256 },
      retention: { type: 'object', additionalProperties: false, properties: { maxAge: { type: 'integer', minimum: 1 } } },
      quota: {
        type: 'object',
        description: 'Append quota: events per second for the whole tenant, across routers. Absent: no limit. Over it, appends get 429 RATE_LIMITED.',
        required: ['eventsPerSecond'],
        additionalProperties: false,
        properties: { eventsPerSecond: { type: 'integer', minimum: 1 } },
      },
    },
  },
  response: {
    201: {
      type: 'object',
      properties: {
        tenant: { type: 'string' },
        partitions: { type: 'integer' },
        quota: { type: 'object', properties: { eventsPerSecond: { type: 'integer' } } },
        apiKey: { type: 'string' },
      },
    },
    '4xx': problem,
  },
} as const;
export const getTenantSchema = { summary: 'Read a tenant (admin)', tags: ['admin'], security, params: tenantParams, response: { '4xx': problem } } as const;
/** Validated by the registry (null removes a setting), so that every violation names its field. */
export const updateTenantSchema = { summary: 'Change a tenant\'s retention or quota (admin)', tags: ['admin'], security, params: tenantParams, response: { '4xx': problem } } as const;
export const createKeySchema = {
  summary: 'Create an API key for a tenant (admin)',
  tags: ['admin'],
  security,
  params: tenantParams,
  response: { 201: { type: 'object', properties: { keyId: { type: 'string' }, apiKey: { type: 'string' } } }, '4xx': problem },
} as const;
export const deleteKeySchema = {
  summary: 'Revoke an API key (admin)',
  tags: ['admin'],
  security,
  params: { type: 'object', required: ['tenant', 'keyId'], properties: { tenant: tenantName, keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' } } },
  response: { '4xx': problem },
} as const;
export const clusterSchema = { summary: 'Shards, partitions, health, epoch, sequencer and watermark (admin)', tags: ['admin'], security } as const;
