import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import { startRedis, type RedisServer, type StartRedisOptions } from './redis-server.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';
import { tempDir, type TempDir } from './temp-dir.ts';

const SHARD_MAIN = fileURLToPath(new URL('../../../services/shard/src/main.ts', import.meta.url));
const ROUTER_MAIN = fileURLToPath(new URL('../../../services/router/src/main.ts', import.meta.url));
const NODE_MAIN = fileURLToPath(new URL('../../../services/node/src/main.ts', import.meta.url));

export interface ClusterOptions {
  /**
   * `processes` (default): each shard and each router a process of its own. `node`: one
   * node process (services/node, SKEIN_ROLE=node) hosting the router and every shard,
   * then `routers - 1` more router processes.
   */
  topology?: 'processes' | 'node';
  shards?: number;
  routers?: number;
  /** Extra settings for every shard / router process. */
  shardEnv?: Record<string, string>;
  /** Data directories by shard id (`shard-0`, …), for example on a small filesystem; default a temp dir each, removed by `stop()`. */
  shardDataDirs?: Record<string, string>;
  routerEnv?: Record<string, string>;
  /** Extra node flags for router / shard processes (for example `--cpu-prof`). */
  routerNodeArgs?: string[];
  shardNodeArgs?: string[];
  /** Options of the private redis-server: a password, an ACL user, TLS (the services get its URL and CA). */
  redis?: StartRedisOptions;
}

/** A whole cluster of real processes: a private redis-server, shards on fixed ports, routers. */
export interface Cluster {
  readonly redis: RedisServer;
  /** Shard processes (none in the `node` topology: the node hosts them). */
  readonly shards: readonly ServiceProcess[];
  /** Router processes; in the `node` topology the node is the first. */
  readonly routers: readonly ServiceProcess[];
  /** Node processes (`node` topology): each hosts a router and shards. */
  readonly nodes: readonly ServiceProcess[];
  readonly adminKey: string;
  /** `SKEIN_CLUSTER_SECRET` of every process: send it in `CLUSTER_SECRET_HEADER` to call a shard directly. */
  readonly secret: string;
  /** The first router's base URL. */
  readonly url: string;
  /**
   * Starts one more shard process (`shard-<n>`, on a fixed free port, so a restart keeps its
   * URL) and adds it to `shards`. It joins no topology: add it with `POST /v1/admin/cluster/shards`.
   */
  startShard(): Promise<{ id: string; url: string; process: ServiceProcess }>;
  stop(): Promise<void>;
}

/**
 * Starts a cluster the way `npm start` does, on free ports with temp data dirs, and
 * waits until the first router is ready. `stop()` kills everything and removes the data.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const redis = await startRedis(options.redis);
  const data: TempDir = await tempDir('skein-cluster-');
  const adminKey = `sk_admin_test_${'x'.repeat(32)}`;
  const secret = randomBytes(32).toString('base64url');
  const common = {
    SKEIN_REDIS_URL: redis.url,
    SKEIN_CLUSTER_SECRET: secret,
    SKEIN_LOG_LEVEL: 'info',
    ...(redis.tlsCaFile ? { SKEIN_REDIS_TLS_CA_FILE: redis.tlsCaFile } : {}),
  };
  const shards: ServiceProcess[] = [];
  const routers: ServiceProcess[] = [];
  const nodes: ServiceProcess[] = [];
  async function startShard(): Promise<{ id: string; url: string; process: ServiceProcess }> {
    const id = `shard-${shards.length}`;
    const port = await freePort();
    const process = await startServiceProcess({
      name: id,
      main: SHARD_MAIN,
      ...(options.shardNodeArgs ? { nodeArgs: options.shardNodeArgs } : {}),
      listeningMessage: 'shard listening',
      env: { ...common, SKEIN_SHARD_ID: id, SKEIN_SHARD_PORT: String(port), SKEIN_SHARD_DATA_DIR: options.shardDataDirs?.[id] ?? `${data.path}/${id}`, ...options.shardEnv },
    });
    shards.push(process);
    return { id, url: `http://127.0.0.1:${port}`, process };
  }
  const stop = async () => {
    // Routers stop gracefully (so profilers and logs flush), shards are killed.
    await Promise.all([...routers, ...shards].map((p) => p.kill('SIGTERM')));
    await Promise.all([...routers, ...shards].map((p) => p.kill('SIGKILL')));
    await redis.stop();
    await data.remove();
  };
  try {
    const shardList: string[] = [];
    const count = options.shards ?? 3;
    if (options.topology === 'node') {
      const ids = Array.from({ length: count }, (_, i) => `shard-${i}`);
      const node = await startServiceProcess({
        name: 'node-0',
        main: NODE_MAIN,
        ...(options.routerNodeArgs ? { nodeArgs: options.routerNodeArgs } : {}),
        listeningMessage: 'node listening',
        startTimeoutMs: 40_000,
        env: { ...common, SKEIN_ROLE: 'node', SKEIN_NODE_SHARDS: ids.join(','), SKEIN_NODE_DATA_DIR: data.path, SKEIN_ROUTER_PORT: '0', SKEIN_ADMIN_KEY: adminKey, ...options.shardEnv, ...options.routerEnv },
      });
      nodes.push(node);
      routers.push(node);
      // Other routers find the node's shards in the topology it registered.
    }
    for (let i = 0; i < (options.topology === 'node' ? 0 : count); i++) shardList.push(await startShard().then((s) => `${s.id}=${s.url}`));
    for (let i = routers.length; i < (options.routers ?? 1); i++) {
      routers.push(
        await startServiceProcess({
          name: `router-${i}`,
          main: ROUTER_MAIN,
          ...(options.routerNodeArgs ? { nodeArgs: options.routerNodeArgs } : {}),
          listeningMessage: 'router listening',
          env: { ...common, SKEIN_ROUTER_PORT: '0', SKEIN_ADMIN_KEY: adminKey, SKEIN_ROUTER_SHARDS: shardList.join(','), ...options.routerEnv },
        }),
      );
    }
    const until = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${routers[0]!.url}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > until) throw new Error('the cluster did not become ready within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { redis, shards, routers, nodes, adminKey, secret, url: routers[0]!.url, startShard, stop };
}
