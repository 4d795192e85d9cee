import { SkeinError, validationError, type ControlStore } from '@skein/protocol';

/**
 * Tenant append quotas (API.md: "no rate limit unless a tenant quota is configured").
 * A tenant created with `quota: { eventsPerSecond }` may append that many events per
 * one-second window, counted in the control store so that every router sharing it
 * enforces the same budget. Appends of the same tenant arriving in the same event-loop
 * turn share one round trip; tenants without a quota never reach the store here.
 */
export interface QuotaGate {
  /** Resolves when the append may proceed; rejects with RATE_LIMITED (and `retryAfter`) when over. */
  admit(tenant: string, eventsPerSecond: number, events: number): Promise<void>;
}


interface Asking {
  events: number;
  resolve(): void;
  reject(err: unknown): void;
}

export function createQuotaGate(deps: { store: ControlStore; onRefused?: (tenant: string) => void }): QuotaGate {
  const { store } = deps;
  const waiting = new Map<string, { limit: number; list: Asking[] }>();
  let scheduled = false;

  async function decide(tenant: string, limit: number, list: Asking[]): Promise<void> {
    let answer: { admitted: boolean[]; msLeft: number };
    try {
      answer = await store.admitEvents(tenant, limit, list.map((a) => a.events));
    } catch (err) {
      const e = new SkeinError('UNAVAILABLE', 'the tenant quota could not be checked', { retryAfter: 1 }, { cause: err });
      for (const a of list) a.reject(e);
      return;
    }
    const { admitted, msLeft } = answer;
    const retryAfter = Math.max(1, Math.ceil(msLeft / 1000));
    list.forEach((a, i) => {
      if (admitted[i]) return a.resolve();
      deps.onRefused?.(tenant);
      a.reject(new SkeinError('RATE_LIMITED', `tenant ${tenant} is over its quota of ${limit} events per second`, { retryAfter }));
    });
  }

  function flush(): void {
    scheduled = false;
    for (const [tenant, { limit, list }] of waiting) void decide(tenant, limit, list);
    waiting.clear();
  }

  return {
    admit(tenant, eventsPerSecond, events) {
      if (events > eventsPerSecond) {
        // Waiting would not help: refuse it as a bad request, not as "retry later".
        return Promise.reject(validationError('events', `an append of ${events} events exceeds tenant ${tenant}'s quota of ${eventsPerSecond} events per second`));
      }
      return new Promise<void>((resolve, reject) => {
        let entry = waiting.get(tenant);
        if (!entry) waiting.set(tenant, (entry = { limit: eventsPerSecond, list: [] }));
        entry.list.push({ events, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
  };
}
