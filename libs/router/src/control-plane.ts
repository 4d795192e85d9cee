import { SkeinError, mergeControlRecords, type ControlRecord, type ControlStore } from '@skein/protocol';
import { CONTROL } from './control-keys.ts';
import { translateRedisFailure } from './redis-errors.ts';
import { createRebuilder, majorityOf, type ControlPeers, type RebuildLogger, type ShardAddress } from './rebuilder.ts';

/** What a marker-checked mutation answers when the marker it was given is not the store's. */
export const STALE_MARKER = Symbol('stale control marker');

/**
 * The router's side of the control plane (DESIGN.md, "Control plane"): which epoch of
 * the control store (Redis, or the embedded one) its caches belong to, rebuilding the
 * store from the shards when it lost its data, and recording every control-plane change
 * on the shards before it is acknowledged.
 *
 * The epoch is the marker: a random id in the store, written when the control plane was
 * seeded or rebuilt. Every mutation checks it, so nothing is changed in a store that
 * was wiped and not yet rebuilt; every negative lookup reads it in the same
 * transaction, so a wiped store is never taken for "no such key" (401) or "no such
 * tenant". A new marker clears every cache of the store's state (`onEpoch`).
 */
export interface ControlPlane {
  /** The marker last seen; null when the store holds none (a rebuild is pending) or none was read yet. */
  readonly marker: string | null;
  /**
   * The marker, reading it first, and rebuilding the store from the shards when it has none.
   * @throws SkeinError UNAVAILABLE when the store cannot be reached, or the rebuild cannot
   *   finish (fewer than a majority of shards answer, another router's takes too long).
   */
  ready(): Promise<string>;
  /**
   * What a lookup read as the store's marker. Null (wiped): a rebuild starts in the
   * background. Another marker than known: caches are cleared.
   */
  observe(marker: string | null): void;
  /** `listener` runs whenever a new marker is adopted (after a rebuild): drop caches. */
  onEpoch(listener: () => void): void;
  /** `listener` runs with the record key of every change announced by any router. */
  onChange(listener: (recordKey: string) => void): void;
  /**
   * Runs `attempt` with the current marker; when it answers {@link STALE_MARKER} the
   * marker is read again (rebuilding if needed) and `attempt` retried, a few times.
   */
  mutate<T>(attempt: (marker: string) => Promise<T | typeof STALE_MARKER>): Promise<T>;
  /**
   * Records `records` on the shards: sent to every shard of the topology, waiting for
   * each (bounded by the shard timeout); resolves when a majority stored them.
   * @throws SkeinError UNAVAILABLE (`outcome: unknown`) when fewer than a majority did.
   */
  record(records: readonly ControlRecord[]): Promise<void>;
  /**
   * Gives `targets` every control record of the cluster, for a change of membership: a
   * shard that joins holds nothing, and one that leaves may have been part of the
   * majority that holds a change. Reads every shard of the topology (a majority must
   * answer: every acknowledged change is on a majority, so every one is read), merges the
   * copies (control-records.ts) and writes the merged set to each target, waiting for
   * each. Resolves with the targets that stored it; what failed is logged (none stored
   * it when fewer than a majority of the topology's shards answered the read).
   */
  replicate(targets: readonly ShardAddress[]): Promise<ShardAddress[]>;
  /** Announces a changed record to every router (their caches drop it). */
  announce(recordKey: string): Promise<void>;
  /** Subscribes to announcements and starts watching the marker. */
  listen(): Promise<void>;
  close(): void;
}

export interface ControlPlaneOptions {
  /** How often the marker is read when nothing else reads it (FLUSHALL announces nothing). Default 500 ms. */
  watchMs?: number;
  /** How long `ready()` waits for another router's rebuild. Default 5000 ms. */
  waitForRebuildMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function createControlPlane(deps: { store: ControlStore; peers: ControlPeers; log?: RebuildLogger }, options: ControlPlaneOptions = {}): ControlPlane {
  const { store, peers, log } = deps;
  const watchMs = options.watchMs ?? 500;
  const waitForRebuildMs = options.waitForRebuildMs ?? 5000;
  const rebuilder = createRebuilder({ store, peers, ...(log ? { log } : {}) });
  const epochListeners: (() => void)[] = [];
  const changeListeners: ((key: string) => void)[] = [];
  let marker: string | null = null;
  let adopted: string | null = null;
  let checking: Promise<string> | null = null;
  let timer: NodeJS.Timeout | null = null;

  function adopt(m: string): void {
    marker = m;
    if (m === adopted) return;
    const first = adopted === null;
    adopted = m;
    if (!first) log?.info({ marker: m }, 'control plane epoch changed; caches cleared');
    for (const l of epochListeners) l();
  }

  async function check(): Promise<string> {
    const until = Date.now() + waitForRebuildMs;
    for (;;) {
      let current: string | null;
      try {
        current = await store.readMarker();
        if (current === null && (await rebuilder.rebuild()) === 'rebuilt') current = await store.readMarker();
      } catch (err) {
        throw translateRedisFailure(err);
      }
      if (current !== null) {
        adopt(current);
        return current;
      }
      if (Date.now() > until) throw new SkeinError('UNAVAILABLE', 'the control plane is being rebuilt after its store lost its data; retry', { retryAfter: 1 });
      await sleep(100);
    }
  }

  const plane: ControlPlane = {
    get marker() {
      return marker;
    },
    ready() {
      if (marker !== null) return Promise.resolve(marker);
      checking ??= check().finally(() => (checking = null));
      return checking;
    },
    observe(m) {
      if (m === null) {
        if (marker !== null) log?.warn({ marker, store: store.kind }, 'the control store lost the control plane; rebuilding from the shards');
        marker = null;
        void plane.ready().catch((err: unknown) => log?.warn({ err }, 'control plane rebuild not done yet'));
      } else {
        adopt(m);
      }
    },
    onEpoch(listener) {
      epochListeners.push(listener);
    },
    onChange(listener) {
      changeListeners.push(listener);
    },
    async mutate(attempt) {
      for (let i = 0; i < 3; i++) {
        const m = await plane.ready();
        const result = await attempt(m);
        if (result !== STALE_MARKER) return result;
        if (marker === m) marker = null;
      }
      throw new SkeinError('UNAVAILABLE', 'the control plane epoch kept changing; retry', { retryAfter: 1 });
    },
    async record(records) {
      const members = await peers.members();
      const results = await Promise.allSettled(members.map((s) => peers.write(s, records)));
      const stored = results.filter((r) => r.status === 'fulfilled').length;
      if (stored < majorityOf(members.length) || members.length === 0) {
        for (const [i, r] of results.entries()) if (r.status === 'rejected') log?.warn({ err: r.reason, shard: members[i]!.id }, 'control records not stored on a shard');
        throw new SkeinError('UNAVAILABLE', `the change was recorded on ${stored} of ${members.length} shards, fewer than a majority; retry`, { retryAfter: 1, outcome: 'unknown' });
      }
    },
    async replicate(targets) {
      const members = await peers.members();
      const read = await Promise.allSettled(members.map((s) => peers.read(s)));
      const lists = read.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      if (lists.length < majorityOf(members.length) || members.length === 0) {
        log?.warn({ answered: lists.length, shards: members.length, targets: targets.map((s) => s.id) }, 'control records not replicated: fewer than a majority of the shards answered');
        return [];
      }
      const merged = mergeControlRecords(...lists);
      const written = await Promise.allSettled(targets.map((s) => peers.write(s, merged)));
      const stored: ShardAddress[] = [];
      for (const [i, r] of written.entries()) {
        if (r.status === 'fulfilled') stored.push(targets[i]!);
        else log?.warn({ err: r.reason, shard: targets[i]!.id }, 'control records not replicated to a shard');
      }
      if (stored.length > 0) log?.info({ records: merged.length, shards: stored.map((s) => s.id) }, 'control records replicated');
      return stored;
    },
    async announce(recordKey) {
      await store.publish(CONTROL.channel, recordKey).catch(() => undefined);
    },
    async listen() {
      await store.subscribe(CONTROL.channel, (message) => {
        if (message === 'rebuilt') void store.readMarker().then((m) => plane.observe(m), () => undefined);
        else for (const l of changeListeners) l(message);
      });
      // FLUSHALL and a replaced Redis announce nothing: the marker is read every watchMs.
      timer = setInterval(() => {
        if (checking) return;
        store.readMarker().then(
          (m) => plane.observe(m),
          () => undefined,
        );
      }, watchMs);
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
  return plane;
}
