import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { ERROR_CODES, isErrorCode } from '@skein/protocol';
import { startCluster, type Cluster } from '@skein/testing';
import { call, tenantName } from '../support.ts';
import { startWriters, verifyAcknowledged, type LoadReport } from './load.ts';

// A hostile client of one tenant, while 16 writers of another tenant append: every
// hostile request is a 4xx problem document with a registry code, nothing of it is
// written, every read path keeps answering, and the writers never notice.

let cluster: Cluster;
before(async () => {
  cluster = await startCluster({ shards: 2 });
});
after(async () => {
  await cluster?.stop();
});

interface Answer {
  status: number;
  type: string;
  body: Record<string, unknown>;
}

/**
 * One request over a fresh socket, bytes exactly as given; the answer as the router sent it.
 * The socket is written, not ended: every request says `connection: close`, so the server
 * closes it after answering. Half-closing it ourselves races Node's HTTP server, which
 * (httpAllowHalfOpen false) drops a request whose client sent FIN before the answer was
 * ready and closes the socket with no answer at all (seen under load as status 0).
 */
function raw(url: string, request: Buffer): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const cut = text.indexOf('\r\n\r\n');
      const head = text.slice(0, cut);
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(text.slice(cut + 4));
      } catch {
        // asserted below: the status line and content type say what came back
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), type: /\r\ncontent-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '', body });
    });
  });
}

function post(path: string, key: string, body: Buffer | string, headers: Record<string, string> = {}): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const lines = [`POST ${path} HTTP/1.1`, 'host: router', `authorization: Bearer ${key}`, 'content-type: application/json', `content-length: ${bytes.length}`, 'connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bytes]);
}

function request(method: string, path: string, key: string, extraHeaders = ''): Buffer {
  return Buffer.from(`${method} ${path} HTTP/1.1\r\nhost: router\r\nauthorization: Bearer ${key}\r\n${extraHeaders}connection: close\r\n\r\n`, 'latin1');
}

const nestedText = (levels: number, open: string, close: string, leaf = '1') => open.repeat(levels) + leaf + close.repeat(levels);
const appendBody = (event: string) => `{"expectedVersion":"any","events":[${event}]}`;

test('hostile input gets a problem document, writes nothing and disturbs no reader and no writer of another tenant', async () => {
  const admin = cluster.adminKey;
  const victim = tenantName('writers');
  const hostile = tenantName('hostile');
  for (const tenant of [victim, hostile]) {
    const created = await call(cluster.url, 'POST', '/v1/admin/tenants', { key: admin, body: { tenant, partitions: 4 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const key = (await call(cluster.url, 'POST', `/v1/admin/tenants/${hostile}/keys`, { key: admin })).body.apiKey as string;
  const streamPath = `/v1/tenants/${hostile}/streams/h-1`;
  const first = await call(cluster.url, 'POST', `${streamPath}/events`, { key, body: { events: [{ type: 'Seed', data: { n: 1 } }] } });
  assert.equal(first.status, 201, JSON.stringify(first.body));

  const events = `${streamPath}/events`;
  const surrogate = '"\\ud800"';
  const hostileRequests: [name: string, request: Buffer, status: number, code: string][] = [
    ['data nested 3,000 deep', post(events, key, appendBody(`{"type":"T","data":${nestedText(3000, '{"a":', '}')}}`)), 400, 'VALIDATION_FAILED'],
    ['data nested 5,000 deep', post(events, key, appendBody(`{"type":"T","data":${nestedText(5000, '[', ']')}}`)), 400, 'VALIDATION_FAILED'],
    ['data nested 100,000 deep', post(events, key, appendBody(`{"type":"T","data":${nestedText(100_000, '[', ']')}}`)), 400, 'VALIDATION_FAILED'],
    ['metadata nested 3,000 deep', post(events, key, appendBody(`{"type":"T","data":1,"metadata":${nestedText(3000, '[', ']')}}`)), 400, 'VALIDATION_FAILED'],
    ['data nested 65 deep', post(events, key, appendBody(`{"type":"T","data":${nestedText(65, '[', ']')}}`)), 400, 'VALIDATION_FAILED'],
    ['invalid UTF-8 bytes in data', post(events, key, Buffer.concat([Buffer.from(appendBody('{"type":"T","data":"').slice(0, -2)), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}]}')])), 400, 'MALFORMED_JSON'],
    ['a UTF-8-encoded surrogate in type', post(events, key, Buffer.concat([Buffer.from('{"events":[{"type":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('","data":1}]}')])), 400, 'MALFORMED_JSON'],
    ['a lone surrogate escape in type', post(events, key, appendBody(`{"type":${surrogate},"data":1}`)), 400, 'VALIDATION_FAILED'],
    ['a lone surrogate escape in data', post(events, key, appendBody(`{"type":"T","data":{"x":[${surrogate}]}}`)), 400, 'VALIDATION_FAILED'],
    ['a lone surrogate escape in a member name', post(events, key, appendBody(`{"type":"T","data":{"\\udc00":1}}`)), 400, 'VALIDATION_FAILED'],
    ['a lone surrogate escape in metadata', post(events, key, appendBody(`{"type":"T","data":1,"metadata":${surrogate}}`)), 400, 'VALIDATION_FAILED'],
    ['a stream id that is not UTF-8', post(`/v1/tenants/${hostile}/streams/h-%ED%A0%80/events`, key, appendBody('{"type":"T","data":1}')), 400, 'VALIDATION_FAILED'],
    ['garbage JSON', post(events, key, '{"events":[{{{{'), 400, 'MALFORMED_JSON'],
    ['an empty JSON body', post(events, key, ''), 400, 'MALFORMED_JSON'],
    ['a snapshot nested 5,000 deep', Buffer.from(post(`${streamPath}/snapshots/1`, key, nestedText(5000, '[', ']')).toString('latin1').replace('POST', 'PUT'), 'latin1'), 400, 'VALIDATION_FAILED'],
    ['custom metadata nested 5,000 deep', Buffer.from(post(`${streamPath}/metadata`, key, `{"custom":${nestedText(5000, '[', ']')}}`).toString('latin1').replace('POST', 'PUT'), 'latin1'), 400, 'VALIDATION_FAILED'],
    ['a path segment of 3,000 characters', post(`/v1/tenants/${hostile}/streams/${'s'.repeat(3000)}/events`, key, appendBody('{"type":"T","data":1}')), 414, 'URI_TOO_LONG'],
    ['a URL of 20 KiB', request('GET', `${streamPath}?${'x'.repeat(20_000)}=1`, key), 431, 'HEADERS_TOO_LARGE'],
    ['headers of 20 KiB', request('GET', streamPath, key, `x-filler: ${'f'.repeat(20_000)}\r\n`), 431, 'HEADERS_TOO_LARGE'],
    ['a request that is not HTTP', Buffer.from('\u0000\u0001 garbage\r\n\r\n', 'latin1'), 400, 'VALIDATION_FAILED'],
  ];

  const load = startWriters({ url: cluster.url, key: admin, tenant: victim, writers: 16 });
  let report: LoadReport;
  try {
    // Let the writers get going, then send every hostile request three times over, the
    // rounds concurrent with each other and with the load.
    await new Promise((r) => setTimeout(r, 500));
    const rounds = await Promise.all([0, 1, 2].map(() => Promise.all(hostileRequests.map(([, bytes]) => raw(cluster.url, bytes)))));
    for (const answers of rounds) {
      answers.forEach((answer, i) => {
        const [name, , status, code] = hostileRequests[i]!;
        assert.equal(answer.status, status, `${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
        assert.match(answer.type, /^application\/problem\+json/, name);
        assert.equal(answer.body.code, code, name);
        assert.ok(isErrorCode(answer.body.code) && ERROR_CODES[answer.body.code].status === status, `${name}: ${String(answer.body.code)} is a registry code of status ${status}`);
        assert.equal(answer.body.status, status, name);
      });
    }
    // The stream, its tenant's log and the cluster log answer 200 afterwards, showing only the seed.
    const stream = await call(cluster.url, 'GET', streamPath, { key });
    assert.equal(stream.status, 200, JSON.stringify(stream.body));
    assert.deepEqual(stream.body.events.map((e: { type: string }) => e.type), ['Seed']);
    const tenantLog = await call(cluster.url, 'GET', `/v1/tenants/${hostile}/events?limit=1000`, { key });
    assert.equal(tenantLog.status, 200, JSON.stringify(tenantLog.body));
    assert.deepEqual(tenantLog.body.events.map((e: { streamId: string }) => e.streamId), ['h-1']);
    const snapshot = await call(cluster.url, 'GET', `${streamPath}/snapshots/latest`, { key });
    assert.equal(snapshot.status, 404);
    const metadata = await call(cluster.url, 'GET', `${streamPath}/metadata`, { key });
    assert.equal(metadata.status, 200);
    assert.equal(metadata.body.custom, undefined);
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    report = await load.stop();
  }
  let from = '0';
  for (let pages = 0; ; pages++) {
    const page = await call(cluster.url, 'GET', `/v1/events?fromPosition=${from}&limit=1000`, { key: admin });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    if (page.body.events.length === 0 || pages > 1000) break;
    from = page.body.next;
  }
  assert.ok(report.acks.length > 50, `only ${report.acks.length} acknowledgements`);
  assert.deepEqual(Object.keys(report.statuses).filter((s) => s !== '201' && s !== '200'), [], `the writers saw ${JSON.stringify(report.statuses)}`);
  await verifyAcknowledged({ url: cluster.url, key: admin, tenant: victim }, report);
});
