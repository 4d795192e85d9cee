// The benchmark report on a fixed result (fixtures/bench-result.json): the Markdown table,
// the ratios issue 9 is judged by, and an SVG chart that parses as XML. No benchmark runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ratiosOf, renderMarkdown, renderSvg, summaryLine, writeReport, type BenchResult } from './report.ts';

const fixture = (): BenchResult => JSON.parse(readFileSync(new URL('./fixtures/bench-result.json', import.meta.url), 'utf8'));

/** The rows of the Markdown table whose header row starts with `firstHeader`, as cell arrays (header included). */
function table(markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${firstHeader} |`));
  assert.ok(start >= 0, `a table headed "${firstHeader}"`);
  const rows: string[][] = [];
  for (let i = start; i < lines.length && lines[i]!.startsWith('|'); i++) {
    if (i === start + 1) continue; // the alignment row
    rows.push(lines[i]!.slice(1, -1).split(' | ').map((c) => c.trim()));
  }
  return rows;
}

interface SvgNode {
  [key: string]: unknown;
}

function parseSvg(svg: string): SvgNode {
  assert.equal(XMLValidator.validate(svg), true, 'the SVG is well-formed XML');
  return new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', isArray: (name) => ['g', 'circle', 'text', 'polyline', 'line', 'rect'].includes(name) }).parse(svg);
}

test('the summary table has one row per system with appends/s, p50, p99, CPU per append and the ratios to PostgreSQL', () => {
  const rows = table(renderMarkdown(fixture(), 'chart.svg'), 'System');
  assert.deepEqual(rows[0], ['System', 'appends/s', 'p50 ms', 'p99 ms', 'server CPU µs/append', 'CPU ÷ PostgreSQL', 'throughput ÷ PostgreSQL', 'p99/p50']);
  assert.deepEqual(rows.slice(1), [
    ['PostgreSQL 15.4', '5,000', '4.00', '16.0', '200', '1.00×', '1.00×', '4.0'],
    ['Skein (npm start)', '3,000', '8.00', '24.0', '300', '1.50×', '0.60×', '3.0'],
    ['Skein <3 processes & router>', '2,500', '10.0', '50.0', '400', '2.00×', '0.50×', '5.0'],
  ]);
});

test('the report names the machine, the commit, the calibration and the PostgreSQL settings, and links its chart', () => {
  const md = renderMarkdown(fixture(), 'chart.svg');
  assert.match(md, /^# Benchmark 2025-01-02 · abc1234\n/);
  assert.match(md, /2 × Test CPU, 24 GiB, node v20\.0\.0/);
  assert.match(md, /load average at start 1\.50, 1\.25, 1\.00/);
  assert.match(md, /Calibration: a bare Fastify route: 12,345 req\/s/);
  assert.match(md, /synchronous_commit=on, fsync=on, wal_sync_method=fdatasync/);
  assert.match(md, /!\[appends\/s by client concurrency\]\(chart\.svg\)/);
});

test('process rows give each process its share of a core, CPU per append and RSS; PostgreSQL backends are one row', () => {
  const rows = table(renderMarkdown(fixture(), 'chart.svg'), 'System');
  const header = ['System', 'process', 'CPU (share of one core)', 'CPU µs/append', 'RSS MiB'];
  const md = renderMarkdown(fixture(), 'chart.svg');
  assert.ok(md.includes(`| ${header.join(' | ')} |`));
  assert.ok(rows.length > 0);
  const procRows = md.split('\n').filter((l) => /^\| (PostgreSQL 15\.4|Skein \(npm start\)) \| (backend|router|shard-0)/.test(l));
  assert.deepEqual(procRows, ['| PostgreSQL 15.4 | backend ×2 | 100% | 200 | 20 |', '| Skein (npm start) | router | 60% | 200 | 120 |', '| Skein (npm start) | shard-0 | 30% | 100 | 80 |']);
});

test('reads, subscription lag and the concurrency sweep each have their rows', () => {
  const md = renderMarkdown(fixture(), 'chart.svg');
  assert.match(md, /\| stream read, pages of 1000 \(SDK\), 50,000 events \| npm start \| 100,000 events\/s \|/);
  assert.match(md, /\| the same read from the engine alone, in-process \(no HTTP, no JSON\) \| engine \| 400,000 events\/s \|/);
  assert.match(md, /\| SDK read ÷ engine alone \(issue 9: .*\) \| npm start \| 0\.25 \|/);
  const older = { ...fixture(), read: { system: 'npm start', events: 50000, pageSize: 1000, eventsPerSecond: 100000 } };
  assert.doesNotMatch(renderMarkdown(older, 'chart.svg'), /engine alone/);
  assert.match(md, /\| subscription lag, .* 100 events, under 2,900 appends\/s \| npm start \| p50 5\.00 ms, p99 20\.0 ms \|/);
  const sweepRows = md.split('\n').filter((l) => /^\| Skein \(npm start\) \| \d+ \| \d+ \|/.test(l));
  assert.equal(sweepRows.length, 6);
  assert.equal(sweepRows[5], '| Skein (npm start) | 64 | 10 | 1,800 | 18,000 | 30.0 | 80.0 | 500 |');
});

test('without PostgreSQL the ratios are dashes and the report says why it was skipped', () => {
  const result = { ...fixture(), postgres: { skipped: 'no PostgreSQL at postgresql://127.0.0.1:5432 (ECONNREFUSED)' } };
  const rows = table(renderMarkdown(result, 'chart.svg'), 'System');
  assert.deepEqual(rows.map((r) => r[0]), ['System', 'Skein (npm start)', 'Skein <3 processes & router>']);
  assert.deepEqual(rows[1]!.slice(5), ['–', '–', '3.0']);
  assert.match(renderMarkdown(result, 'chart.svg'), /PostgreSQL: skipped \(no PostgreSQL at .*ECONNREFUSED\)\)/);
  assert.deepEqual(ratiosOf(result).map((r) => [r.cpu, r.throughput]), [[null, null], [null, null]]);
});

test('the summary line states each ratio against what issue 9 requires', () => {
  assert.equal(summaryLine(ratiosOf(fixture())[0]!), 'Skein (npm start): CPU/append ÷ PostgreSQL CPU/insert 1.50× (required ≤ 1.5×), throughput ÷ PostgreSQL 0.60× (required ≥ 0.6×), p99/p50 3.0 (required < 4)');
});

test('the chart is an SVG with one line per events-per-append, a point per concurrency, higher appends/s drawn higher', () => {
  const doc = parseSvg(renderSvg(fixture().sweep, 'appends/s'));
  const svg = doc.svg as SvgNode;
  assert.equal(svg['@xmlns'], 'http://www.w3.org/2000/svg');
  const series = svg.g as SvgNode[];
  assert.deepEqual(series.map((g) => g['@data-events-per-append']), ['1', '10']);
  for (const g of series) {
    const circles = g.circle as SvgNode[];
    assert.equal(circles.length, 3);
    const xs = circles.map((c) => Number(c['@cx']));
    assert.deepEqual([...xs].sort((a, b) => a - b), xs, 'points run left to right by concurrency');
    const points = ((g.polyline as SvgNode[])[0]!['@points'] as string).split(' ');
    assert.equal(points.length, 3);
  }
  // 1-event series: 200, 2000, 4000 appends/s; SVG y grows downwards.
  const ys = (series[0]!.circle as SvgNode[]).map((c) => Number(c['@cy']));
  assert.ok(ys[0]! > ys[1]! && ys[1]! > ys[2]!, `y of 200 < 2,000 < 4,000 appends/s drawn upwards: ${ys}`);
  // 10-event appends at 64 clients (1,800/s) sit below 1-event appends at 64 clients (4,000/s).
  assert.ok(Number((series[1]!.circle as SvgNode[])[2]!['@cy']) > ys[2]!);
  const labels = (svg.text as SvgNode[]).map((t) => String(t['#text']));
  for (const c of ['1', '16', '64', 'concurrent clients', 'appends/s']) assert.ok(labels.includes(c), `axis label ${c}`);
  assert.ok((series[0]!.text as SvgNode[]).some((t) => String(t['#text']) === '4,000'), 'points are labelled with their value');
});

test('a | in a name stays inside its Markdown table cell', () => {
  const result = fixture();
  result.skein[0]!.system = 'Skein | piped';
  const rows = table(renderMarkdown(result, 'chart.svg'), 'System');
  assert.ok(rows.every((r) => r.length === 8), 'every row has the header\'s 8 cells');
  assert.equal(rows[2]![0], 'Skein \\| piped');
});

test('text with markup characters stays well-formed in the chart', () => {
  const sweep = fixture().sweep.map((f) => ({ ...f, system: 'a <b> & "c"' }));
  const doc = parseSvg(renderSvg(sweep, 'Skein <3 & co> "quoted"'));
  assert.equal((doc.svg as SvgNode).title, 'Skein <3 & co> "quoted"');
});

test('writeReport writes the JSON, Markdown and SVG of a run and latest.md; a quick run leaves latest.md alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  try {
    const written = writeReport(fixture(), dir).map((p) => p.slice(dir.length + 1));
    assert.deepEqual(written.sort(), ['2025-01-02-abc1234.json', '2025-01-02-abc1234.md', '2025-01-02-abc1234.svg', 'latest.md']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, '2025-01-02-abc1234.json'), 'utf8')), fixture());
    assert.equal(readFileSync(join(dir, 'latest.md'), 'utf8'), readFileSync(join(dir, '2025-01-02-abc1234.md'), 'utf8'));
    assert.match(readFileSync(join(dir, 'latest.md'), 'utf8'), /\(2025-01-02-abc1234\.svg\)/);
    parseSvg(readFileSync(join(dir, '2025-01-02-abc1234.svg'), 'utf8'));

    rmSync(join(dir, 'latest.md'));
    writeReport({ ...fixture(), quick: true }, dir);
    assert.ok(existsSync(join(dir, '2025-01-02-abc1234-quick.md')));
    assert.ok(!readdirSync(dir).includes('latest.md'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
