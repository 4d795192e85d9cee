// What the deploy specs share: the repository's deploy files, parsed, and the PromQL they hold.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const repoPath = (relative: string) => join(ROOT, relative);
export const readText = (relative: string) => readFileSync(repoPath(relative), 'utf8');

/** One YAML document, `<<` merge keys resolved (Compose uses them). */
export function readYaml<T = any>(relative: string): T {
  return parse(readText(relative), { merge: true }) as T;
}

/** Every document of a multi-document YAML file; a syntax error in any one throws. */
export function readYamlDocuments(relative: string): any[] {
  return parseAllDocuments(readText(relative)).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${relative}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS();
  });
}

/** `KEY=value` lines of an env file (comments and blank lines skipped). */
export function readEnvFile(relative: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of readText(relative).split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new Error(`${relative}: not KEY=value: ${JSON.stringify(line)}`);
    entries.set(trimmed.slice(0, eq), trimmed.slice(eq + 1));
  }
  return entries;
}

/** The `SKEIN_*` names a config reader reads: every quoted `SKEIN_…` literal in its source. */
export function settingsReadBy(...relativeFiles: string[]): Set<string> {
  const names = new Set<string>();
  for (const file of relativeFiles) for (const m of readText(file).matchAll(/['"`](SKEIN_[A-Z0-9_]+)['"`]/g)) names.add(m[1]!);
  return names;
}

export const SHARD_SETTINGS = () => settingsReadBy('libs/shard/src/config.ts', 'libs/http/src/settings.ts');
export const ROUTER_SETTINGS = () => settingsReadBy('libs/router/src/config.ts', 'libs/http/src/settings.ts');

export interface DashboardQuery {
  panel: string;
  expr: string;
}

/** Every PromQL expression of the Grafana dashboard, by panel title. */
export function dashboardQueries(): DashboardQuery[] {
  const dashboard = JSON.parse(readText('deploy/grafana/skein.json')) as { panels: { title: string; targets?: { expr?: string }[] }[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));
}

/** Grafana's variables as a query would be sent for "All shards" with `rateInterval`. */
export function withGrafanaVariables(expr: string, rateInterval: string): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$shard', '.*');
}

export interface AlertRule {
  alert: string;
  expr: string;
}

/** Every alert rule of deploy/prometheus/alerts.yml. */
export function alertRules(): AlertRule[] {
  const file = readYaml<{ groups: { rules: { alert?: string; expr: string }[] }[] }>('deploy/prometheus/alerts.yml');
  return file.groups.flatMap((g) => g.rules.filter((r) => r.alert !== undefined).map((r) => ({ alert: r.alert!, expr: String(r.expr) })));
}

/**
 * Splits `expr` at its top-level binary operators: the text between them, and each operator.
 * Brackets, braces, parentheses and quoted strings are skipped, so `{code=~"4.."}` or
 * `by (le)` never split.
 */
function splitTopLevel(expr: string, operators: RegExp): { parts: string[]; ops: string[] } {
  const parts: string[] = [];
  const ops: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0) {
      const m = operators.exec(expr.slice(i));
      if (m && m.index === 0) {
        parts.push(expr.slice(start, i).trim());
        ops.push(m[0].trim());
        i += m[0].length - 1;
        start = i + 1;
      }
    }
  }
  parts.push(expr.slice(start).trim());
  return { parts, ops };
}

/**
 * What an alert measures, without its thresholds: each operand of a top-level `and`/`or`/
 * `unless`, cut before its top-level comparison. `a > 0 and changes(b[2m]) == 0` gives
 * `a` and `changes(b[2m])`. These return data on a healthy cluster; the whole rule may not.
 */
export function measuredSides(expr: string): string[] {
  return splitTopLevel(expr, /^\s+(and|or|unless)\s+/).parts.map((operand) => splitTopLevel(operand, /^(==|!=|>=|<=|>|<)/).parts[0]!);
}
