import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { json, problem, sseHead, sseMessage, startFakeApi, wireEvent } from '../testing/fake-api.ts';
import type { FakeApi, FakeHandler } from '../testing/fake-api.ts';
import { eventsFromJson } from './run.ts';

const BIN = fileURLToPath(new URL('../../bin/skein.mjs', import.meta.url));
const KEY = 'a'.repeat(40);
const servers: FakeApi[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function serve(handlers: FakeHandler | FakeHandler[]): Promise<FakeApi> {
  const api = await startFakeApi(handlers);
  servers.push(api);
  return api;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `skein` executable; `onStdout` sees output as it arrives (for tail). */
function skein(args: string[], options: { url?: string; stdin?: string; onStdout?: (text: string, kill: () => void) => void } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, SKEIN_URL: options.url, SKEIN_API_KEY: KEY };
  if (options.url === undefined) delete env.SKEIN_URL;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => {
    stdout += t;
    options.onStdout?.(stdout, () => child.kill('SIGINT'));
  });
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  if (options.stdin !== undefined) child.stdin.end(options.stdin);
  else child.stdin.end();
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

const appended = { streamId: 'order-1', firstVersion: 1, lastVersion: 2, firstPosition: '9007199254740993', lastPosition: '9007199254740994' };

test('--help prints the usage and exits 0', async () => {
  const r = await skein(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: skein/);
  assert.match(r.stdout, /tail <tenant> \[stream\]/);
});

test('--version prints the version of @skein/client', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await skein([flag]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test('a usage error prints one line and a hint, and exits 2', async () => {
  for (const args of [['read', 'acme'], ['frobnicate'], ['read', 'acme', 's', '--partitions', '2'], ['read', 'acme', 's', '--limit', 'lots'], []]) {
    const r = await skein(args, { url: 'http://127.0.0.1:1' });
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^error: .+\nrun 'skein --help' for usage\n$/);
    assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
  }
  const bad = await skein(['append', 'acme', 's', '[1,2]'], { url: 'http://127.0.0.1:1' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--type/);
});

test('append sends the event from the argument and prints the result', async () => {
  const api = await serve(json(201, appended));
  const r = await skein(['append', 'acme', 'order-1', '{"n":1}', '--type', 'Noted', '--expected-version', 'no_stream', '--idempotency-key', 'k1'], { url: api.url });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'appended order-1@1..2 (position 9007199254740993..9007199254740994)\n');
  const req = api.requests[0]!;
  assert.equal(req.headers.authorization, `Bearer ${KEY}`);
  assert.equal(req.headers['idempotency-key'], 'k1');
  assert.deepEqual(JSON.parse(req.body), { events: [{ type: 'Noted', data: { n: 1 } }], expectedVersion: 'no_stream' });
});

test('append reads events from stdin, and --json prints the result as JSON', async () => {
  const api = await serve(json(201, appended));
  const r = await skein(['--json', 'append', 'acme', 'order-1', '--url', api.url], { stdin: '[{"type":"A","data":1},{"type":"B","data":{"x":2}}]' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), appended);
  assert.deepEqual(JSON.parse(api.requests[0]!.body).events, [{ type: 'A', data: 1 }, { type: 'B', data: { x: 2 } }]);
});

test('an API error prints one line with the code and its facts, and exits 1', async () => {
  const api = await serve(problem(409, 'WRONG_EXPECTED_VERSION', { expected: 3, actual: 5 }));
  const r = await skein(['append', 'acme', 'order-1', '{"type":"A","data":1}', '--expected-version', '3'], { url: api.url });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: WRONG_EXPECTED_VERSION: expected 3, stream is at 5\n');
  assert.equal(r.stdout, '');
});

test('an unreachable server is one UNAVAILABLE line and exit 1', async () => {
  const api = await serve(json(200, {}));
  await api.close();
  const r = await skein(['append', 'acme', 's', '{"type":"A","data":1}'], { url: api.url });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: UNAVAILABLE: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
});

test('read --json prints one event per line across pages, positions as strings', async () => {
  const api = await serve([
    json(200, { events: [wireEvent(1, '9007199254740993')], version: 2, next: 2 }),
    json(200, { events: [wireEvent(2, '9007199254740994')], version: 2, next: null }),
  ]);
  const r = await skein(['read', 'acme', 'order-1', '--json'], { url: api.url });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => [e.version, e.position]), [[1, '9007199254740993'], [2, '9007199254740994']]);
});

test('read prints readable lines, and stops at --limit', async () => {
  const api = await serve(json(200, { events: [wireEvent(5, 20), wireEvent(4, 19)], version: 5, next: 3 }));
  const r = await skein(['read', 'acme', 'order-1', '--backward', '--limit', '2'], { url: api.url });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'order-1@5 Happened pos=20 2026-11-27T10:00:00.000Z {"n":5}\norder-1@4 Happened pos=19 2026-11-27T10:00:00.000Z {"n":4}\n');
  assert.equal(api.requests.length, 1);
  assert.equal(api.requests[0]!.url, '/v1/tenants/acme/streams/order-1?direction=backward&limit=2');
});

test('log reads the tenant log up to now with its filters', async () => {
  const api = await serve([json(200, { events: [wireEvent(1, 7)], next: '8' }), json(200, { events: [], next: '8' })]);
  const r = await skein(['log', 'acme', '--from-position', '7', '--category', 'order', '--types', 'A,B'], { url: api.url });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  assert.equal(api.requests[0]!.url, '/v1/tenants/acme/events?fromPosition=7&category=order&types=A%2CB');
});

test('tenant create prints the new key; status prints the cluster', async () => {
  const api = await serve([json(201, { tenant: 'acme', partitions: 2, apiKey: 'z'.repeat(40) }), json(200, { epoch: 4, shards: [{ id: 'shard-1', healthy: true }] })]);
  const created = await skein(['tenant', 'create', 'acme', '--partitions', '2'], { url: api.url });
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, new RegExp(`created tenant acme with 2 partition\\(s\\)\napi key \\(shown only now\\): ${'z'.repeat(40)}\n`));
  assert.deepEqual(JSON.parse(api.requests[0]!.body), { tenant: 'acme', partitions: 2 });
  const status = await skein(['status'], { url: api.url });
  assert.equal(status.code, 0, status.stderr);
  assert.equal(status.stdout, 'epoch: 4\nshards:\n  [0]:\n    id: shard-1\n    healthy: true\n');

  const quoted = await serve([json(201, { tenant: 'busy', partitions: 1, quota: { eventsPerSecond: 500 }, apiKey: 'q'.repeat(40) })]);
  const withQuota = await skein(['tenant', 'create', 'busy', '--quota', '500'], { url: quoted.url });
  assert.equal(withQuota.code, 0, withQuota.stderr);
  assert.match(withQuota.stdout, /^created tenant busy with 1 partition\(s\), at most 500 events\/s\n/);
  assert.deepEqual(JSON.parse(quoted.requests[0]!.body), { tenant: 'busy', quota: { eventsPerSecond: 500 } });
  const bad = await skein(['tenant', 'create', 'busy', '--quota', 'lots'], { url: quoted.url });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--quota must be an integer/);
});

test('tail prints events as they arrive and exits 0 on Ctrl-C', async () => {
  const api = await serve((_req, res) => {
    sseHead(res);
    res.write(sseMessage(3, wireEvent(3, 30)));
    setTimeout(() => res.write(sseMessage(4, wireEvent(4, 31))), 50);
  });
  let killed = false;
  const r = await skein(['tail', 'acme', 'order-1', '--json'], {
    url: api.url,
    onStdout: (text, kill) => {
      if (!killed && text.split('\n').length > 2) {
        killed = true;
        kill();
      }
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l).version), [3, 4]);
  assert.equal(api.requests[0]!.url, '/v1/tenants/acme/streams/order-1/subscribe?from=end');
});

test('eventsFromJson accepts an event, an array of events, or raw data with a type', () => {
  assert.deepEqual(eventsFromJson('{"type":"A","data":{"x":1}}', undefined), [{ type: 'A', data: { x: 1 } }]);
  assert.deepEqual(eventsFromJson('[{"type":"A"},{"type":"B","data":2,"metadata":{"m":1}}]', undefined), [
    { type: 'A', data: null },
    { type: 'B', data: 2, metadata: { m: 1 } },
  ]);
  assert.deepEqual(eventsFromJson('[1,2]', 'Raw'), [{ type: 'Raw', data: [1, 2] }]);
  assert.throws(() => eventsFromJson('{"data":1}', undefined), /--type/);
  assert.throws(() => eventsFromJson('{nope', 'T'), /not valid JSON/);
});

test('jobs lists a move\'s job with its phase, shards and bytes copied', async () => {
  const createdAt = '2026-01-01T00:00:00.000Z';
  const api = await serve([
    json(200, {
      jobs: [
        { id: 'm1', kind: 'move', partition: 'acme~0', state: 'active', progress: 50, attempts: 2, createdAt, move: { state: 'tailing', from: 'shard-0', to: 'shard-3', copiedBytes: 4096, copiedEntries: 12 } },
        { id: 'shard-1:7', kind: 'retention', partition: 'acme~1', shard: 'shard-1', state: 'completed', progress: 100, attempts: 1, createdAt },
      ],
    }),
  ]);
  const listed = await skein(['jobs', '--kind', 'move'], { url: api.url });
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(api.requests[0]!.url, '/v1/admin/jobs?kind=move');
  assert.equal(
    listed.stdout,
    `m1  move  acme~0  active  50%  tailing shard-0 -> shard-3 4096 bytes  attempts 2  ${createdAt}\nshard-1:7  retention  acme~1  completed  100%  attempts 1  ${createdAt}\n`,
  );
});

test('cluster add, rebalance --plan, drain, remove and partition move call the membership routes', async () => {
  const move = { id: 'm1', partition: 'acme~0', from: 'shard-0', to: 'shard-3', copiedBytes: 0 };
  const api = await serve([
    json(201, { id: 'shard-3', url: 'http://10.0.0.4:7000', state: 'active' }),
    json(200, { moves: [{ partition: 'acme~0', from: 'shard-0', to: 'shard-3' }] }),
    json(202, { moves: [{ id: 'm2', partition: 'acme~1', from: 'shard-1', to: 'shard-2' }] }),
    problem(409, 'SHARD_NOT_EMPTY', { detail: 'shard shard-1 still owns 1 partition(s): drain it first' }),
    json(202, { ...move, state: 'copying' }),
    json(200, { ...move, state: 'done', copiedBytes: 1234, pauseMs: 87 }),
  ]);
  const add = await skein(['cluster', 'add', 'shard-3', 'http://10.0.0.4:7000'], { url: api.url });
  assert.equal(add.code, 0, add.stderr);
  assert.deepEqual(JSON.parse(api.requests[0]!.body), { id: 'shard-3', url: 'http://10.0.0.4:7000' });
  const plan = await skein(['cluster', 'rebalance', '--plan'], { url: api.url });
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal(plan.stdout, 'plan: 1 move(s)\n  acme~0  shard-0 -> shard-3\n');
  assert.deepEqual(JSON.parse(api.requests[1]!.body), { dryRun: true });
  const drain = await skein(['cluster', 'drain', 'shard-1'], { url: api.url });
  assert.equal(drain.code, 0, drain.stderr);
  assert.equal(api.requests[2]!.url, '/v1/admin/cluster/shards/shard-1/drain');
  const remove = await skein(['cluster', 'remove', 'shard-1'], { url: api.url });
  assert.equal(remove.code, 1);
  assert.match(remove.stderr, /SHARD_NOT_EMPTY/);
  assert.match(remove.stderr, /drain it first/);
  const moved = await skein(['partition', 'move', 'acme~0', 'shard-3'], { url: api.url });
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, /done: 1234 bytes copied, writes paused 87 ms\n$/);
  assert.equal(api.requests[5]!.url, '/v1/admin/moves/m1');
});
