// The commit thread of one store (commit-writer.ts starts it): it owns the batcher's write
// transactions. Each request is one batch's puts, encoded by the engine's thread
// (encoded-batch.ts), written into one environment in one synchronous transaction,
// answered once LMDB has synced it. This thread encodes nothing: it never saves shared
// structures. It runs no event loop: it waits for requests in Atomics.wait on the shared
// request area (commit-writer.ts says why and what it measured), so nothing here may
// depend on a promise callback, a timer or a message listener; lmdb-js's transactionSync
// and close run synchronously for a root db with no async writes.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { open, type RootDatabase } from 'lmdb';
import { environmentOptions } from './environment.ts';
import { BATCH_ON_PORT, HEADER_BYTES, KIND, SLOT, type CommitError, type CommitThreadChannel, type CommitThreadData } from './commit-writer.ts';
import { putEncodedBatch, type EncodedBatch } from './encoded-batch.ts';

const { mapSizeBytes, testCommitDelayMs, shared, port } = workerData as CommitThreadData & CommitThreadChannel;
const slots = new Int32Array(shared, 0, HEADER_BYTES / 4);
const area = Buffer.from(shared, HEADER_BYTES);
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

/**
 * This thread's copy of a batch, reused: LMDB is never handed bytes in shared memory
 * (lmdb-js takes the address of a value's ArrayBuffer), and the copy is done with once
 * transactionSync returns.
 */
let copy = Buffer.allocUnsafeSlow(64 * 1024);

/** The request in the area (or, when it did not fit, on the port). */
function request(): { path: string; batch: EncodedBatch } {
  const batchBytes = slots[SLOT.BATCH_BYTES]!;
  if (batchBytes === BATCH_ON_PORT) return receiveMessageOnPort(port)!.message as { path: string; batch: EncodedBatch };
  const pathBytes = slots[SLOT.PATH_BYTES]!;
  if (copy.length < batchBytes) copy = Buffer.allocUnsafeSlow(Math.max(2 * copy.length, batchBytes));
  area.copy(copy, 0, pathBytes, pathBytes + batchBytes);
  return { path: area.toString('utf8', 0, pathBytes), batch: copy.subarray(0, batchBytes) };
}

/** Runs the request in the area: null once it is durable (or the handle closed), else its error. */
function run(): CommitError | null {
  try {
    if (slots[SLOT.KIND] === KIND.CLOSE) {
      closeEnvironment();
      return null;
    }
    const { path, batch } = request();
    const db = environment(path);
    // Tests only: a slow fdatasync, on this thread as a real one would be.
    if (testCommitDelayMs > 0) Atomics.wait(pause, 0, 0, testCommitDelayMs);
    db.transactionSync(() => putEncodedBatch(db, batch));
    return null;
  } catch (err) {
    // The environment may be in MDB_FATAL_ERROR (storage.ts): this thread's handle goes
    // before the answer, so the engine's reopen finds no handle of it left open.
    closeEnvironment();
    const e = err instanceof Error ? err : new Error(String(err));
    const { code, errno } = e as { code?: unknown; errno?: unknown };
    return { message: e.message, ...(code === undefined ? {} : { code }), ...(errno === undefined ? {} : { errno }) };
  }
}

let seen = 0;
for (;;) {
  // Returns at once when a request came before this thread got here.
  Atomics.wait(slots, SLOT.REQUEST, seen);
  seen = Atomics.load(slots, SLOT.REQUEST);
  const error = run();
  parentPort!.postMessage(error);
}
