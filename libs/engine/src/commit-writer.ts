import { Worker } from 'node:worker_threads';
import type { EncodedBatch } from './encoded-batch.ts';

/** What the commit thread is started with. */
export interface CommitThreadData {
  mapSizeBytes: number;
  /** Tests only: the thread sleeps this long before each commit (a slow fdatasync). */
  testCommitDelayMs: number;
}

/** One request to the commit thread: a batch's puts (encoded-batch.ts) into one environment, or closing its handle. */
export type CommitRequest = { id: number; close?: undefined; path: string; batch: EncodedBatch } | { id: number; close: true };

/** The commit thread's answer: durable, or the error of the failed commit (its code and errno kept for storage.ts). */
export type CommitReply = { id: number; ok: true } | { id: number; ok: false; error: { message: string; code?: unknown; errno?: unknown } };

/**
 * A thread that owns a store's batch commits, so that a commit's page writes and
 * fdatasync never hold the event loop (in a node process, the router's and the other
 * shards'). The main thread decides, allocates and guards (storage.ts) each batch as
 * before, encodes the batch's puts into one buffer with the environment's own encoding
 * (encoded-batch.ts) and moves that buffer to the thread; it never writes the same
 * environment meanwhile (maintenance writes wait for the commit in flight).
 */
export interface CommitWriter {
  /**
   * Writes the encoded batch into the environment at `path` in one synchronous
   * transaction. The batch's ArrayBuffer moves to the thread (it is unusable here
   * afterwards). Resolves once LMDB has synced it; rejects with the commit's error (its
   * `code` and `errno` as LMDB gave them), after the thread closed its handle of that
   * environment.
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

/** Starts a commit thread (see CommitWriter). */
export function startCommitThread(data: CommitThreadData): CommitWriter {
  const worker = fromSource ? new Worker(SOURCE_BOOT, { eval: true, workerData: data }) : new Worker(SCRIPT, { workerData: data });
  const waiting = new Map<number, { resolve(): void; reject(err: Error): void }>();
  let nextId = 1;
  let failure: Error | null = null;
  worker.unref();

  const settleAll = (err: Error) => {
    failure = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('error', (err) => settleAll(err));
  worker.on('exit', (code) => settleAll(new Error(`the commit thread exited (${code})`)));
  worker.on('message', (reply: CommitReply) => {
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (waiting.size === 0) worker.unref();
    if (reply.ok) return w.resolve();
    w.reject(Object.assign(new Error(reply.error.message), reply.error.code === undefined ? {} : { code: reply.error.code }, reply.error.errno === undefined ? {} : { errno: reply.error.errno }));
  });

  function send(request: CommitRequest): Promise<void> {
    if (failure) return Promise.reject(failure);
    return new Promise<void>((resolve, reject) => {
      waiting.set(request.id, { resolve, reject });
      // A commit in flight keeps the process alive; an idle thread does not.
      worker.ref();
      worker.postMessage(request, request.close ? [] : [request.batch.buffer]);
    });
  }

  return {
    commit: (path, batch) => send({ id: nextId++, path, batch }),
    release: () => send({ id: nextId++, close: true }),
    async close() {
      await this.release().catch(() => undefined);
      failure ??= new Error('the commit thread is closed');
      await worker.terminate();
    },
  };
}
