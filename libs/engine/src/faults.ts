import type { SkeinError } from '@skein/protocol';
import type { Op } from './decide.ts';
import { storageFaultOf, storageUnavailable, type StorageFault } from './storage.ts';
import type { StoreAccess } from './store-access.ts';

// ---- storage faults (storage.ts: why LMDB must not meet a failing write) ----

/** Fails every op of a batch with `err`. */
export function failAll(ops: Op[], err: unknown): void {
  for (const op of ops) op.reject(err);
}

/**
 * The store's storage fault state. While `fault` is set, writes are refused until a
 * probe succeeds; the probe runs from the batcher (between batches), which `probeDue`
 * wakes every `storageProbeIntervalMs` while faulted.
 */
export class StorageGuard {
  /** Set while storage is faulted: writes are refused until a probe succeeds. */
  fault: StorageFault | null = null;
  #probeTimer: NodeJS.Timeout | null = null;
  readonly #access: StoreAccess;
  readonly #probeDue: () => void;

  constructor(access: StoreAccess, probeDue: () => void) {
    this.#access = access;
    this.#probeDue = probeDue;
  }

  /** Fails a batch because of a storage fault; nothing of it was written. */
  refuse(ops: Op[], err: SkeinError): void {
    this.#access.observer?.storageRefused?.({ code: this.fault?.code ?? 'UNKNOWN', ops: ops.length });
    failAll(ops, err);
  }

  /** Enters the faulted state (logged once, when it begins); returns what the batch is failed with. */
  storageFailed(err: unknown, what: string): SkeinError {
    const { clock, log, observer, cfg } = this.#access;
    if (!this.fault) {
      this.fault = storageFaultOf(err, what, clock());
      log.error({ err, code: this.fault.code }, 'storage faulted; writes are refused until it recovers');
      observer?.storageFault?.(this.fault);
      this.#probeTimer = setInterval(this.#probeDue, cfg.storageProbeIntervalMs);
      this.#probeTimer.unref();
    }
    return storageUnavailable(this.fault, 1, err);
  }

  /**
   * Whether storage takes writes again: reopens environments whose commit failed and
   * readies the current bucket (space allocated past its pages, a write probe). Runs
   * only from the batcher's `drain`, between batches.
   */
  async probeStorage(): Promise<boolean> {
    const { buckets, clock, log, observer } = this.#access;
    const fault = this.fault;
    if (!fault) return true;
    try {
      await buckets.reopenFailed();
      buckets.prepareWrite(buckets.current(clock()));
    } catch (err) {
      log.debug({ err, code: fault.code }, 'storage still faulted');
      return false;
    }
    log.info({ code: fault.code, faultedMs: clock() - fault.since }, 'storage recovered; writes are accepted again');
    this.fault = null;
    this.stopProbing();
    observer?.storageFault?.(null);
    return true;
  }

  /** Stops the periodic probe (recovered, or the store closes). */
  stopProbing(): void {
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#probeTimer = null;
  }
}
