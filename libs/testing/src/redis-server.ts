import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { freePort } from './ports.ts';
import { tempDir } from './temp-dir.ts';
import { makeTlsFiles } from './tls-files.ts';

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /**
   * Persist every write to an append-only file in the server's own directory, so
   * that `restart()` comes back with the data (a SIGKILL loses nothing the server
   * acknowledged: it writes the AOF before replying, only the fsync is deferred).
   * Default true.
   */
  appendonly?: boolean;
  /** With `appendonly`: when the AOF is fsynced. `always` as npm start's private redis-server and production run it. Default `everysec`. */
  appendfsync?: 'always' | 'everysec';
  /** How long to wait for the server to answer PING after each (re)start. Default 5000 ms. */
  startTimeoutMs?: number;
  /** Require AUTH with this password (`requirepass`); `url` carries it: `redis://:<password>@…`. */
  password?: string;
  /**
   * Require AUTH as this ACL user (every key, channel and command), the default user
   * disabled; `url` carries it: `redis://<name>:<password>@…`.
   */
  user?: { name: string; password: string };
  /**
   * Serve TLS only (`--port 0 --tls-port`), with a server certificate signed by a CA made
   * with `openssl` in the server's temp dir (`tlsCaFile`); `url` is `rediss://…`.
   */
  tls?: boolean;
}

/** A `redis-server` process owned by a test, on its own port and data directory. */
export interface RedisServer {
  /** The port it listens on, on 127.0.0.1; kept across restarts. */
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, with the user and password when given, `rediss://` with `tls`. */
  readonly url: string;
  /** With `tls`: the PEM file of the CA that signed the server's certificate (SKEIN_REDIS_TLS_CA_FILE). */
  readonly tlsCaFile?: string;
  /** Its data directory (`--dir`), holding the AOF. */
  readonly dir: string;
  /** The running process's pid (undefined while it is not running): for counting its CPU. */
  readonly pid: number | undefined;
  /**
   * Sends `signal` (default SIGKILL: a crash) and resolves once the process has exited.
   * SIGSTOP and SIGCONT resolve at once: a stopped server keeps its connections open
   * and answers nothing (a hung host), until SIGCONT. No-op when not running.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Kills the server if it still runs (SIGKILL), then starts it again on the same port
   * and directory, and resolves once it answers PING. With `wipe: true` the data
   * directory is emptied first: the server comes back with no data, as after losing
   * its volume.
   */
  restart(options?: { wipe?: boolean }): Promise<void>;
  /** Kills the server and deletes its directory. */
  stop(): Promise<void>;
}

// Children still running when the test process exits are killed, and directories of
// servers never stopped are removed, whatever the test did: an orphaned redis-server
// would hold its port and temp dir. These sets only serve that exit hook; every server
// is otherwise reached through its own RedisServer.
const running = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of running) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}
function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

const REDIS_MISSING =
  'redis-server was not found on PATH; the test harness needs Redis 6.2 or newer ' +
  '(Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis)';

/**
 * Starts a `redis-server` from PATH on a free port bound to 127.0.0.1, with a fresh
 * temp directory, no RDB snapshots, and (by default) an append-only file. Resolves
 * once it answers PING.
 * @throws Error naming the missing binary when redis-server is not on PATH, or with
 *   the tail of the server's log when it does not come up in `startTimeoutMs`.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const appendonly = options.appendonly ?? true;
  const startTimeoutMs = options.startTimeoutMs ?? 5000;
  installExitHook();
  const root = await tempDir('skein-redis-');
  dirs.add(root.path);
  const dir = join(root.path, 'data');
  const logfile = join(root.path, 'redis.log');
  await mkdir(dir);
  const port = await freePort();
  let child: ChildProcess | undefined;

  // Passwords go in a config file, not on the command line, as a deployment would do it.
  const conf = join(root.path, 'redis.conf');
  const auth = options.user ? [options.user.name, options.user.password] : options.password !== undefined ? [options.password] : [];
  const confLines: string[] = [];
  if (options.password !== undefined) confLines.push(`requirepass "${options.password}"`);
  if (options.user) confLines.push('user default off', `user ${options.user.name} on >${options.user.password} ~* &* +@all`);
  await writeFile(conf, confLines.join('\n') + '\n', { mode: 0o600 });
  const tls = options.tls ? await makeTlsFiles(root.path) : undefined;

  const args = [
    conf,
    ...(tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', appendonly ? 'yes' : 'no',
    '--appendfsync', options.appendfsync ?? 'everysec',
    // As production must (README, "Redis"): a shard refuses maintenance (BullMQ) on a Redis that may evict.
    '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no',
    '--logfile', logfile,
  ];

  async function start(): Promise<void> {
    const c = spawn('redis-server', args, { stdio: 'ignore' });
    child = c;
    const spawned = new Promise<void>((resolve, reject) => {
      c.once('spawn', resolve);
      c.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new Error(REDIS_MISSING, { cause: err }) : err),
      );
    });
    await spawned;
    c.unref();
    track(c);
    try {
      await waitForPing({ port, auth, ...(tls ? { ca: tls.caFile } : {}) }, c, startTimeoutMs);
    } catch (err) {
      await kill('SIGKILL');
      const log = await readFile(logfile, 'utf8').catch(() => '');
      throw new Error(`redis-server on port ${port} did not start: ${(err as Error).message}\n${log.split('\n').slice(-15).join('\n')}`, { cause: err });
    }
  }

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      c.kill(signal);
      return;
    }
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    // Unreferenced so a forgotten server never holds the test process open; referenced
    // again while someone waits for it to exit.
    c.ref();
    c.kill(signal);
    await exited;
  }

  try {
    await start();
  } catch (err) {
    await root.remove();
    dirs.delete(root.path);
    throw err;
  }

  const credentials = auth.length === 0 ? '' : `${auth.length === 2 ? encodeURIComponent(auth[0]!) : ''}:${encodeURIComponent(auth[auth.length - 1]!)}@`;
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://${credentials}127.0.0.1:${port}`,
    ...(tls ? { tlsCaFile: tls.caFile } : {}),
    dir,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    kill,
    async restart({ wipe = false } = {}) {
      await kill('SIGKILL');
      if (wipe) {
        for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
      }
      await start();
    },
    async stop() {
      await kill('SIGKILL');
      await root.remove();
      dirs.delete(root.path);
    },
  };
}

/** Where to PING: the port, AUTH arguments (none, password, or user and password), and the CA file for TLS. */
interface PingTarget {
  port: number;
  auth: string[];
  ca?: string;
}

/** Polls with a raw RESP PING (after AUTH) until the server answers +PONG, the process exits, or time runs out. */
async function waitForPing(target: PingTarget, child: ChildProcess, timeoutMs: number): Promise<void> {
  const ca = target.ca === undefined ? undefined : await readFile(target.ca, 'utf8');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode})`);
    }
    if (await ping(target, ca)) return;
    if (Date.now() > deadline) throw new Error(`no PONG within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function ping(target: PingTarget, ca: string | undefined): Promise<boolean> {
  const commands = [...(target.auth.length > 0 ? [['AUTH', ...target.auth]] : []), ['PING']];
  const request = commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('');
  return new Promise((resolve) => {
    const socket: Socket = ca === undefined ? connect({ port: target.port, host: '127.0.0.1' }) : connectTls({ port: target.port, host: '127.0.0.1', ca });
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once(ca === undefined ? 'connect' : 'secureConnect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      // One line per command: +OK for AUTH, then +PONG (-NOAUTH/-WRONGPASS when refused).
      if (answer.split('\r\n').length > commands.length) done(answer.endsWith('+PONG\r\n'));
    });
  });
}
