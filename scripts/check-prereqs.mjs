#!/usr/bin/env node
// One clear message for a missing prerequisite, instead of a stack trace later on.
import { spawnSync } from 'node:child_process';

const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error(`Skein needs Node.js 20 or newer; this is ${process.version}.`);
  process.exit(1);
}
// `npm start` needs no Redis: with none it runs on the embedded control plane (LMDB).
// The tests start their own redis-server.
const needsRedisServer = !process.argv.includes('--start');
const redis = needsRedisServer ? spawnSync('redis-server', ['--version'], { encoding: 'utf8' }) : { status: 0 };
if (redis.error || redis.status !== 0) {
  console.error(
    'The tests need redis-server on PATH (Redis 6.2 or newer); npm start runs without it.\n' +
      '  Debian/Ubuntu: sudo apt-get install -y redis-server\n' +
      '  macOS:         brew install redis',
  );
  process.exit(1);
}
