import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A real full filesystem for the storage-fault specs: a small tmpfs (root only), filled
// until ENOSPC.

/** Mounts a tmpfs of `mb` MiB; a string says why it could not (the spec skips). */
export function mountTmpfs(mb: number): { dir: string; unmount(): void } | string {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
  const base = mkdtempSync(join(tmpdir(), 'skein-disk-full-'));
  const dir = join(base, 'mnt');
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(base, { recursive: true, force: true });
    return 'mount -t tmpfs failed';
  }
  return {
    dir,
    unmount() {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
}

/** Fills the filesystem of `dir` until ENOSPC; returns the filler's path. */
export function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return path;
}
