import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { call } from '../support.ts';

/** Polls `GET /v1/admin/jobs/{id}` until the job completed; fails on `failed` or after `timeoutMs`. */
export async function waitForJob(url: string, adminKey: string, id: string, timeoutMs = 40_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  let last: any = null;
  for (;;) {
    const res = await call(url, 'GET', `/v1/admin/jobs/${encodeURIComponent(id)}`, { key: adminKey });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    last = res.body;
    if (last.state === 'completed') return last;
    assert.notEqual(last.state, 'failed', `job ${id} failed: ${JSON.stringify(last)}`);
    if (Date.now() > until) assert.fail(`job ${id} did not complete within ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Keys starting with `prefix` in every bucket environment of a shard data dir, counted on the files (the shard stopped). */
export function countKeys(dataDir: string, prefix: (string | number)[]): number {
  let n = 0;
  for (const name of readdirSync(dataDir).filter((d) => d.startsWith('bucket-'))) {
    const db = open<unknown, (string | number)[]>({ path: join(dataDir, name), readOnly: true, keyEncoding: 'ordered-binary' });
    for (const key of db.getKeys({ start: prefix })) {
      if (prefix.some((p, i) => key[i] !== p)) break;
      n++;
    }
    void db.close();
  }
  return n;
}

/** The shard owning each of a tenant's partitions (`GET /v1/admin/tenants/{tenant}`). */
export async function placementOf(url: string, adminKey: string, tenant: string): Promise<Record<string, string>> {
  const res = await call(url, 'GET', `/v1/admin/tenants/${tenant}`, { key: adminKey });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.placement;
}

/** Appends `count` events to `stream` in batches, each acknowledged. */
export async function appendMany(url: string, key: string, tenant: string, stream: string, count: number, data: (i: number) => unknown = (i) => ({ i }), batch = 500): Promise<void> {
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const res = await call(url, 'POST', `/v1/tenants/${tenant}/streams/${stream}/events`, { key, body: { events: Array.from({ length: n }, (_, j) => ({ type: 'T', data: data(i + j) })) } });
    assert.equal(res.status, 201, JSON.stringify(res.body).slice(0, 300));
  }
}
