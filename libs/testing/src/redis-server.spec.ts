import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { freePort, startRedis, tempDir, type RedisServer } from './index.ts';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server.stop();
});

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

function client(): Redis {
  return new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
}

test('freePort returns a port that can be listened on', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
});

test('tempDir creates a directory and remove() deletes it', async () => {
  const dir = await tempDir('skein-test-');
  assert.ok(existsSync(dir.path));
  await dir.remove();
  assert.ok(!existsSync(dir.path));
  await dir.remove();
});

test('startRedis serves commands on its own port with the append-only file on', async () => {
  const redis = client();
  await redis.connect();
  assert.equal(await redis.ping(), 'PONG');
  assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
  assert.deepEqual(await redis.config('GET', 'dir'), ['dir', server.dir]);
  assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
  redis.disconnect();
});

test('kill makes the server unreachable', async () => {
  await server.kill();
  try {
    await assert.rejects(connectOnce(server.port), /ECONNREFUSED/);
  } finally {
    await server.restart();
  }
});

test('restart() without wipe keeps acknowledged writes, on the same port', async () => {
  const port = server.port;
  const redis = client();
  await redis.connect();
  await redis.set('kept', '42');
  redis.disconnect();
  await server.restart();
  assert.equal(server.port, port);
  const again = client();
  await again.connect();
  assert.equal(await again.get('kept'), '42');
  again.disconnect();
});

test('restart({ wipe: true }) comes back empty on the same port', async () => {
  const port = server.port;
  const redis = client();
  await redis.connect();
  await redis.set('lost', '1');
  redis.disconnect();
  await server.restart({ wipe: true });
  assert.equal(server.port, port);
  const again = client();
  await again.connect();
  assert.equal(await again.dbsize(), 0);
  again.disconnect();
});

test('stop() removes the data directory', async () => {
  const other = await startRedis({ appendonly: false });
  assert.ok(existsSync(other.dir));
  await other.stop();
  assert.ok(!existsSync(other.dir));
});
