// Issue 9's append workload: closed-loop clients, each owning its share of the streams,
// appending with the exact expectedVersion it knows; ~300-byte events. The same shape
// drives Skein (over the lean HTTP generator) and PostgreSQL (one INSERT per event).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SkeinClient } from '@skein/client';
import { createEngine, type EventStore } from '@skein/engine';
import { startHttpLoad, type LoadRequest } from './http-load.ts';
import { percentile } from './machine.ts';
import { sample, usageBetween, type ProcUsage } from './proc.ts';

/** An order event's data: 300 bytes of JSON. */
export const EVENT_DATA = {
  orderId: 'o-1234567890',
  customerId: 'c-00042517',
  placedAt: '2024-05-01T12:34:56.789Z',
  currency: 'EUR',
  amount: 12999,
  lines: [
    { sku: 'SKU-100-RED-M', qty: 2, price: 2999 },
    { sku: 'SKU-205-BLU-L', qty: 1, price: 4999 },
  ],
  shipping: { method: 'standard', country: 'DE' },
  note: 'leave at the door',
};

/** Durations of one measured load. */
export interface Timing {
  warmupMs: number;
  durationMs: number;
}

/** What one measured load did. */
export interface Measured {
  /** Requests answered with the expected status in the window, per second. */
  requestsPerSecond: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Requests answered in the window, by status. */
  statuses: Record<string, number>;
  seconds: number;
  /** Each server process's CPU over the window and RSS at its end. */
  processes: ProcUsage[];
  /** Server CPU per request, µs (every process in `processes`). */
  cpuPerRequestUs: number;
  /** The window in CLOCK_MONOTONIC µs (process.hrtime), the clock of --cpu-prof timestamps. */
  window: { startUs: number; endUs: number };
}

/**
 * Per-connection stream ownership and versions: connection c appends to streams c,
 * c + clients, c + 2·clients, … in turn, each at the version it last saw acknowledged.
 */
export class StreamVersions {
  private readonly owned: number[][];
  private readonly turn: number[];
  readonly versions: Int32Array;

  constructor(clients: number, streams: number) {
    this.owned = Array.from({ length: clients }, (_, c) => Array.from({ length: Math.ceil((streams - c) / clients) }, (_, k) => c + k * clients));
    this.turn = new Array<number>(clients).fill(0);
    this.versions = new Int32Array(streams);
  }

  /** The stream connection `c` appends to next. */
  current(c: number): number {
    const own = this.owned[c]!;
    return own[this.turn[c]! % own.length]!;
  }

  /** Records an acknowledged append of `events` events to `current(c)` and moves on to its next stream. */
  acknowledged(c: number, events: number): void {
    this.versions[this.current(c)]! += events;
    this.turn[c]!++;
  }
}

export interface SkeinLoadOptions extends Timing {
  url: string;
  apiKey: string;
  tenant: string;
  /** Distinguishes this load's streams from other loads on the same tenant. */
  streamPrefix: string;
  clients: number;
  streams: number;
  eventsPerAppend: number;
  /** The server processes whose CPU is counted, looked up at the start and end of the window. */
  serverPids: () => number[];
}

/**
 * Appends through the public API with exact expected versions for warm-up + duration and
 * measures the window after the warm-up. Only 201s advance a stream's version; any other
 * answer is counted and the same append is sent again.
 */
export async function measureSkeinAppends(o: SkeinLoadOptions): Promise<Measured> {
  const versions = new StreamVersions(o.clients, o.streams);
  const events = JSON.stringify(Array.from({ length: o.eventsPerAppend }, () => ({ type: 'OrderPlaced', data: EVENT_DATA })));
  const headers = { authorization: `Bearer ${o.apiKey}` };
  const request = (c: number): LoadRequest => {
    const s = versions.current(c);
    return { method: 'POST', path: `/v1/tenants/${o.tenant}/streams/${o.streamPrefix}-${s}/events`, headers, body: `{"expectedVersion":${versions.versions[s]},"events":${events}}` };
  };
  const load = await startHttpLoad(o.url, o.clients, request, (c, status) => {
    if (status === 201) versions.acknowledged(c, o.eventsPerAppend);
  });
  return measureWindow(o, o.eventsPerAppend, o.serverPids, () => load.measure(), async () => {
    const r = await load.stop();
    return { seconds: r.seconds, latencies: r.latencies, statuses: Object.fromEntries([...r.statuses].map(([k, v]) => [String(k), v])), ok: r.statuses.get(201) ?? 0 };
  });
}

/** Waits out the warm-up, samples the servers, opens the window, waits, samples, closes it. */
export async function measureWindow(
  timing: Timing,
  eventsPerRequest: number,
  serverPids: () => number[],
  open: () => void,
  close: () => Promise<{ seconds: number; latencies: number[]; statuses: Record<string, number>; ok: number }>,
): Promise<Measured> {
  await sleep(timing.warmupMs);
  const before = sample(serverPids());
  const startUs = monotonicUs();
  open();
  await sleep(timing.durationMs);
  const endUs = monotonicUs();
  const after = sample(serverPids());
  const r = await close();
  const processes = usageBetween(before, after);
  const cpu = processes.reduce((sum, p) => sum + p.cpuSeconds, 0);
  return {
    requestsPerSecond: r.ok / r.seconds,
    eventsPerSecond: (r.ok * eventsPerRequest) / r.seconds,
    p50Ms: percentile(r.latencies, 50),
    p99Ms: percentile(r.latencies, 99),
    statuses: r.statuses,
    seconds: r.seconds,
    processes,
    cpuPerRequestUs: r.ok > 0 ? (cpu * 1e6) / r.ok : NaN,
    window: { startUs, endUs },
  };
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads `stream` of `partition` forward in pages of 1,000 from the engine; how many events it held. */
export function readWholeStream(store: EventStore, partition: string, stream: string): number {
  let read = 0;
  for (let from: number | null = 1; from !== null; ) {
    const page = store.readStream(partition, stream, { from, limit: 1000 });
    if (!page.ok) throw new Error(`reading ${stream} failed`);
    read += page.events.length;
    from = page.next;
  }
  return read;
}

/**
 * The same stream read as the SDK's (`events` events of EVENT_DATA in one stream, written
 * in appends of 500, read forward in pages of 1,000) from the embedded engine in this
 * process: no HTTP, no JSON. Events/s. The yardstick issue 9 gave the SDK read by (its SDK
 * read 36k-67k events/s while the engine alone read 350k-665k). The median of 3 reads after a warm-up.
 */
export async function engineStreamRead(events: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-engine-read-'));
  const store = createEngine({ path: dir });
  try {
    const chunk = Array.from({ length: 500 }, () => ({ type: 'Tick', data: EVENT_DATA }));
    for (let i = 0; i < events / 500; i++) {
      const r = await store.append('bench', 'big-stream', { events: chunk });
      if (!r.ok) throw new Error(`engine append failed: ${JSON.stringify(r)}`);
    }
    readWholeStream(store, 'bench', 'big-stream'); // warm-up, then the median of 3, as the SDK's read (cluster.bench.ts)
    const rates: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const read = readWholeStream(store, 'bench', 'big-stream');
      if (read !== events) throw new Error(`engine read ${read} events, expected ${events}`);
      rates.push(read / ((performance.now() - t0) / 1000));
    }
    return rates.sort((a, b) => a - b)[1]!;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `events` events of EVENT_DATA written to one stream through the SDK, in appends of 500. */
export async function fillStream(client: SkeinClient, tenant: string, stream: string, events: number): Promise<void> {
  const chunk = Array.from({ length: 500 }, () => ({ type: 'Tick', data: EVENT_DATA }));
  for (let i = 0; i < events / 500; i++) await client.append(tenant, stream, { events: chunk });
}

/**
 * Issue 9's stream read through the SDK (pages of 1,000) of a stream of `events` events:
 * one warm-up read, then the median of three, in events/s (as engineStreamRead).
 */
export async function sdkStreamRead(client: SkeinClient, tenant: string, stream: string, events: number): Promise<number> {
  const readAll = async () => {
    let read = 0;
    for await (const _e of client.streamEvents(tenant, stream, { pageSize: 1000 })) read++;
    if (read !== events) throw new Error(`read ${read} events, expected ${events}`);
  };
  await readAll();
  const rates: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    await readAll();
    rates.push(events / ((performance.now() - t0) / 1000));
  }
  return percentile(rates, 50);
}

/** What measureSubscriptionLag measured: each delivered probe's lag (ms), how many probes were acknowledged, and the load meanwhile. */
export interface LagMeasured {
  lags: number[];
  acknowledged: number;
  load: Measured;
}

/**
 * Issue 9's subscription lag: from an append's acknowledgement to its delivery on a
 * tenant-log subscription, while `load` (the bench's write load) runs. A probe appends
 * every 10 ms to one of 50 streams named `<probePrefix>-<n>` and notes when each was
 * acknowledged; a probe may arrive before its append's answer is read, so both times are
 * kept and matched at the end (waiting up to 10 s for the last).
 */
export async function measureSubscriptionLag(client: SkeinClient, tenant: string, probePrefix: string, load: () => Promise<Measured>): Promise<LagMeasured> {
  const sub = client.subscribeTenant(tenant, { fromPosition: 'end' });
  const acknowledgedAt = new Map<string, number>();
  const deliveredAt = new Map<string, number>();
  const receiving = (async () => {
    for await (const e of sub) if (e.type === 'Probe') deliveredAt.set(String(e.position), performance.now());
  })();
  await sleep(300);
  let loadDone = false;
  const running = load().finally(() => (loadDone = true));
  for (let i = 0; !loadDone; i++) {
    const r = await client.append(tenant, `${probePrefix}-${i % 50}`, { events: [{ type: 'Probe', data: i }] });
    acknowledgedAt.set(String(r.firstPosition), performance.now());
    await sleep(10);
  }
  const measured = await running;
  for (const until = Date.now() + 10_000; Date.now() < until && [...acknowledgedAt.keys()].some((p) => !deliveredAt.has(p)); ) await sleep(50);
  sub.close();
  await receiving.catch(() => undefined);
  const lags = [...acknowledgedAt].flatMap(([position, at]) => {
    const delivered = deliveredAt.get(position);
    return delivered === undefined ? [] : [Math.max(0, delivered - at)];
  });
  return { lags, acknowledged: acknowledgedAt.size, load: measured };
}
