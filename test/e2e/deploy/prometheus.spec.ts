// A real Prometheus, configured from deploy/prometheus (its jobs, its alert rules), scrapes a
// real cluster under a little append/read/subscribe load; then every PromQL expression of the
// Grafana dashboard and of the alert rules is evaluated through Prometheus's HTTP API. A
// query that returns nothing is a broken panel (or an alert that can never fire).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startCluster, tempDir } from '@skein/testing';
import { alertRules, dashboardQueries, measuredSides, readYaml, repoPath, withGrafanaVariables } from './support.ts';

const SCRAPE = '1s';
/** What `$__rate_interval` becomes: several scrapes, all within the load. */
const RATE_INTERVAL = '15s';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hostOf = (url: string) => new URL(url).host;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(prometheus: string, expr: string): Promise<Sample[]> {
  const res = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
  assert.equal(body.status, 'success', `${expr}: ${body.error}`);
  assert.equal(body.data!.resultType, 'vector', expr);
  return body.data!.result;
}

/** Appends, reads, conflicts, misses and two live subscriptions, until `stop()`. */
function startLoad(url: string, tenant: string, apiKey: string) {
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${url}/v1/tenants/${tenant}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }).then(async (r) => {
      await r.arrayBuffer();
      return r.status;
    });
  const statuses = new Map<number, number>();
  const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
  const abort = new AbortController();
  let subscriptionBytes = 0;
  const subscribe = async (path: string) => {
    try {
      const res = await fetch(`${url}/v1/tenants/${tenant}${path}`, { headers, signal: abort.signal });
      for await (const chunk of res.body!) subscriptionBytes += (chunk as Uint8Array).byteLength;
    } catch {
      // aborted at stop
    }
  };
  const subscriptions = [subscribe('/events/subscribe?fromPosition=0'), subscribe('/streams/writer-0/subscribe?from=1')];
  let running = true;
  const writer = async (w: number) => {
    const stream = `writer-${w}`;
    for (let i = 0; running; i++) {
      count(await call('POST', `/streams/${stream}/events`, { events: [{ type: 'Ticked', data: { w, i } }, { type: 'Ticked', data: { w, i, second: true } }] }));
      if (i % 5 === 0) {
        count(await call('GET', `/streams/${stream}?from=1&limit=20`));
        count(await call('GET', `/events?fromPosition=0&limit=50`));
        // A conflict (409) and a miss (404), so that the error panels have something to show.
        count(await call('POST', `/streams/${stream}/events`, { expectedVersion: 0, events: [{ type: 'Late', data: null }] }));
        count(await call('GET', `/streams/missing-${w}`));
      }
    }
  };
  const writers = Array.from({ length: 8 }, (_, w) => writer(w));
  return {
    statuses,
    get subscriptionBytes() {
      return subscriptionBytes;
    },
    async stop() {
      running = false;
      await Promise.all(writers);
      abort.abort();
      await Promise.all(subscriptions);
    },
  };
}

async function startPrometheus(targets: Record<string, string[]>): Promise<{ url: string; stop(): Promise<void>; output: string[] }> {
  const dir = await tempDir('skein-prometheus-');
  const port = await freePort();
  const config = readYaml('deploy/prometheus/prometheus.yml');
  config.global = { ...config.global, scrape_interval: SCRAPE, evaluation_interval: SCRAPE };
  config.rule_files = [repoPath('deploy/prometheus/alerts.yml')];
  for (const job of config.scrape_configs) {
    const here = job.job_name === 'prometheus' ? [`127.0.0.1:${port}`] : targets[job.job_name];
    assert.ok(here, `no test targets for job ${job.job_name}`);
    job.static_configs = [{ targets: here }];
  }
  await writeFile(join(dir.path, 'prometheus.yml'), stringify(config));
  const output: string[] = [];
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir.path, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir.path, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (err) => output.push(`prometheus could not start (apt-get install -y prometheus): ${err.message}`));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await dir.remove();
  };
  const until = Date.now() + 20_000;
  for (;;) {
    if (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) break;
    if (child.exitCode !== null || Date.now() > until) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${output.join('')}`);
    }
    await sleep(100);
  }
  return { url, stop, output };
}

test('every dashboard panel query and every alert expression returns data from a real Prometheus scraping a loaded cluster', { timeout: 120_000 }, async () => {
  const cluster = await startCluster({ shards: 3, routers: 1 });
  let prometheus: Awaited<ReturnType<typeof startPrometheus>> | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    const tenant = `deploy-${randomUUID().slice(0, 8)}`;
    const created = await fetch(`${cluster.url}/v1/admin/tenants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenant, partitions: 6 }),
    });
    assert.equal(created.status, 201);
    const { apiKey } = (await created.json()) as { apiKey: string };

    prometheus = await startPrometheus({
      'skein-router': cluster.routers.map((r) => hostOf(r.url)),
      'skein-shard': cluster.shards.map((s) => hostOf(s.url)),
    });
    load = startLoad(cluster.url, tenant, apiKey);

    // Every Skein target up, then enough scrapes under load for rates over RATE_INTERVAL.
    const until = Date.now() + 30_000;
    for (;;) {
      const up = await query(prometheus.url, 'up{job=~"skein-.*"} == 1');
      if (up.length === cluster.routers.length + cluster.shards.length) break;
      assert.ok(Date.now() < until, `targets not up: ${JSON.stringify(await query(prometheus.url, 'up'))}\n${prometheus.output.join('')}`);
      await sleep(250);
    }
    await sleep(8000);

    const broken: string[] = [];
    const check = async (what: string, expr: string) => {
      const samples = await query(prometheus!.url, expr);
      if (samples.length === 0) broken.push(`${what}: no series: ${expr}`);
      else if (!samples.some((s) => Number.isFinite(Number(s.value[1])))) broken.push(`${what}: only NaN/Inf: ${expr}`);
    };
    const panels = dashboardQueries();
    assert.ok(panels.length >= 14);
    for (const { panel, expr } of panels) await check(`panel "${panel}"`, withGrafanaVariables(expr, RATE_INTERVAL));
    const rules = alertRules();
    assert.ok(rules.length >= 5);
    for (const { alert, expr } of rules) {
      await query(prometheus.url, expr); // the whole rule parses and evaluates (healthy: often empty)
      for (const side of measuredSides(expr)) await check(`alert ${alert}`, side);
    }
    // The dashboard's shard variable: label_values(skein_shard_safe_point, shard).
    const shards = (await (await fetch(`${prometheus.url}/api/v1/label/shard/values?match[]=skein_shard_safe_point`)).json()) as { data: string[] };
    assert.deepEqual(shards.data.sort(), ['shard-0', 'shard-1', 'shard-2']);
    // The check can fail: a metric nobody serves has no data.
    assert.deepEqual(await query(prometheus.url, 'skein_shard_no_such_metric_total'), []);

    assert.deepEqual(broken, []);
    assert.ok((load.statuses.get(201) ?? 0) > 50, `appends acknowledged: ${JSON.stringify([...load.statuses])}`);
    assert.ok(load.subscriptionBytes > 0, 'the subscriptions received events');
  } finally {
    await load?.stop();
    await prometheus?.stop();
    await cluster.stop();
  }
});
