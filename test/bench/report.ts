// The benchmark report: what `npm run bench` measured, as JSON (for machines), a Markdown
// table (for people and the README) and an SVG chart of appends/s by client concurrency.
// Pure functions of a BenchResult, so a spec checks them on a fixed input.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One server process over a measured window. */
export interface ProcessFigure {
  label: string;
  pid: number;
  cpuSeconds: number;
  /** Its CPU per acknowledged append, µs. */
  cpuPerAppendUs: number;
  /** Its CPU as a share of one core over the window (1 = a whole core). */
  coreShare: number;
  rssBytes: number;
}

/** An append workload measured against one system. */
export interface AppendFigure {
  system: string;
  clients: number;
  streams: number;
  eventsPerAppend: number;
  appendsPerSecond: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU per acknowledged append, µs, summed over `processes`. */
  cpuPerAppendUs: number;
  seconds: number;
  /** Answers in the window by status (`201`, `503`, … or `ok`/`error` for PostgreSQL). */
  statuses: Record<string, number>;
  processes: ProcessFigure[];
}

/** Everything one `npm run bench` measured. */
export interface BenchResult {
  schema: 1;
  /** ISO time the run started. */
  date: string;
  commit: string;
  /** Whether the working tree had uncommitted changes. */
  dirty: boolean;
  command: string;
  quick: boolean;
  machine: { cpuModel: string; cores: number; memoryBytes: number; node: string; platform: string; loadAverage: [number, number, number] };
  settings: { clients: number; streams: number; eventDataBytes: number; warmupMs: number; durationMs: number };
  calibration: { description: string; requestsPerSecond: number };
  postgres: { skipped: string } | { version: string; synchronousCommit: string; fsync: string; walSyncMethod: string; ddl: string; figure: AppendFigure };
  /** Issue 9's workload against each Skein topology, `npm start`'s first. */
  skein: AppendFigure[];
  /** `engineEventsPerSecond`: the same read from the embedded engine in the bench's process (issue 9's yardstick; absent in older results). */
  read: { system: string; events: number; pageSize: number; eventsPerSecond: number; engineEventsPerSecond?: number };
  subscriptionLag: { system: string; events: number; p50Ms: number; p99Ms: number; appendsPerSecondMeanwhile: number };
  /** Appends/s against client concurrency (1, 16, 64) for 1- and 10-event appends. */
  sweep: AppendFigure[];
  notes: string[];
}

/** Skein against PostgreSQL, the figures issue 9 is judged by. */
export interface Ratios {
  system: string;
  /** Skein's server CPU per append ÷ PostgreSQL's per insert (null without PostgreSQL). */
  cpu: number | null;
  /** Skein's appends/s ÷ PostgreSQL's inserts/s (null without PostgreSQL). */
  throughput: number | null;
  p99OverP50: number;
}

export function ratiosOf(result: BenchResult): Ratios[] {
  const pg = 'figure' in result.postgres ? result.postgres.figure : null;
  return result.skein.map((f) => ({
    system: f.system,
    cpu: pg ? f.cpuPerAppendUs / pg.cpuPerAppendUs : null,
    throughput: pg ? f.appendsPerSecond / pg.appendsPerSecond : null,
    p99OverP50: f.p99Ms / f.p50Ms,
  }));
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => n.toFixed(n < 10 ? 2 : 1);
const ratio = (n: number | null) => (n === null ? '–' : `${n.toFixed(2)}×`);
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
/** Text for a Markdown table cell: a `|` would end the cell. */
const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The one-line summary per topology that issue 9 asks for. */
export function summaryLine(r: Ratios): string {
  return `${r.system}: CPU/append ÷ PostgreSQL CPU/insert ${ratio(r.cpu)} (required ≤ 1.5×), throughput ÷ PostgreSQL ${ratio(r.throughput)} (required ≥ 0.6×), p99/p50 ${r.p99OverP50.toFixed(1)} (required < 4)`;
}

/** Processes grouped by label: `backend ×32` for PostgreSQL, one row each for Skein. */
function processRows(f: AppendFigure): string[] {
  const groups = new Map<string, ProcessFigure[]>();
  for (const p of f.processes) groups.set(p.label, [...(groups.get(p.label) ?? []), p]);
  return [...groups].map(([label, ps]) => {
    const sum = (get: (p: ProcessFigure) => number) => ps.reduce((s, p) => s + get(p), 0);
    const name = ps.length > 1 ? `${label} ×${ps.length}` : label;
    return `| ${cell(f.system)} | ${cell(name)} | ${(100 * sum((p) => p.coreShare)).toFixed(0)}% | ${int(sum((p) => p.cpuPerAppendUs))} | ${mib(sum((p) => p.rssBytes))} |`;
  });
}

/** The report as Markdown; `svgFile` is the chart's file name beside it. */
export function renderMarkdown(result: BenchResult, svgFile: string): string {
  const m = result.machine;
  const s = result.settings;
  const pg = 'figure' in result.postgres ? result.postgres : null;
  const skipped = 'skipped' in result.postgres ? result.postgres.skipped : '';
  const lines = [
    `# Benchmark ${result.date.slice(0, 10)} · ${result.commit}${result.dirty ? ' (uncommitted changes)' : ''}${result.quick ? ' · QUICK (smoke test, not comparable)' : ''}`,
    '',
    `Machine: ${m.cores} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, node ${m.node}, ${m.platform}; load average at start ${m.loadAverage.map((l) => l.toFixed(2)).join(', ')}.`,
    `Command: \`${result.command}\`.`,
    `Calibration: ${result.calibration.description}: ${int(result.calibration.requestsPerSecond)} req/s.`,
    '',
    `Workload: ${s.clients} clients, ${int(s.streams)} streams, single-event appends with exact expectedVersion, ${s.eventDataBytes}-byte event data, keep-alive HTTP/1.1 (lean generator); ${s.warmupMs / 1000} s warm-up, then ${s.durationMs / 1000} s measured. Server CPU is utime + stime from /proc of every server process (the load generator excluded).`,
    '',
    '| System | appends/s | p50 ms | p99 ms | server CPU µs/append | CPU ÷ PostgreSQL | throughput ÷ PostgreSQL | p99/p50 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  if (pg) {
    const f = pg.figure;
    lines.push(`| ${cell(f.system)} | ${int(f.appendsPerSecond)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${int(f.cpuPerAppendUs)} | 1.00× | 1.00× | ${(f.p99Ms / f.p50Ms).toFixed(1)} |`);
  }
  const ratios = ratiosOf(result);
  result.skein.forEach((f, i) => {
    const r = ratios[i]!;
    lines.push(`| ${cell(f.system)} | ${int(f.appendsPerSecond)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${int(f.cpuPerAppendUs)} | ${ratio(r.cpu)} | ${ratio(r.throughput)} | ${r.p99OverP50.toFixed(1)} |`);
  });
  lines.push('');
  if (pg) lines.push(`PostgreSQL ${pg.version}: synchronous_commit=${pg.synchronousCommit}, fsync=${pg.fsync}, wal_sync_method=${pg.walSyncMethod}; one autocommit INSERT per event into \`${pg.ddl}\`.`);
  else lines.push(`PostgreSQL: skipped (${skipped}).`);
  lines.push('', 'Issue 9 asks, for the `npm start` topology: CPU ÷ PostgreSQL ≤ 1.5×, throughput ÷ PostgreSQL ≥ 0.6×, p99/p50 < 4.', '');
  lines.push('## Server processes', '', '| System | process | CPU (share of one core) | CPU µs/append | RSS MiB |', '|---|---|---:|---:|---:|');
  for (const f of [...(pg ? [pg.figure] : []), ...result.skein]) lines.push(...processRows(f));
  lines.push('', '## Reads and subscriptions', '', '| Measure | System | figure |', '|---|---|---:|');
  lines.push(`| stream read, pages of ${result.read.pageSize} (SDK), ${int(result.read.events)} events | ${cell(result.read.system)} | ${int(result.read.eventsPerSecond)} events/s |`);
  const engineRate = result.read.engineEventsPerSecond;
  if (engineRate !== undefined) {
    lines.push(`| the same read from the engine alone, in-process (no HTTP, no JSON) | engine | ${int(engineRate)} events/s |`);
    lines.push(`| SDK read ÷ engine alone (issue 9: 36k-67k through the SDK when the engine alone read 350k-665k, about 0.10; its bar, 3× that read) | npm start | ${(result.read.eventsPerSecond / engineRate).toFixed(2)} |`);
  }
  const lag = result.subscriptionLag;
  lines.push(`| subscription lag, acknowledged → delivered (tenant log, SDK), ${int(lag.events)} events, under ${int(lag.appendsPerSecondMeanwhile)} appends/s | ${cell(lag.system)} | p50 ${ms(lag.p50Ms)} ms, p99 ${ms(lag.p99Ms)} ms |`);
  lines.push('', '## Appends/s by client concurrency', '', '| System | clients | events/append | appends/s | events/s | p50 ms | p99 ms | server CPU µs/append |', '|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const f of result.sweep) lines.push(`| ${cell(f.system)} | ${f.clients} | ${f.eventsPerAppend} | ${int(f.appendsPerSecond)} | ${int(f.eventsPerSecond)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${int(f.cpuPerAppendUs)} |`);
  lines.push('', `![appends/s by client concurrency](${svgFile})`);
  if (result.notes.length > 0) lines.push('', '## Notes', '', ...result.notes.map((n) => `- ${n}`));
  return lines.join('\n') + '\n';
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A rounded-up axis maximum: 1, 2 or 5 × a power of ten. */
function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((k) => k * power).find((v) => v >= value)!;
}

/**
 * A line chart of appends/s (y) against client concurrency (x, one evenly spaced tick per
 * concurrency measured), one line per events-per-append, each point labelled with its value.
 */
export function renderSvg(sweep: readonly AppendFigure[], title: string): string {
  const width = 640;
  const height = 400;
  const left = 80;
  const right = 170;
  const top = 50;
  const bottom = 60;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const concurrencies = [...new Set(sweep.map((f) => f.clients))].sort((a, b) => a - b);
  const sizes = [...new Set(sweep.map((f) => f.eventsPerAppend))].sort((a, b) => a - b);
  const yMax = niceCeiling(Math.max(0, ...sweep.map((f) => f.appendsPerSecond)));
  const x = (clients: number) => left + (concurrencies.length === 1 ? plotW / 2 : (concurrencies.indexOf(clients) * plotW) / (concurrencies.length - 1));
  const y = (value: number) => top + plotH - (value / yMax) * plotH;
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    out.push(`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${left + plotW}" y2="${y(v).toFixed(1)}" stroke="#dddddd"/>`);
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${int(v)}</text>`);
  }
  for (const c of concurrencies) out.push(`<text x="${x(c).toFixed(1)}" y="${top + plotH + 20}" text-anchor="middle">${c}</text>`);
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#000000"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#000000"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle">concurrent clients</text>`);
  out.push(`<text x="18" y="${top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${top + plotH / 2})">appends/s</text>`);
  sizes.forEach((size, i) => {
    const colour = colours[i % colours.length]!;
    const points = sweep.filter((f) => f.eventsPerAppend === size).sort((a, b) => a.clients - b.clients);
    const label = `${size} event${size === 1 ? '' : 's'} per append`;
    out.push(`<g class="series" data-events-per-append="${size}">`);
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.map((p) => `${x(p.clients).toFixed(1)},${y(p.appendsPerSecond).toFixed(1)}`).join(' ')}"/>`);
    for (const p of points) {
      out.push(`<circle cx="${x(p.clients).toFixed(1)}" cy="${y(p.appendsPerSecond).toFixed(1)}" r="4" fill="${colour}"><title>${escapeXml(`${label}, ${p.clients} clients: ${int(p.appendsPerSecond)} appends/s (${int(p.eventsPerSecond)} events/s)`)}</title></circle>`);
      out.push(`<text x="${x(p.clients).toFixed(1)}" y="${(y(p.appendsPerSecond) - 8).toFixed(1)}" text-anchor="middle" fill="${colour}">${int(p.appendsPerSecond)}</text>`);
    }
    out.push(`<rect x="${left + plotW + 16}" y="${top + 8 + i * 22}" width="14" height="4" fill="${colour}"/>`);
    out.push(`<text x="${left + plotW + 36}" y="${top + 14 + i * 22}">${escapeXml(label)}</text>`);
    out.push('</g>');
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** File names of one run: `<date>-<commit>` (with `-quick` for a smoke run). */
export function reportBaseName(result: BenchResult): string {
  return `${result.date.slice(0, 10)}-${result.commit}${result.quick ? '-quick' : ''}`;
}

/**
 * Writes `<base>.json`, `<base>.md` and `<base>.svg` into `dir`, and `latest.md` (the same
 * table) unless the run was quick; returns the paths written.
 */
export function writeReport(result: BenchResult, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const base = reportBaseName(result);
  const svgFile = `${base}.svg`;
  const markdown = renderMarkdown(result, svgFile);
  const files: Array<[string, string]> = [
    [`${base}.json`, JSON.stringify(result, null, 2) + '\n'],
    [`${base}.md`, markdown],
    [svgFile, renderSvg(result.sweep, `${result.sweep[0]?.system ?? 'Skein'}: appends/s by client concurrency`)],
  ];
  if (!result.quick) files.push(['latest.md', markdown]);
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}
