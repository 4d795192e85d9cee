import { closeSync, fstatSync, openSync, statfsSync, writeSync } from 'node:fs';
import { SkeinError } from '@skein/protocol';

/**
 * Storage faults: the one place where LMDB and OS errors of a store's disk become
 * registry codes, and the guard that keeps those errors away from LMDB's commit.
 *
 * Why a guard, and not only a catch around the commit (root cause of issue 8's heap
 * corruption, reproduced with lmdb 3.5.6's prebuilt binary on a full tmpfs and on an
 * ext4 file made immutable with `chattr +i`):
 *
 * 1. When a page write of a commit fails outright (`pwritev` returns -1: ENOSPC, EPERM
 *    on an immutable file, EROFS, EIO, EFBIG), lmdb-js's `mdb_page_flush` formats a
 *    diagnostic ("Attempting to write page at position %u, size %u, blocks %u, buffer
 *    sizes %i %i %i", two of them uninitialised iovec lengths) into `last_error =
 *    malloc(100)`. Past a 100 MB data file the text is 104-105 bytes: a heap overflow.
 *    Measured: a bare lmdb script (110 MB env, disk filled, 300 KB values) aborts with
 *    `corrupted size vs. prev_size` / `malloc(): invalid next size` in 3 runs of 3,
 *    right after errors whose text was 104 and 105 bytes long.
 * 2. When the meta-page write fails, LMDB marks the environment MDB_FATAL_ERROR and
 *    `mdb_txn_begin` answers MDB_PANIC from then on; lmdb-js's `EnvWrap::beginTxn`
 *    ignores that return code and tracks an uninitialised `MDB_txn*`, which the next
 *    put, commit or abort dereferences and frees (seen: after `chattr +i` one EPERM,
 *    then EINVAL on every later commit even once the flag was cleared).
 *
 * Neither is reachable from JavaScript once it has happened, so the engine keeps LMDB
 * from meeting the failing write: before each commit it makes sure the environment's
 * data file has space allocated past LMDB's last page (zeros it wrote itself, so a
 * full disk fails our write, not LMDB's), and probes the file with a one-page write
 * there (an immutable, read-only or failing file fails the probe). An environment
 * whose commit failed anyway is never written again: it is closed and reopened (LMDB's
 * documented recovery from MDB_PANIC) before the next write.
 *
 * Caveats: a single batch that grows the file by more than the headroom on a disk
 * that is full at that moment still reaches LMDB's failing write; on copy-on-write
 * filesystems (btrfs, ZFS) allocated blocks do not guarantee room for an overwrite.
 */

/** A storage fault: what failed, as an errno or LMDB code name, and when it began. */
export interface StorageFault {
  /** `ENOSPC`, `EIO`, `EROFS`, `EFBIG`, `EPERM`, `EACCES`, `EDQUOT`, `MDB_MAP_FULL`, `MDB_PANIC`, …, or `UNKNOWN`. */
  code: string;
  /** One line for logs and the readiness problem document. */
  reason: string;
  /** When the fault began (clock ms). */
  since: number;
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  13: 'EACCES',
  27: 'EFBIG',
  28: 'ENOSPC',
  30: 'EROFS',
  122: 'EDQUOT',
};

/** LMDB's own codes (lmdb.h) that can come out of a commit. */
const LMDB_NAMES: Record<number, string> = {
  [-30792]: 'MDB_MAP_FULL',
  [-30791]: 'MDB_DBS_FULL',
  [-30790]: 'MDB_READERS_FULL',
  [-30788]: 'MDB_TXN_FULL',
  [-30787]: 'MDB_CURSOR_FULL',
  [-30786]: 'MDB_PAGE_FULL',
  [-30785]: 'MDB_MAP_RESIZED',
  [-30782]: 'MDB_BAD_TXN',
  [-30795]: 'MDB_PANIC',
  [-30779]: 'MDB_PROBLEM',
};

/**
 * The code name of a storage error: lmdb-js errors carry the errno or LMDB code as a
 * number in `code`, Node's fs errors carry the name in `code` and `-errno` in `errno`.
 */
export function storageCodeOf(err: unknown): string {
  if (err === null || typeof err !== 'object') return 'UNKNOWN';
  const { code, errno } = err as { code?: unknown; errno?: unknown };
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  if (typeof code === 'number') return ERRNO_NAMES[code] ?? LMDB_NAMES[code] ?? `ERRNO_${code}`;
  if (typeof errno === 'number') return ERRNO_NAMES[-errno] ?? `ERRNO_${-errno}`;
  // A wrapped error (openEnv's INTERNAL) names its storage error in `cause`.
  if (err instanceof Error && err.cause !== undefined) return storageCodeOf(err.cause);
  return 'UNKNOWN';
}

/** The fault a failed storage operation means. */
export function storageFaultOf(err: unknown, what: string, now: number): StorageFault {
  const code = storageCodeOf(err);
  const message = err instanceof Error ? err.message.split('\n')[0]!.slice(0, 200) : String(err);
  return { code, reason: `${what}: ${code} (${message})`, since: now };
}

/** The registry error every write refused because of a storage fault is answered with. */
export function storageUnavailable(fault: StorageFault, retryAfter: number, cause?: unknown, subject = "the shard's storage"): SkeinError {
  return new SkeinError(
    'UNAVAILABLE',
    `${subject} is failing (${fault.code}); nothing was written`,
    { retryAfter, storage: fault.code },
    cause === undefined ? undefined : { cause },
  );
}

const MiB = 1024 * 1024;
const PROBE = Buffer.alloc(4096);
const ZEROS = Buffer.alloc(MiB);

/**
 * What the guard needs of an environment: its page accounting. lmdb-js's db also has
 * `env.info()` (its typings leave it out): the last page number alone, which is all a
 * commit's guard needs once the page size is known. getStats() also walks LMDB's free
 * list (`freeStat`), which grows with the store: measured 22 us against 8 us a call on a
 * small store, once per batch on the thread that decides them.
 */
export interface PagedEnvironment {
  getStats(): object;
  env?: { info?: unknown };
}

type EnvInfo = () => { lastPageNumber?: number };

function infoOf(db: PagedEnvironment): EnvInfo | undefined {
  const info = db.env?.info;
  return typeof info === 'function' ? (info.bind(db.env) as EnvInfo) : undefined;
}

/**
 * The data file of one environment, kept ahead of LMDB: space allocated (zeros written)
 * past LMDB's last page, and a write probe before each commit. Only valid for an
 * environment written synchronously on this thread (no lmdb-js async writes), since
 * it writes into the file past LMDB's last page between commits.
 */
export class GuardedFile {
  private fd: number | undefined;
  /** The largest growth of LMDB's used end between two prepares (one commit), bytes. */
  private maxGrowth = 0;
  /** LMDB's used end at the last prepare. */
  private usedEnd = 0;
  /**
   * A lower bound of the file's size: the end of the zeros or probe this guard last wrote
   * through its descriptor, or the size fstat last read. The file never shrinks while the
   * descriptor is open (LMDB only grows it, and nothing else truncates it), so when this
   * bound already leaves the kept headroom, so does the real size, and prepare skips the
   * fstat (a syscall and a Stats object per batch). Zeros are only ever written from a
   * size fstat read, never from this bound: never below the real end of the file.
   */
  private sizeAtLeast = 0;
  /** The environment's page size and last-page reader, read at the first prepare of an environment. */
  private paging: { db: PagedEnvironment; pageSize: number; info: EnvInfo | undefined } | null = null;

  constructor(
    readonly path: string,
    /** The most headroom kept past LMDB's used end, bytes. */
    private readonly reserveBytes: number,
  ) {}

  /**
   * Makes sure the next commit's page writes land on allocated space of a writable
   * file. Needed headroom: 1 MiB at least, twice the largest growth one commit made.
   * Kept headroom (extended to when below half of it, so most commits only probe): the
   * used size, as small stores reserve little, at most `reserveBytes`, at least twice
   * what is needed. Throws the fs error (ENOSPC, EPERM, EROFS, EIO, …) when the needed
   * headroom cannot be had or the probe write fails.
   */
  prepare(db: PagedEnvironment): void {
    this.fd ??= openSync(this.path, 'r+');
    const usedEnd = this.usedEndOf(db);
    if (this.usedEnd > 0 && usedEnd - this.usedEnd > this.maxGrowth) this.maxGrowth = usedEnd - this.usedEnd;
    this.usedEnd = usedEnd;
    const needed = Math.max(MiB, 2 * this.maxGrowth);
    const kept = Math.max(2 * needed, Math.min(this.reserveBytes, usedEnd));
    if (this.sizeAtLeast < usedEnd + kept / 2) {
      const size = fstatSync(this.fd).size;
      this.sizeAtLeast = size;
      if (size < usedEnd + kept / 2) {
        try {
          for (let at = size; at < usedEnd + kept; ) {
            const n = Math.min(ZEROS.length, usedEnd + kept - at);
            at += writeSync(this.fd, ZEROS, 0, n, at);
            this.sizeAtLeast = at;
          }
        } catch (err) {
          if (fstatSync(this.fd).size < usedEnd + needed) throw err;
        }
      }
    }
    // The page just past LMDB's last one: no snapshot refers to it.
    writeSync(this.fd, PROBE, 0, PROBE.length, usedEnd);
    if (usedEnd + PROBE.length > this.sizeAtLeast) this.sizeAtLeast = usedEnd + PROBE.length;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.usedEnd = 0;
    this.sizeAtLeast = 0;
    this.paging = null;
  }

  /** LMDB's end of used pages, in bytes: (last page number + 1) × page size. */
  private usedEndOf(db: PagedEnvironment): number {
    if (this.paging?.db !== db) {
      const stat = db.getStats() as { lastPageNumber?: number; pageSize?: number };
      this.paging = { db, pageSize: stat.pageSize ?? 4096, info: infoOf(db) };
      return ((stat.lastPageNumber ?? 0) + 1) * this.paging.pageSize;
    }
    const { pageSize, info } = this.paging;
    const last = info ? info().lastPageNumber : (db.getStats() as { lastPageNumber?: number }).lastPageNumber;
    return ((last ?? 0) + 1) * pageSize;
  }
}

/**
 * Throws unless the filesystem holding `dir` has `bytes` free for this process and
 * `file` (when it exists) can be opened for writing. For environments that are about
 * to be created or that the guard cannot pre-extend (the catalog, which the embedded
 * sequencer writes asynchronously).
 */
export function checkWritable(dir: string, bytes: number, file?: string): void {
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  if (free < bytes) {
    throw Object.assign(new Error(`${free} bytes free in ${dir}, ${bytes} needed`), { code: 'ENOSPC' });
  }
  if (file !== undefined) closeSync(openSync(file, 'r+'));
}

/**
 * The guard of an environment that lmdb-js writes asynchronously (its write thread
 * commits `put` and `transaction`): the shard's control records and the node's embedded
 * control store. GuardedFile writes past LMDB's last page, so it must never run while a
 * commit is in flight: every write goes through {@link write}, one at a time, each after
 * the file was prepared. A write the disk refuses is rejected with `503 UNAVAILABLE`
 * (`storage` names the errno) and never reaches LMDB; the next write (or {@link ready})
 * probes again, so writes resume once space returns, without a restart.
 *
 * Measured without it (lmdb 3.5.6, 8 MiB tmpfs filled): the commit's page write fails
 * with ENOSPC and lmdb-js also rejects an internal promise nobody holds, so the
 * process exits on the unhandled rejection; a fire-and-forget `put` does the same.
 */
export class GuardedWrites {
  /** Set from a refused write until a prepare succeeds. */
  fault: StorageFault | null = null;
  readonly #file: GuardedFile;
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(
    private readonly db: PagedEnvironment,
    /** The environment's data file (`<path>/data.mdb`). */
    path: string,
    /** Names the store in the 503's message: `the embedded control store`. */
    private readonly subject: string,
    /** The most headroom kept past LMDB's used end, bytes (GuardedFile). */
    reserveBytes = 4 * MiB,
    private readonly clock: () => number = Date.now,
  ) {
    this.#file = new GuardedFile(path, reserveBytes);
  }

  /** Whether no write is queued or in flight (the file may be prepared now). */
  get idle(): boolean {
    return this.#pending === 0;
  }

  /**
   * Runs `commit` once every earlier write settled and the file was prepared. Rejects
   * with `503 UNAVAILABLE` without running it when the disk refuses, and when the commit
   * fails with a storage error anyway; other errors pass through unchanged.
   */
  write<T>(commit: () => Promise<T>): Promise<T> {
    this.#pending++;
    const run = async (): Promise<T> => {
      try {
        this.ready();
        try {
          return await commit();
        } catch (err) {
          throw storageCodeOf(err) === 'UNKNOWN' ? err : this.#failed(err, 'a commit failed');
        }
      } finally {
        this.#pending--;
      }
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Prepares the file now (throws `503 UNAVAILABLE` when the disk refuses). Only while
   * {@link idle} or from inside {@link write}: never beside a commit in flight.
   */
  ready(): void {
    try {
      this.#file.prepare(this.db);
    } catch (err) {
      throw this.#failed(err, 'the disk refused a write before a commit');
    }
    this.fault = null;
  }

  /**
   * Throws `503 UNAVAILABLE` while a write was refused and the disk still refuses: probed
   * now when {@link idle}, refused at once when a write is queued (it probes first).
   */
  check(): void {
    if (!this.fault) return;
    if (this.idle) return this.ready();
    throw storageUnavailable(this.fault, 1, undefined, this.subject);
  }

  /** Resolves once every write queued so far has settled. */
  settled(): Promise<unknown> {
    return this.#tail;
  }

  close(): void {
    this.#file.close();
  }

  #failed(err: unknown, what: string): SkeinError {
    this.fault ??= storageFaultOf(err, what, this.clock());
    return storageUnavailable(this.fault, 1, err, this.subject);
  }
}
