import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';
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

/** The first reply line of one command sent over a plain, unauthenticated connection. */
function rawReply(port: number, command: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let answer = '';
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed without a reply')));
    socket.once('connect', () => socket.write(`*${command.length}\r\n${command.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      const end = answer.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(answer.slice(0, end));
      }
    });
  });
}

/** Connects with `url` (and `tls`), runs `fn`, disconnects. */
async function withClient<T>(url: string, extra: { tls?: { ca: string } }, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { ...extra, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

test('startRedis with a password or an ACL user refuses clients without it, and its url carries the credentials', async () => {
  const withPassword = await startRedis({ password: 'pw-0123456789', appendonly: false });
  const withUser = await startRedis({ user: { name: 'skein', password: 'user-pw-0123' }, appendonly: false });
  try {
    assert.equal(withPassword.url, `redis://:pw-0123456789@127.0.0.1:${withPassword.port}`);
    assert.equal(withUser.url, `redis://skein:user-pw-0123@127.0.0.1:${withUser.port}`);
    for (const s of [withPassword, withUser]) {
      assert.equal(await withClient(s.url, {}, (r) => r.ping()), 'PONG');
      assert.match(await rawReply(s.port, ['SET', 'minted', 'x']), /^-NOAUTH/);
      assert.match(await rawReply(s.port, s === withUser ? ['AUTH', 'skein', 'wrong'] : ['AUTH', 'wrong']), /^-WRONGPASS/);
      assert.equal(await withClient(s.url, {}, (r) => r.exists('minted')), 0);
    }
    assert.equal(await withClient(withUser.url, {}, (r) => r.acl('WHOAMI')), 'skein');
  } finally {
    await withPassword.stop();
    await withUser.stop();
  }
});

test('startRedis with tls serves TLS only, verified against its CA', async () => {
  const server = await startRedis({ tls: true, password: 'tls-pw-0123', appendonly: false });
  try {
    assert.ok(server.tlsCaFile);
    assert.ok(server.url.startsWith('rediss://'));
    const ca = await readFile(server.tlsCaFile, 'utf8');
    assert.equal(await withClient(server.url, { tls: { ca } }, (r) => r.ping()), 'PONG');
    // Without the CA the certificate is not trusted; without TLS the server answers nothing.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = connectTls({ port: server.port, host: '127.0.0.1' }, () => resolve(socket.end()));
        socket.once('error', reject);
      }),
      /self-signed certificate/,
    );
    await assert.rejects(rawReply(server.port, ['PING']), /closed without a reply|ECONNRESET/);
  } finally {
    await server.stop();
  }
});
