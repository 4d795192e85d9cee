// `npm start` (node scripts/start.mjs) as a user runs it, for end-to-end specs that start
// the whole thing from a directory of their own.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** scripts/start.mjs: what `npm start` runs. */
export const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));

/** A PATH with node, npm and npx only (symlinks in a temp bin dir): no redis-server, no redis-cli. */
export function pathWithoutRedis(bin: string): string {
  mkdirSync(bin, { recursive: true });
  const nodeDir = dirname(process.execPath);
  for (const name of ['node', 'npm', 'npx']) {
    const target = name === 'node' ? process.execPath : join(nodeDir, name);
    if (existsSync(target)) symlinkSync(target, join(bin, name));
  }
  return bin;
}

export interface NpmStartRun {
  child: ChildProcess;
  url: string;
  adminKey: string;
  output(): string;
}

/**
 * `npm start [args]` in `cwd` (this process's when undefined) on `port`: resolves once it
 * printed the URL and admin key, rejects when it exits first or after `timeoutMs` (90 s).
 */
export function npmStart(cwd: string | undefined, port: number, env: NodeJS.ProcessEnv, { args = [], timeoutMs = 90_000 }: { args?: string[]; timeoutMs?: number } = {}): Promise<NpmStartRun> {
  const child = spawn(process.execPath, [START, ...args], { cwd, env: { ...env, SKEIN_PORT: String(port) }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${out}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const key = /admin key: (\S+)/.exec(out);
      if (out.includes('Skein is running at') && key) {
        clearTimeout(timer);
        resolve({ child, url: `http://127.0.0.1:${port}`, adminKey: key[1]!, output: () => out });
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

/** SIGINT, as Ctrl-C; resolves once the launcher exited. */
export async function stopNpmStart(run: NpmStartRun): Promise<void> {
  const exited = new Promise((r) => run.child.once('exit', r));
  process.kill(run.child.pid!, 'SIGINT');
  await exited;
}
