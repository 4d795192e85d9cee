import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTimerJobs } from './timer-jobs.ts';

test('a timer job runs repeatedly, never twice at once, keeps running after a failure, and close waits for the run in progress', async () => {
  const warnings: object[] = [];
  const jobs = createTimerJobs({ logger: { warn: (o) => warnings.push(o) } });
  let runs = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  let release!: () => void;
  const slowRun = new Promise<void>((r) => (release = r));
  jobs.every('retention', 5, async () => {
    runs++;
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    try {
      if (runs === 1) throw new Error('disk busy');
      if (runs === 3) await slowRun;
    } finally {
      concurrent--;
    }
  });
  while (runs < 3) await new Promise((r) => setTimeout(r, 5));
  // The third run is held: more turns pass without a second run starting.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(runs, 3);
  assert.equal(maxConcurrent, 1);
  assert.equal(warnings.length, 1);
  let closed = false;
  const closing = jobs.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, false, 'close waits for the run in progress');
  release();
  await closing;
  const after = runs;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(runs, after, 'no run after close');
  assert.throws(() => jobs.every('late', 5, async () => {}));
});
