// Test helpers shared by the shard's spec files (not used by the service itself).
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { CLUSTER_SECRET_HEADER } from '@skein/protocol';
import { tempDir, type TempDir } from '@skein/testing';
import { loadConfig } from '../config.ts';
import { createShard, type Shard } from '../shard.ts';

export interface TestShard {
  shard: Shard;
  dir: TempDir;
  registry: Registry;
  /** Closes the shard (and removes its directory unless `keepDir`). */
  close(options?: { keepDir?: boolean }): Promise<void>;
}

/** An in-process shard on a fresh temp dir (or `dir`), wired exactly as main.ts wires it. */
export async function startTestShard(options: { redisUrl: string; id?: string; dir?: TempDir; env?: Record<string, string> }): Promise<TestShard> {
  const dir = options.dir ?? (await tempDir('skein-shard-spec-'));
  const config = loadConfig({
    SKEIN_SHARD_ID: options.id ?? 'a',
    SKEIN_SHARD_DATA_DIR: dir.path,
    SKEIN_REDIS_URL: options.redisUrl,
    SKEIN_CLUSTER_SECRET: SPEC_SECRET,
    SKEIN_SHARD_SAFE_POINT_INTERVAL_MS: '20',
    ...options.env,
  });
  const registry = new Registry();
  const shard = await createShard(config, { logger: pino({ level: 'silent' }), registry });
  return {
    shard,
    dir,
    registry,
    async close({ keepDir = false } = {}) {
      await shard.close();
      if (!keepDir) await dir.remove();
    },
  };
}

export const json = { 'content-type': 'application/json' };

/** The cluster secret of every shard `startTestShard` makes. */
export const SPEC_SECRET = 'spec-cluster-secret-0123456789abcdef';

/** The header the internal API requires on every request but the probes. */
export const secretHeader = { [CLUSTER_SECRET_HEADER]: SPEC_SECRET };
