import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';

/**
 * The write load of the fault-injection suite: writers that record every acknowledgement,
 * and the read-back that proves none was lost or duplicated.
 *
 * Each writer owns its streams and appends one event at a time with the exact expected
 * version and an Idempotency-Key of its own. An answer that is not an acknowledgement
 * (503, a reset connection, a timeout) leaves the outcome unknown, so the writer sends the
 * same request again, same key and same expected version, until it is acknowledged (201,
 * or 200 `duplicate` when the first attempt had committed after all) or the load stops.
 * A retry can therefore never write an event twice, and a version is never skipped.
 */

export interface Ack {
  streamId: string;
  version: number;
  position: bigint;
  eventId: string;
}

export interface LoadReport {
  acks: Ack[];
  /** Answers by status ('201', '200', '503', …), and 'network' for failed exchanges. */
  statuses: Record<string, number>;
  /** Problem-document codes seen, by code. */
  codes: Record<string, number>;
  /** Answers without a Retry-After header among 429/503 answers. */
  retryableWithoutRetryAfter: number;
}

export interface WriterOptions {
  url: string;
  /** A key allowed to append to `tenant` (tenant key or admin key). */
  key: string;
  tenant: string;
  /** At least 16 for the suite's cases. Default 16. */
  writers?: number;
  /** Streams per writer, appended round-robin. Default 4. */
  streamsPerWriter?: number;
  /** Approximate bytes of each event's data. Default 200. */
  eventBytes?: number;
  /** Pause between retries of an unacknowledged append, ms. Default 50. */
  retryDelayMs?: number;
  /** Per-request timeout, ms. Default 10,000. */
  timeoutMs?: number;
  /** Stream id prefix (default `w`); streams are `<prefix><writer>-<n>`. */
  streamPrefix?: string;
}

export interface Load {
  /** Acknowledgements so far (live view). */
  readonly acks: readonly Ack[];
  /** Answers by status so far (live view). */
  readonly statuses: Readonly<Record<string, number>>;
  /** Stops every writer after its request in flight settles, and reports. */
  stop(): Promise<LoadReport>;
}

export function startWriters(options: WriterOptions): Load {
  const writers = options.writers ?? 16;
  const perWriter = options.streamsPerWriter ?? 4;
  const payload = 'x'.repeat(options.eventBytes ?? 200);
  const retryDelayMs = options.retryDelayMs ?? 50;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const prefix = options.streamPrefix ?? 'w';
  const dispatcher = new Agent({ connections: writers, pipelining: 1, keepAliveTimeout: 10_000 });
  const acks: Ack[] = [];
  const statuses: Record<string, number> = {};
  const codes: Record<string, number> = {};
  let retryableWithoutRetryAfter = 0;
  let stopping = false;

  const count = (status: string) => (statuses[status] = (statuses[status] ?? 0) + 1);

  async function appendOnce(streamId: string, expected: number, eventId: string, idemKey: string): Promise<Ack | undefined> {
    const path = `/v1/tenants/${options.tenant}/streams/${encodeURIComponent(streamId)}/events`;
    const body = JSON.stringify({ expectedVersion: expected, events: [{ id: eventId, type: 'Written', data: { streamId, version: expected + 1, payload } }] });
    try {
      const res = await request(options.url + path, {
        method: 'POST',
        dispatcher,
        headers: { authorization: `Bearer ${options.key}`, 'content-type': 'application/json', 'idempotency-key': idemKey },
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      count(String(res.statusCode));
      let parsed: any = undefined;
      try {
        parsed = JSON.parse(text);
      } catch {
        // counted by status; not JSON
      }
      if (res.statusCode === 201 || res.statusCode === 200) {
        assert.equal(parsed.firstVersion, expected + 1, `${streamId}: acknowledged at version ${parsed.firstVersion}, expected ${expected + 1}`);
        return { streamId, version: parsed.firstVersion, position: BigInt(parsed.firstPosition), eventId };
      }
      if (parsed && typeof parsed.code === 'string') codes[parsed.code] = (codes[parsed.code] ?? 0) + 1;
      if ((res.statusCode === 503 || res.statusCode === 429) && res.headers['retry-after'] === undefined) retryableWithoutRetryAfter++;
      if (res.statusCode === 409) {
        // Only possible if an earlier attempt of this very request committed and its
        // idempotency record was lost: a durability bug, not a retryable answer.
        throw new Error(`${streamId}: 409 at expected version ${expected}: ${text}`);
      }
      return undefined;
    } catch (err) {
      if (err instanceof assert.AssertionError || (err instanceof Error && err.message.includes(': 409 at'))) throw err;
      count('network');
      return undefined;
    }
  }

  async function writer(w: number): Promise<void> {
    const versions = new Array<number>(perWriter).fill(0);
    for (let n = 0; !stopping; n = (n + 1) % perWriter) {
      const streamId = `${prefix}${w}-${n}`;
      const eventId = randomUUID();
      const idemKey = `k-${eventId}`;
      for (;;) {
        const ack = await appendOnce(streamId, versions[n]!, eventId, idemKey);
        if (ack) {
          acks.push(ack);
          versions[n] = ack.version;
          break;
        }
        // Unknown outcome: the same request again, unless stopping. A request abandoned
        // at stop was never acknowledged, so the read-back may or may not find it.
        if (stopping) return;
        await new Promise((r) => setTimeout(r, retryDelayMs));
      }
    }
  }

  const running = Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
  return {
    acks,
    statuses,
    async stop() {
      stopping = true;
      await running;
      await dispatcher.close();
      return { acks: acks.slice(), statuses: { ...statuses }, codes: { ...codes }, retryableWithoutRetryAfter };
    },
  };
}

export interface VerifyOptions {
  url: string;
  /** A key allowed to read `tenant`. */
  key: string;
  tenant: string;
  /** How long to keep retrying reads that answer 503 (a recovering cluster). Default 30 s. */
  patienceMs?: number;
  /** Events per page read back. Default 1000; large events need fewer (a page is one JSON string). */
  pageSize?: number;
}

async function getJson(url: string, key: string, patienceMs: number): Promise<any> {
  const until = Date.now() + patienceMs;
  for (;;) {
    let status = 0;
    let text = '';
    try {
      const res = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
      status = res.status;
      text = await res.text();
      if (status === 200) return JSON.parse(text);
    } catch (err) {
      text = String(err);
    }
    if (status !== 503 && status !== 0) assert.fail(`GET ${url} answered ${status}: ${text}`);
    if (Date.now() > until) assert.fail(`GET ${url} still failing after ${patienceMs} ms: ${status} ${text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Reads back every stream the acknowledgements name and the tenant's log in global
 * order, and asserts: every acknowledged event is stored at its acknowledged version
 * and position with its id; every stream's versions run 1..n with no gap or repeat;
 * no position appears twice in the tenant log; every acknowledged event is in the log.
 */
export async function verifyAcknowledged(options: VerifyOptions, report: LoadReport): Promise<{ streams: number; events: number }> {
  const patience = options.patienceMs ?? 30_000;
  const pageSize = options.pageSize ?? 1000;
  const base = `${options.url}/v1/tenants/${options.tenant}`;
  const byStream = new Map<string, Ack[]>();
  for (const a of report.acks) {
    let list = byStream.get(a.streamId);
    if (!list) byStream.set(a.streamId, (list = []));
    list.push(a);
  }
  let events = 0;
  for (const [streamId, acks] of byStream) {
    const stored = new Map<number, { id: string; position: string }>();
    let expectedVersion = 1;
    for (let from: number | null = 1; from !== null; ) {
      const page = await getJson(`${base}/streams/${encodeURIComponent(streamId)}?from=${from}&limit=${pageSize}`, options.key, patience);
      for (const e of page.events) {
        assert.equal(e.version, expectedVersion, `${streamId}: version ${e.version} where ${expectedVersion} was due (gap or repeat)`);
        expectedVersion++;
        stored.set(e.version, { id: e.id, position: e.position });
      }
      from = page.next;
    }
    for (const a of acks) {
      const s = stored.get(a.version);
      assert.ok(s, `${streamId}: acknowledged version ${a.version} (position ${a.position}) is missing`);
      assert.equal(s.id, a.eventId, `${streamId}@${a.version}: another event id is stored`);
      assert.equal(s.position, String(a.position), `${streamId}@${a.version}: stored at another position`);
    }
    events += stored.size;
  }

  const positions = new Set<string>();
  const ackedPositions = new Set(report.acks.map((a) => String(a.position)));
  let previous = -1n;
  for (let from = '0'; ; ) {
    const page = await getJson(`${base}/events?fromPosition=${from}&limit=${pageSize}`, options.key, patience);
    for (const e of page.events) {
      assert.ok(!positions.has(e.position), `position ${e.position} appears twice in the tenant log`);
      assert.ok(BigInt(e.position) > previous, `tenant log out of order at ${e.position}`);
      previous = BigInt(e.position);
      positions.add(e.position);
      ackedPositions.delete(e.position);
    }
    if (page.events.length === 0) break;
    from = page.next;
  }
  assert.equal(ackedPositions.size, 0, `acknowledged positions missing from the tenant log: ${[...ackedPositions].slice(0, 10).join(', ')}`);
  return { streams: byStream.size, events };
}
