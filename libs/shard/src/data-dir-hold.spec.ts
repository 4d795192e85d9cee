import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { holdDataDir } from './data-dir-hold.ts';

const linux = process.platform === 'linux';

test('a data directory is held by one shard at a time in this process, by its real path; released, it can be held again', { skip: !linux && 'the hold needs Linux abstract sockets' }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'skein-hold-'));
  try {
    const dir = join(base, 'data');
    mkdirSync(dir);
    symlinkSync(dir, join(base, 'link'));
    const first = await holdDataDir(dir);
    await assert.rejects(holdDataDir(join(base, 'link')), /is in use by another shard on this host/);
    const other = await holdDataDir(join(base, 'other'));
    await first.release();
    const again = await holdDataDir(dir);
    await again.release();
    await other.release();
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a data directory held by another process is refused until that process is SIGKILLed, then free at once', { skip: !linux && 'the hold needs Linux abstract sockets' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-hold-child-'));
  const module = fileURLToPath(new URL('./data-dir-hold.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(module)}).then((m) => m.holdDataDir(${JSON.stringify(dir)})).then(() => { console.log('held'); setInterval(() => {}, 1000); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
      child.once('exit', (code) => reject(new Error(`the holder exited (${code})`)));
    });
    await assert.rejects(holdDataDir(dir), /is in use by another shard on this host/);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const hold = await holdDataDir(dir);
    await hold.release();
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
