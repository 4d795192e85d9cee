import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { createServer } from 'node:net';

/** A shard's data directory, held by this process while the shard is open. */
export interface DataDirHold {
  release(): Promise<void>;
}

/**
 * Holds `dir` for this process: a second shard on the same data directory, in this process
 * or another one on this host, is refused. Two writers on one store would corrupt it: the
 * engine's guard writes past LMDB's last page between its own commits (storage.ts), where
 * the other process's commit may have just written pages, and each process decides
 * expected versions against heads the other never sees.
 *
 * The hold is a listening socket in Linux's abstract namespace named after the directory's
 * real path: the kernel releases it when the process ends, SIGKILL included, so a restart
 * never finds a stale lock. Elsewhere (no abstract namespace) nothing is held. Limits:
 * processes in other network namespaces (two containers sharing a volume) do not see each
 * other's hold.
 */
export async function holdDataDir(dir: string): Promise<DataDirHold> {
  if (process.platform !== 'linux') return { release: async () => undefined };
  mkdirSync(dir, { recursive: true });
  const real = realpathSync(dir);
  const name = `\0skein-shard-data-${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`the data directory ${real} is in use by another shard on this host (a data directory serves one shard process at a time)`) : err),
    );
    // Exclusive: in a cluster worker (npm start --nodes N) the socket is this process's own, not the primary's shared one.
    server.listen({ path: name, exclusive: true }, () => resolve());
  });
  server.unref();
  return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
