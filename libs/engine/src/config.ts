import { DEFAULT_LIMITS } from '@skein/protocol';
import type { EngineOptions } from './types.ts';

/** Defaults of every EngineOptions field that has one. */
export const defaultEngineOptions = Object.freeze({
  bucketSpan: 'month' as const,
  mapSizeBytes: 1024 * 1024 * 1024,
  idempotencyWindowMs: 24 * 60 * 60 * 1000,
  maxBatchOps: 4096,
  batchWaitMs: 0,
  headCacheSize: 100_000,
  maxEventBytes: DEFAULT_LIMITS.maxEventBytes,
  maxEventsPerAppend: DEFAULT_LIMITS.maxEventsPerAppend,
  storageReserveBytes: 64 * 1024 * 1024,
  storageProbeIntervalMs: 1000,
  readPageBytes: 4 * 1024 * 1024,
  maxOpenBuckets: 64,
  commitThread: false,
  testCommitDelayMs: 0,
});

/** The options with every default filled in (an undefined option takes its default). */
export function configOf(options: EngineOptions) {
  return { ...defaultEngineOptions, ...stripUndefined(options), path: options.path };
}

export type EngineConfig = ReturnType<typeof configOf>;

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
