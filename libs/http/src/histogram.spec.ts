import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from './histogram.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];

/** The same observations on prom-client's Histogram and on FastHistogram, each in its own registry. */
function both<L extends string>(labelNames: readonly L[]) {
  const theirs = new Registry();
  const ours = new Registry();
  const config = { name: 'skein_test_seconds', help: 'A test histogram, seconds', buckets: BUCKETS, labelNames };
  const reference = new Histogram({ ...config, labelNames: [...labelNames], registers: [theirs] });
  const fast = new FastHistogram({ ...config, registers: [ours] });
  return { theirs, ours, reference, fast };
}

test('scrapes exactly as prom-client does for labelled observations, bounds included', async () => {
  const { theirs, ours, reference, fast } = both(['route', 'code'] as const);
  const observations: Array<[{ route: string; code: string }, number]> = [
    [{ route: '/v1/tenants/:tenant/streams/:stream/events', code: '201' }, 0.0004],
    [{ route: '/v1/tenants/:tenant/streams/:stream/events', code: '201' }, 0.001],
    [{ route: '/v1/tenants/:tenant/streams/:stream/events', code: '409' }, 0.05],
    [{ route: 'a "quoted" \\ route\nwith a newline', code: '201' }, 7],
    [{ route: '/v1/tenants/:tenant/streams/:stream/events', code: '201' }, 1],
    [{ route: '/v1/tenants/:tenant/streams/:stream/events', code: '201' }, 0],
  ];
  for (const [labels, value] of observations) {
    reference.observe(labels, value);
    fast.observe(labels, value);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
});

test('a histogram without labels is scraped before its first observation, and after, as prom-client does', async () => {
  const { theirs, ours, reference, fast } = both([]);
  assert.equal(await ours.metrics(), await theirs.metrics());
  for (const value of [1, 2, 0.5, 0.0001]) {
    reference.observe(value);
    fast.observe(value);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  theirs.resetMetrics();
  ours.resetMetrics();
  assert.equal(await ours.metrics(), await theirs.metrics());
});

test('refuses a value that is not a finite number and a label it does not have', () => {
  const { fast } = both(['result'] as const);
  assert.throws(() => fast.observe({ result: 'written' }, Number.NaN), TypeError);
  assert.throws(() => fast.observe({ result: 'written', other: 'x' } as { result: string }, 1), /label "other"/);
  assert.equal((fast.get().values as unknown[]).length, 0, 'nothing refused was counted');
});
