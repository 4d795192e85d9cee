import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tempDir } from './temp-dir.ts';

/** Options of {@link startShardProcess}. */
export interface StartShardOptions {
  /** `SKEIN_SHARD_ID`. */
  id: string;
  /** `SKEIN_REDIS_URL`. */
  redisUrl: string;
  /** `SKEIN_SHARD_DATA_DIR`; default a fresh temp dir, removed by `stop()`. Kept across restarts. */
  dataDir?: string;
  /** Extra environment (`SKEIN_*` settings). */
  env?: Record<string, string>;
  /** How long to wait for the "shard listening" line. Default 20 s. */
  startTimeoutMs?: number;
}

/** A shard process (`services/shard/src/main.ts`) owned by a test. */
export interface ShardProcess {
  readonly id: string;
  /** Base URL of the running process (changes on restart: port 0 by default). */
  readonly url: string;
  readonly dataDir: string;
  /** stdout and stderr lines so far (pino JSON and anything else). */
  readonly output: string[];
  /** Sends `signal` (default SIGKILL) and resolves with the exit code or signal once it exited. */
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** Starts it again (after kill) on the same data dir; resolves once it listens. */
  restart(): Promise<void>;
  /** Kills it and removes a data dir it created. */
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('../../../services/shard/src/main.ts', import.meta.url));
const running = new Set<ChildProcess>();
let hooked = false;

/**
 * Spawns `node --import tsx services/shard/src/main.ts` with the given settings and
 * resolves once it logged its bound URL. Rejects with its output when it exits first.
 */
export async function startShardProcess(options: StartShardOptions): Promise<ShardProcess> {
  const owned = options.dataDir === undefined ? await tempDir(`skein-shard-${options.id}-`) : undefined;
  const dataDir = options.dataDir ?? owned!.path;
  const output: string[] = [];
  let child: ChildProcess | undefined;
  let url = '';

  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }

  async function start(): Promise<void> {
    const c = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: {
        ...process.env,
        SKEIN_SHARD_ID: options.id,
        SKEIN_REDIS_URL: options.redisUrl,
        SKEIN_SHARD_DATA_DIR: dataDir,
        SKEIN_SHARD_PORT: '0',
        SKEIN_LOG_LEVEL: 'info',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    running.add(c);
    c.once('exit', () => running.delete(c));
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`shard ${options.id} did not start within ${timeoutMs} ms:\n${output.slice(-20).join('\n')}`)), timeoutMs);
      const onLine = (line: string) => {
        output.push(line);
        const m = line.includes('"shard listening"') ? /"url":"([^"]+)"/.exec(line) : null;
        if (m && url === '') {
          url = m[1]!;
          clearTimeout(timer);
          resolve();
        }
      };
      const feed = (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let i;
        while ((i = buffered.indexOf('\n')) >= 0) {
          onLine(buffered.slice(0, i));
          buffered = buffered.slice(i + 1);
        }
      };
      c.stdout!.on('data', feed);
      c.stderr!.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
      c.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`shard ${options.id} exited (${code ?? signal}) before listening:\n${output.slice(-20).join('\n')}`));
      });
    });
  }

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string | null> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return c ? (c.exitCode ?? c.signalCode) : null;
    const exited = new Promise<number | string | null>((resolve) => c.once('exit', (code, sig) => resolve(code ?? sig)));
    c.kill(signal);
    return exited;
  }

  url = '';
  await start();
  return {
    id: options.id,
    get url() {
      return url;
    },
    dataDir,
    output,
    kill,
    async restart() {
      await kill('SIGKILL');
      url = '';
      await start();
    },
    async stop() {
      await kill('SIGKILL');
      await owned?.remove();
    },
  };
}
