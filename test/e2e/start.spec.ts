// `npm start` as a new user meets it: the local cluster comes up, SIGKILL of the whole
// process group loses no acknowledged event, and SIGINT stops every process it started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createClient } from '@skein/client';
import { tempDir } from '@skein/testing';

const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));

function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function basePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const p = 20000 + Math.floor(Math.random() * 20000);
    const ports = [p, p + 1, p + 2, p + 3, p + 100];
    if ((await Promise.all(ports.map(free))).every(Boolean)) return p;
  }
  throw new Error('no free port range');
}

function start(dataDir: string, port: number): Promise<{ child: ChildProcess; adminKey: string; url: string }> {
  const child = spawn(process.execPath, [START], { env: { ...process.env, SKEIN_DATA_DIR: dataDir, SKEIN_PORT: String(port) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const key = /admin key: (\S+)/.exec(out);
      if (out.includes('Skein is running at') && key) {
        clearTimeout(timer);
        resolve({ child, adminKey: key[1]!, url: `http://127.0.0.1:${port}` });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited (${code}):\n${out}`));
    });
  });
}

test('npm start survives SIGKILL of its process group without losing an acknowledged event, and SIGINT stops everything', { timeout: 180_000 }, async () => {
  const dir = await tempDir('skein-start-');
  const port = await basePort();
  try {
    let run = await start(dir.path, port);
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
    const again = createClient({ url: run.url, apiKey });
    const stored = new Set<bigint>();
    for await (const e of again.tenantLogEvents('demo')) stored.add(e.position);
    for (const p of acked) assert.ok(stored.has(p), `acknowledged position ${p} is there after the restart`);

    process.kill(-run.child.pid!, 'SIGINT');
    await new Promise((r) => run.child.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
    for (const p of [port, port + 1, port + 2, port + 3, port + 100]) assert.ok(await free(p), `port ${p} was released`);
  } finally {
    await dir.remove();
  }
});
