// `npm start` as a new user meets it: the local cluster comes up (one node process hosting
// the router and three shards, beside redis-server), SIGKILL of the whole process group
// loses no acknowledged event, and SIGINT stops every process it started; with
// `--processes 3`, a shard process that dies is restarted; with `--nodes 2`, two node
// processes share the public port, and one SIGKILLed under writers is restarted with every
// acknowledged event kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from '@skein/client';
import { partitionOf } from '@skein/protocol';
import { freeStartPort, isPortFree, tempDir } from '@skein/testing';
import { START, npmStart, type NpmStartRun } from './npm-start.ts';
import { call } from './support.ts';

/** `npm start [args]` with its data in `dataDir`. */
const start = (dataDir: string, port: number, args: string[] = []): Promise<NpmStartRun> => npmStart(undefined, port, { ...process.env, SKEIN_DATA_DIR: dataDir }, { args, timeoutMs: 60_000 });

test('npm start survives SIGKILL of its process group without losing an acknowledged event, and SIGINT stops everything', { timeout: 180_000 }, async () => {
  const dir = await tempDir('skein-start-');
  const port = await freeStartPort();
  try {
    let run = await start(dir.path, port);
    assert.deepEqual([...children(run.child.pid!).keys()].sort(), ['node', 'redis'], 'one node process beside redis-server');
    assert.match(run.output(), /skein: starting one node process: the router on port \d+, shard-0, shard-1, shard-2/);
    const admin = createClient({ url: run.url, apiKey: run.adminKey });
    const { apiKey } = await admin.admin.createTenant('demo', { partitions: 3 });
    const client = createClient({ url: run.url, apiKey });
    const acked: bigint[] = [];
    let stop = false;
    const writers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await client.append('demo', `order-${w}`, { events: [{ type: 'A', data: i }] });
          acked.push(r.firstPosition);
        } catch {
          return; // the cluster went away mid-request: not acknowledged
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(-run.child.pid!, 'SIGKILL');
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.length > 20, `acknowledged ${acked.length} appends before the kill`);

    run = await start(dir.path, port);
    // The restart found its directory free (the kill released the holds); a second npm start on it is refused before it starts anything.
    const second = await promisify(execFile)(process.execPath, [START, '--nodes', '1'], { env: { ...process.env, SKEIN_DATA_DIR: dir.path, SKEIN_PORT: String(port + 50) }, timeout: 30_000 }).then(
      () => assert.fail('a second npm start on the same data directory started'),
      (err: { code?: number; stderr?: string }) => err,
    );
    assert.equal(second.code, 1);
    assert.match(second.stderr ?? '', /another npm start is running on the data directory/);
    const again = createClient({ url: run.url, apiKey });
    const stored = new Set<bigint>();
    for await (const e of again.tenantLogEvents('demo')) stored.add(e.position);
    for (const p of acked) assert.ok(stored.has(p), `acknowledged position ${p} is there after the restart`);

    process.kill(-run.child.pid!, 'SIGINT');
    await new Promise((r) => run.child.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    for (const p of [port, port + 1, port + 2, port + 3, port + 100]) assert.ok(await isPortFree(p), `port ${p} was released`);
  } finally {
    await dir.remove();
  }
});

/** Pids of the live children of `ppid`, with their SKEIN_SHARD_ID (or `redis`, `node`, `router`), from /proc (Linux). */
function children(ppid: number): Map<string, number> {
  const found = new Map<string, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== ppid || fields[0] === 'Z') continue;
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      const shard = environ.find((v) => v.startsWith('SKEIN_SHARD_ID='))?.slice('SKEIN_SHARD_ID='.length);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const node = environ.includes('SKEIN_ROLE=node');
      const nodeId = environ.find((v) => v.startsWith('SKEIN_NODE_ID='))?.slice('SKEIN_NODE_ID='.length);
      found.set(shard ?? (cmdline.startsWith('redis-server') ? 'redis' : node ? (nodeId === undefined ? 'node' : `node-${nodeId}`) : 'router'), Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('npm start -- --processes 3 restarts a SIGKILLed shard with a backoff and says so; its partitions take appends again; SIGINT stops everything', { timeout: 240_000 }, async () => {
  const dir = await tempDir('skein-start-restart-');
  const port = await freeStartPort();
  let run: NpmStartRun | undefined;
  try {
    run = await start(dir.path, port, ['--processes', '3']);
    for (const file of ['admin-key', 'cluster-secret', 'redis-password']) {
      assert.equal(statSync(join(dir.path, file)).mode & 0o777, 0o600, `${file} is readable by its owner only`);
    }
    assert.ok(readFileSync(join(dir.path, 'cluster-secret'), 'utf8').trim().length >= 32);

    const created = await call(run.url, 'POST', '/v1/admin/tenants', { key: run.adminKey, body: { tenant: 'demo', partitions: 4 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const key = created.body.apiKey as string;
    const placement = (await call(run.url, 'GET', '/v1/admin/tenants/demo', { key: run.adminKey })).body.placement as Record<string, string>;
    const victim = placement['demo~0']!;
    const stream = Array.from({ length: 1000 }, (_, i) => `order-${i}`).find((s) => partitionOf('demo', 4, s) === 'demo~0')!;
    const append = (expectedVersion: number) => call(run!.url, 'POST', `/v1/tenants/demo/streams/${stream}/events`, { key, body: { expectedVersion, events: [{ type: 'A', data: expectedVersion }] } });
    assert.equal((await append(0)).status, 201);

    const before = children(run.child.pid!);
    assert.deepEqual([...before.keys()].sort(), ['redis', 'router', 'shard-0', 'shard-1', 'shard-2']);
    const firstPid = before.get(victim)!;
    process.kill(firstPid, 'SIGKILL');
    await until('the restart line', () => (new RegExp(`skein: ${victim} exited \\(signal SIGKILL\\); restarting it in 0\\.5 s`).test(run!.output()) ? true : undefined));
    // Until it is back, its partitions answer 503; then the append goes through at the version expected.
    const appended = await until('an append to the restarted shard', async () => ((await append(1)).status === 201 ? true : undefined));
    assert.ok(appended);
    const secondPid = children(run.child.pid!).get(victim);
    assert.ok(secondPid !== undefined && secondPid !== firstPid, 'a new process serves the shard');

    // A second crash soon after waits twice as long.
    process.kill(secondPid, 'SIGKILL');
    await until('the second restart line', () => (new RegExp(`skein: ${victim} exited \\(signal SIGKILL\\); restarting it in 1 s`).test(run!.output()) ? true : undefined));
    await until('an append after the second restart', async () => ((await append(2)).status === 201 ? true : undefined));
    const read = await call(run.url, 'GET', `/v1/tenants/demo/streams/${stream}`, { key });
    assert.deepEqual(read.body.events.map((e: { data: number }) => e.data), [0, 1, 2]);
    assert.doesNotMatch(
      run.output(),
      /skein: (?!starting |build: |control plane: |redis-server is up|shard-\d is up|router is up|shard-\d exited \(signal SIGKILL\); restarting)/,
      'no other process was restarted, nothing failed',
    );

    // SIGINT to the launcher alone stops every process it started.
    const last = [...children(run.child.pid!).values()];
    assert.equal(last.length, 5);
    const exited = new Promise((r) => run!.child.once('exit', r));
    process.kill(run.child.pid!, 'SIGINT');
    await exited;
    await until('every child gone', () => (last.every((pid) => !alive(pid)) ? true : undefined), 15_000);
    for (const p of [port, port + 1, port + 2, port + 3, port + 100]) assert.ok(await isPortFree(p), `port ${p} was released`);
    run = undefined;
  } finally {
    if (run?.child.pid && alive(run.child.pid)) process.kill(-run.child.pid, 'SIGKILL');
    await dir.remove();
  }
});

test('npm start -- --nodes 2: two node processes serve the one public port, appends reach every partition and read back; a node SIGKILLed under 8 writers is restarted and every acknowledged event is there', { timeout: 120_000 }, async () => {
  const dir = await tempDir('skein-start-nodes-');
  const port = await freeStartPort();
  let run: NpmStartRun | undefined;
  try {
    run = await start(dir.path, port, ['--nodes', '2']);
    assert.match(run.output(), /skein: starting 2 node processes sharing port \d+ \(Node's cluster module\): node-0 hosting shard-0; node-1 hosting shard-1, shard-2/);
    assert.match(run.output(), /skein: node-0 is up: its router at .*, shard-0 in-process/);
    assert.match(run.output(), /skein: node-1 is up: its router at .*, shard-1, shard-2 in-process/);
    const before = children(run.child.pid!);
    assert.deepEqual([...before.keys()].sort(), ['node-0', 'node-1', 'redis']);

    const partitions = 6;
    const admin = createClient({ url: run.url, apiKey: run.adminKey });
    const { apiKey } = await admin.admin.createTenant('demo', { partitions });
    const placement = (await call(run.url, 'GET', '/v1/admin/tenants/demo', { key: run.adminKey })).body.placement as Record<string, string>;
    assert.deepEqual(new Set(Object.values(placement)), new Set(['shard-0', 'shard-1', 'shard-2']), 'the partitions are spread over the shards of both nodes');
    // Two streams per partition: each node's router reaches its own shards in-process and the other's over the internal API.
    const streams = Array.from({ length: partitions }, (_, p) => Array.from({ length: 500 }, (_, i) => `order-${i}`).filter((s) => partitionOf('demo', partitions, s) === `demo~${p}`).slice(0, 2)).flat();
    assert.equal(streams.length, 2 * partitions);
    const client = createClient({ url: run.url, apiKey });
    const acked = new Map<string, bigint[]>(streams.map((s) => [s, []]));
    for (const s of streams) acked.get(s)!.push((await client.append('demo', s, { events: [{ type: 'A', data: 0 }], expectedVersion: 'no_stream' })).firstPosition);
    for (const s of streams) assert.deepEqual((await client.readStream('demo', s)).events.map((e) => e.position), acked.get(s), `${s} reads back through the public port`);

    // 8 writers over every partition; node-1 (shard-1, shard-2) is SIGKILLed under them.
    let stopWriting = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stopWriting; i++) {
        const s = streams[(w + i * 8) % streams.length]!;
        try {
          acked.get(s)!.push((await client.append('demo', s, { events: [{ type: 'B', data: i }] })).firstPosition);
        } catch {
          await new Promise((r) => setTimeout(r, 50)); // not acknowledged: its shard's node is away
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const beforeKill = [...acked.values()].reduce((n, a) => n + a.length, 0);
    process.kill(before.get('node-1')!, 'SIGKILL');
    await until('the restart line', () => (/skein: node-1 exited \(signal SIGKILL\); restarting it in 0\.5 s/.test(run!.output()) ? true : undefined), 10_000);
    const restarted = await until('node-1 back', () => {
      const pid = children(run!.child.pid!).get('node-1');
      return pid !== undefined && pid !== before.get('node-1') ? pid : undefined;
    }, 10_000);
    // Every partition takes appends again (node-1's own shards included), then the writers stop.
    const afterKill = new Map(streams.map((s) => [s, acked.get(s)!.length]));
    await until('appends to every stream after the restart', () => (streams.every((s) => acked.get(s)!.length > afterKill.get(s)!) ? true : undefined), 20_000);
    stopWriting = true;
    await Promise.all(writers);
    assert.ok(beforeKill > 20, `acknowledged ${beforeKill} appends before the kill`);
    assert.equal(children(run.child.pid!).get('node-0'), before.get('node-0'), 'node-0 was not restarted');
    assert.ok(alive(restarted));

    let total = 0;
    for (const s of streams) {
      const stored = new Set<bigint>();
      for await (const e of client.streamEvents('demo', s)) stored.add(e.position);
      for (const p of acked.get(s)!) assert.ok(stored.has(p), `acknowledged position ${p} of ${s} is there after the kill`);
      total += acked.get(s)!.length;
    }
    const log = new Set<bigint>();
    for await (const e of client.tenantLogEvents('demo')) log.add(e.position);
    for (const positions of acked.values()) for (const p of positions) assert.ok(log.has(p), `acknowledged position ${p} is in the tenant log`);
    assert.ok(total > beforeKill);

    const last = [...children(run.child.pid!).values()];
    const exited = new Promise((r) => run!.child.once('exit', r));
    process.kill(run.child.pid!, 'SIGINT');
    await exited;
    await until('every child gone', () => (last.every((pid) => !alive(pid)) ? true : undefined), 15_000);
    for (const p of [port, port + 1, port + 2, port + 3, port + 100]) assert.ok(await isPortFree(p), `port ${p} was released`);
    run = undefined;
  } finally {
    if (run?.child.pid && alive(run.child.pid)) process.kill(-run.child.pid, 'SIGKILL');
    await dir.remove();
  }
});
