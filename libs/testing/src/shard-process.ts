import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';
import { tempDir } from './temp-dir.ts';

/** Options of {@link startShardProcess}. */
export interface StartShardOptions {
  /** `SKEIN_SHARD_ID`. */
  id: string;
  /** `SKEIN_REDIS_URL`. */
  redisUrl: string;
  /** `SKEIN_CLUSTER_SECRET`; default a fresh random one (`secret` of the result). */
  secret?: string;
  /** `SKEIN_SHARD_DATA_DIR`; default a fresh temp dir, removed by `stop()`. Kept across restarts. */
  dataDir?: string;
  /** Extra environment (`SKEIN_*` settings). */
  env?: Record<string, string>;
  /** How long to wait for the "shard listening" line. Default 20 s. */
  startTimeoutMs?: number;
  /** Extra node arguments (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
}

/** A shard process (`services/shard/src/main.ts`) owned by a test. */
export interface ShardProcess extends ServiceProcess {
  readonly id: string;
  readonly dataDir: string;
  /** Its `SKEIN_CLUSTER_SECRET`: send it in `CLUSTER_SECRET_HEADER` on internal API calls. */
  readonly secret: string;
  /** Kills it and removes a data dir it created. */
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('../../../services/shard/src/main.ts', import.meta.url));

/** Spawns a shard on a free port (0) and resolves once it logged its bound URL. */
export async function startShardProcess(options: StartShardOptions): Promise<ShardProcess> {
  const owned = options.dataDir === undefined ? await tempDir(`skein-shard-${options.id}-`) : undefined;
  const dataDir = options.dataDir ?? owned!.path;
  const secret = options.secret ?? randomBytes(32).toString('base64url');
  const service = await startServiceProcess({
    name: `shard ${options.id}`,
    main: MAIN,
    listeningMessage: 'shard listening',
    env: { SKEIN_SHARD_ID: options.id, SKEIN_REDIS_URL: options.redisUrl, SKEIN_CLUSTER_SECRET: secret, SKEIN_SHARD_DATA_DIR: dataDir, SKEIN_SHARD_PORT: '0', SKEIN_LOG_LEVEL: 'info', ...options.env },
    ...(options.startTimeoutMs !== undefined ? { startTimeoutMs: options.startTimeoutMs } : {}),
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
  });
  return {
    id: options.id,
    dataDir,
    secret,
    name: service.name,
    get url() {
      return service.url;
    },
    get pid() {
      return service.pid;
    },
    output: service.output,
    kill: service.kill,
    restart: service.restart,
    async stop() {
      await service.kill('SIGKILL');
      await owned?.remove();
    },
  };
}
