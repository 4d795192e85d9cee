import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { EncodedBatch } from './encoded-batch.ts';

/** What the commit thread is started with. */
export interface CommitThreadData {
  mapSizeBytes: number;
  /** Tests only: the thread sleeps this long before each commit (a slow fdatasync). */
  testCommitDelayMs: number;
}

/** What the thread gets besides CommitThreadData: the request area and the port for what does not fit it. */
export interface CommitThreadChannel {
  shared: SharedArrayBuffer;
  port: MessagePort;
}

/** A failed commit's error as the thread reports it (its code and errno kept for storage.ts). */
export type CommitError = { message: string; code?: unknown; errno?: unknown };

/**
 * The request area shared with the thread: Int32 slots, then the bytes of one request
 * (the environment's path in UTF-8, then the encoded batch). The engine's thread writes
 * a request and bumps REQUEST; the thread, blocked in Atomics.wait on REQUEST, copies it
 * out, commits it and answers on the worker's port. Invariant: one request at a time
 * (the next is written only after the answer to the one before), so the area is never
 * written while the thread reads it.
 */
export const SLOT = { REQUEST: 0, KIND: 1, PATH_BYTES: 2, BATCH_BYTES: 3 } as const;
export const KIND = { COMMIT: 0, CLOSE: 1 } as const;
/** BATCH_BYTES when the request did not fit the area: its path and batch come through the port instead. */
export const BATCH_ON_PORT = -1;
export const HEADER_BYTES = 16;
/** Batches are a few kB at most loads; a larger one (large events) is transferred through the port. */
const SHARED_BYTES = HEADER_BYTES + 1024 * 1024;

/**
 * A thread that owns a store's batch commits, so that a commit's page writes and
 * fdatasync never hold the event loop (in a node process, the router's and the other
 * shards'). The main thread decides, allocates and guards (storage.ts) each batch as
 * before, encodes the batch's puts into one buffer with the environment's own encoding
 * (encoded-batch.ts) and hands that buffer to the thread; it never writes the same
 * environment meanwhile (maintenance writes wait for the commit in flight).
 */
export interface CommitWriter {
  /**
   * Writes the encoded batch into the environment at `path` in one synchronous
   * transaction, after the requests before it. The batch is copied to the thread; one
   * larger than the shared request area (1 MiB) has its ArrayBuffer moved there instead
   * (it is unusable here afterwards).
   * Resolves once LMDB has synced it; rejects with the commit's error (its `code` and
   * `errno` as LMDB gave them), after the thread closed its handle of that environment.
   */
  commit(path: string, batch: EncodedBatch): Promise<void>;
  /** Closes the thread's handle of its environment (before the engine closes or reopens it). */
  release(): Promise<void>;
  /** Releases and stops the thread. */
  close(): Promise<void>;
}

/**
 * The thread's script: the compiled file, or the TypeScript source when this module runs
 * from source (tests, `--conditions=skein-source`), loaded through tsx, whose loader a
 * worker does not inherit.
 */
const fromSource = import.meta.url.endsWith('.ts');
const SCRIPT = new URL(fromSource ? './commit-thread.ts' : './commit-thread.js', import.meta.url);
const SOURCE_BOOT = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(SCRIPT.href)}); });`;

interface Request {
  kind: number;
  path: string;
  batch: EncodedBatch | null;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Starts a commit thread (see CommitWriter).
 *
 * Requests go through shared memory, not messages: the thread blocks in Atomics.wait
 * and runs no event loop, so a request costs it no deserialisation, event dispatch or
 * epoll round, and costs the engine's thread a copy into the area and a futex wake
 * instead of a structured clone. Measured (issue 9; 3 stores, batches of 11 puts of
 * ~300 bytes, back to back): the commit thread's CPU per batch went from ~216 to
 * ~170-190 µs, the engine thread's from ~60-68 to ~47-50 µs. Under quick.bench at 32
 * clients (batches of ~3.6 appends) the commit threads went from ~372 to ~355 µs per
 * batch (4 alternating pairs, within the shared machine's noise): there, most of a
 * commit thread's CPU is the commit itself (perf: fdatasync ~30%, page writes ~20%,
 * LMDB ~22%, lmdb-js's put path most of the rest; the hand-off was ~13%). The answer is one
 * message on the worker's port (`null`, or the error): it wakes the engine's event loop
 * once; Atomics.waitAsync instead cost the same within noise.
 */
export function startCommitThread(data: CommitThreadData): CommitWriter {
  const shared = new SharedArrayBuffer(SHARED_BYTES);
  const slots = new Int32Array(shared, 0, HEADER_BYTES / 4);
  const area = Buffer.from(shared, HEADER_BYTES);
  const { port1, port2 } = new MessageChannel();
  const workerData = { ...data, shared, port: port2 };
  const worker = fromSource
    ? new Worker(SOURCE_BOOT, { eval: true, workerData, transferList: [port2] })
    : new Worker(SCRIPT, { workerData, transferList: [port2] });
  const queue: Request[] = [];
  let current: Request | null = null;
  let sequence = 0;
  let failure: Error | null = null;
  worker.unref();

  const settleAll = (err: Error) => {
    failure ??= err;
    const waiting = current ? [current, ...queue] : [...queue];
    current = null;
    queue.length = 0;
    for (const r of waiting) r.reject(err);
  };
  worker.on('error', (err) => settleAll(err));
  worker.on('exit', (code) => settleAll(new Error(`the commit thread exited (${code})`)));

  const errorOf = (e: CommitError) => Object.assign(new Error(e.message), e.code === undefined ? {} : { code: e.code }, e.errno === undefined ? {} : { errno: e.errno });

  function answered(error: CommitError | null): void {
    const r = current;
    if (!r) return;
    current = null;
    if (error) r.reject(errorOf(error));
    else r.resolve();
    next();
  }
  worker.on('message', (reply: CommitError | null) => answered(reply));

  /** Writes the next queued request into the area and wakes the thread. */
  function next(): void {
    const r = queue.shift();
    if (!r) {
      // A commit in flight keeps the process alive; an idle thread does not.
      worker.unref();
      return;
    }
    current = r;
    slots[SLOT.KIND] = r.kind;
    if (r.kind === KIND.COMMIT) {
      const batch = r.batch!;
      if (Buffer.byteLength(r.path) + batch.byteLength <= area.length) {
        slots[SLOT.PATH_BYTES] = area.write(r.path, 0, 'utf8');
        area.set(batch, slots[SLOT.PATH_BYTES]!);
        slots[SLOT.BATCH_BYTES] = batch.byteLength;
      } else {
        port1.postMessage({ path: r.path, batch }, [batch.buffer]);
        slots[SLOT.BATCH_BYTES] = BATCH_ON_PORT;
      }
    }
    sequence++;
    Atomics.store(slots, SLOT.REQUEST, sequence);
    Atomics.notify(slots, SLOT.REQUEST);
  }

  /** Queues a request; the first of an idle thread is written at once. */
  function send(kind: number, path: string, batch: EncodedBatch | null): Promise<void> {
    if (failure) return Promise.reject(failure);
    return new Promise<void>((resolve, reject) => {
      queue.push({ kind, path, batch, resolve, reject });
      if (current) return;
      worker.ref();
      next();
    });
  }

  return {
    commit: (path, batch) => send(KIND.COMMIT, path, batch),
    release: () => send(KIND.CLOSE, '', null),
    async close() {
      await this.release().catch(() => undefined);
      failure ??= new Error('the commit thread is closed');
      port1.close();
      await worker.terminate();
    },
  };
}
