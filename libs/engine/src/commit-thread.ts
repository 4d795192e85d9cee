// The commit thread of one store (commit-writer.ts starts it): it owns the batcher's write
// transactions. Each request is one batch's puts, encoded by the engine's thread
// (encoded-batch.ts), written into one environment in one synchronous transaction,
// answered once LMDB has synced it. This thread encodes nothing: it never saves shared
// structures.
import { parentPort, workerData } from 'node:worker_threads';
import { open, type RootDatabase } from 'lmdb';
import { environmentOptions } from './environment.ts';
import type { CommitReply, CommitRequest, CommitThreadData } from './commit-writer.ts';
import { putEncodedBatch } from './encoded-batch.ts';

const { mapSizeBytes, testCommitDelayMs } = workerData as CommitThreadData;
const port = parentPort!;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The one environment this thread has open: the current bucket's. Another bucket's
 * request closes it first, so a closed bucket is never held open here (maintenance may
 * swap its files).
 */
let env: { path: string; db: RootDatabase<unknown, Uint8Array> } | null = null;

function environment(path: string): RootDatabase<unknown, Uint8Array> {
  if (env?.path === path) return env.db;
  closeEnvironment();
  env = { path, db: open<unknown, Uint8Array>(environmentOptions(path, mapSizeBytes)) };
  return env.db;
}

function closeEnvironment(): void {
  if (!env) return;
  void env.db.close();
  env = null;
}

port.on('message', (request: CommitRequest) => {
  let reply: CommitReply;
  try {
    if (request.close) {
      closeEnvironment();
      reply = { id: request.id, ok: true };
    } else {
      const db = environment(request.path);
      // Tests only: a slow fdatasync, on this thread as a real one would be.
      if (testCommitDelayMs > 0) Atomics.wait(pause, 0, 0, testCommitDelayMs);
      db.transactionSync(() => putEncodedBatch(db, request.batch));
      reply = { id: request.id, ok: true };
    }
  } catch (err) {
    // The environment may be in MDB_FATAL_ERROR (storage.ts): this thread's handle goes
    // before the answer, so the engine's reopen finds no handle of it left open.
    closeEnvironment();
    const e = err instanceof Error ? err : new Error(String(err));
    const { code, errno } = e as { code?: unknown; errno?: unknown };
    reply = { id: request.id, ok: false, error: { message: e.message, ...(code === undefined ? {} : { code }), ...(errno === undefined ? {} : { errno }) } };
  }
  port.postMessage(reply);
});
