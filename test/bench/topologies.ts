// The Skein topologies the benchmark measures, started only through public entry points:
// `node scripts/start.mjs` as a user runs it (`npm start`, and `npm start -- --nodes N`:
// N node processes sharing the public port), and startCluster from @skein/testing
// (separate shard processes and a router).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeStartPort, startCluster, type ClusterOptions } from '@skein/testing';
import { descendants, labelOf } from './proc.ts';

const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));

/** A running topology: its public URL, admin key and the processes serving it. */
export interface Topology {
  name: string;
  url: string;
  adminKey: string;
  /** Every server process now (looked up again each call: a restarted process has a new pid). */
  serverPids(): number[];
  stop(): Promise<void>;
}



export interface NpmStartOptions {
  /** Arguments after `--` (`npm start -- --processes 3`). */
  args?: string[];
  /** Run the services from their TypeScript sources instead of the compiled dist/ (`--conditions=skein-source`). */
  fromSource?: boolean;
  /** Extra environment (SKEIN_* settings). */
  env?: Record<string, string>;
}

/**
 * Starts `node scripts/start.mjs` in its own process group with SKEIN_DATA_DIR in a temp dir
 * and a free SKEIN_PORT, and resolves once it printed its URL and admin key. Its server
 * processes are all its descendants (redis-server included); the supervisor itself is not one.
 */
export async function startNpmStart(options: NpmStartOptions = {}): Promise<Topology> {
  const dataDir = mkdtempSync(join(tmpdir(), 'skein-bench-'));
  const port = await freeStartPort();
  const nodeArgs = options.fromSource ? ['--conditions=skein-source'] : [];
  const inherited: NodeJS.ProcessEnv = { ...process.env };
  // The bench itself may run with --conditions=skein-source in NODE_OPTIONS; a user's `npm start` does not.
  if (!options.fromSource) delete inherited.NODE_OPTIONS;
  const env: NodeJS.ProcessEnv = { ...inherited, ...options.env, SKEIN_DATA_DIR: dataDir, SKEIN_PORT: String(port) };
  const child = spawn(process.execPath, [...nodeArgs, START, ...(options.args ?? [])], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const adminKey = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start did not come up within 120 s:\n${out}`)), 120_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        const key = /admin key: (\S+)/.exec(out);
        if (out.includes('Skein is running at') && key) {
          clearTimeout(timer);
          resolve(key[1]!);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`npm start exited (${code}):\n${out}`));
      });
    });
    return {
      name: `npm start${options.args?.length ? ` -- ${options.args.join(' ')}` : ''}`,
      url: `http://127.0.0.1:${port}`,
      adminKey,
      serverPids: () => descendants(child.pid!),
      async stop() {
        process.kill(-child.pid!, 'SIGINT');
        await exited;
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * `npm start -- --nodes <nodes>`: that many node processes (`auto`: one per core) forked with
 * Node's cluster module, all serving the public port, each hosting a share of the three
 * shards. Its server processes are the nodes and redis-server; the launcher, which accepts
 * each public connection once and hands it to a node, is not counted (keep-alive clients
 * connect once; what it costs is in README, "One node process or one per core").
 */
export function startNpmStartNodes(nodes: number | 'auto', options: Omit<NpmStartOptions, 'args'> = {}): Promise<Topology> {
  return startNpmStart({ ...options, args: ['--nodes', String(nodes)] });
}

/**
 * Three shard processes and a router (and redis-server) from startCluster: separate
 * processes talking over HTTP. Its server processes are the services, what they started,
 * and the redis-server among this process's children (tsx's esbuild, also a child, is not one).
 */
export async function startThreeProcess(options: ClusterOptions = {}): Promise<Topology> {
  const cluster = await startCluster({ shards: 3, routers: 1, ...options });
  return {
    name: '3 shard processes + router (startCluster)',
    url: cluster.url,
    adminKey: cluster.adminKey,
    serverPids: () => {
      const services = [...cluster.shards, ...cluster.routers].flatMap((p) => (p.pid === undefined ? [] : [p.pid, ...descendants(p.pid)]));
      const redis = descendants(process.pid).filter((pid) => {
        try {
          return labelOf(pid) === 'redis';
        } catch {
          return false; // exited meanwhile
        }
      });
      return [...redis, ...services];
    },
    stop: () => cluster.stop(),
  };
}
