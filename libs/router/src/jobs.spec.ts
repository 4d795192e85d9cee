// The job view's state against BullMQ on a real redis-server.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { startRedis, type RedisServer } from '@skein/testing';
import { settled } from './jobs.ts';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server?.stop();
});

test('a job read while active and finished before its state is read shows its state with the fields of that state (its result)', async () => {
  const connection = { url: server.url };
  const queue = new Queue('settled-spec', { connection });
  let finish: () => void = () => {};
  const running = new Promise<void>((started) => {
    const worker = new Worker(
      'settled-spec',
      async () => {
        started();
        await new Promise<void>((r) => (finish = r));
        return { buckets: ['2026-03'] };
      },
      { connection },
    );
    after(() => worker.close());
  });
  try {
    const added = await queue.add('compact', { kind: 'compact' });
    await running;
    const readWhileActive = (await queue.getJob(added.id!))!;
    assert.equal(await readWhileActive.getState(), 'active');
    finish();
    for (let i = 0; i < 250 && (await readWhileActive.getState()) !== 'completed'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readWhileActive.returnvalue ?? null, null, 'the fields read while active hold no result');
    const { job, state } = await settled(queue, readWhileActive);
    assert.equal(state, 'completed');
    assert.deepEqual(job.returnvalue, { buckets: ['2026-03'] });
    assert.ok(job.finishedOn);
  } finally {
    await queue.close();
  }
});
