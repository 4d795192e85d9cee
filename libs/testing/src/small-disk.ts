import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A real small (then full) filesystem for the storage-fault specs: a tmpfs, or ext4 on a
// loop file, mounted on a temp dir (root only), filled until ENOSPC.

/** Runs `cmd` with no output; false when it is missing or fails (cleanup steps, skippable setup). */
export function runQuietly(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A fresh filesystem of `mb` MiB mounted on a temp dir; a string says why it could not be had (the spec skips). */
export function mountSmallDisk(kind: 'tmpfs' | 'ext4', mb: number): { dir: string; unmount(): void } | string {
  if (process.getuid?.() !== 0) return 'needs root to mount a small filesystem';
  const base = mkdtempSync(join(tmpdir(), 'skein-small-disk-'));
  const dir = join(base, 'mnt');
  mkdirSync(dir);
  const cleanup = () => rmSync(base, { recursive: true, force: true });
  if (kind === 'tmpfs') {
    if (!runQuietly('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir])) {
      cleanup();
      return 'mount -t tmpfs failed';
    }
  } else {
    const image = join(base, 'fs.img');
    if (!runQuietly('truncate', ['-s', `${mb}M`, image]) || !runQuietly('mkfs.ext4', ['-q', '-F', image]) || !runQuietly('mount', ['-o', 'loop', image, dir])) {
      cleanup();
      return 'no mkfs.ext4 or loop device to make an ext4 filesystem';
    }
  }
  return {
    dir,
    unmount() {
      runQuietly('umount', [dir]);
      cleanup();
    },
  };
}

/** Fills the filesystem of `dir` with a file until ENOSPC; returns the file's path. */
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
