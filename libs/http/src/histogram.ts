/**
 * A histogram for hot paths, scraped by a prom-client registry exactly as prom-client's
 * own `Histogram` is (same lines, same order). prom-client's `observe` builds a label
 * hash string, validates the labels and looks the string up on every call (and a bound
 * child, `histogram.labels(...)`, does the same): 0.5-1 µs per observation, 2.5% of the
 * main thread of `npm start` under 32 appending clients. Here a label set is found by
 * nested Map lookups on its values, and an observation is a bucket search and three adds.
 *
 * Only what Skein uses: `observe`, `reset`, and what a registry reads (`get`, name, help,
 * type, aggregator). No exemplars, no timers, no `remove`.
 */

/**
 * What a prom-client `Registry` offers to a metric (prom-client itself stays the services'
 * dependency). Its typings admit only prom-client's own four metric classes, while the
 * registry reads any object with a name, help, type, aggregator and `get()`: `never` is
 * the one parameter type both a Registry and this class fit, and registering is the one
 * place that says so.
 */
export interface MetricRegistry {
  registerMetric(metric: never): void;
}

export interface HistogramConfiguration<L extends string> {
  name: string;
  help: string;
  /** Upper bounds, increasing; `+Inf` is implied. */
  buckets: readonly number[];
  labelNames?: readonly L[];
  registers: readonly MetricRegistry[];
}

type LabelValues<L extends string> = Partial<Record<L, string | number>>;

interface Series {
  /** The label set, in `labelNames` order (prom-client prints it after `le`). */
  labels: Record<string, string | number>;
  /** Observations per bucket (not cumulative); the last is above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** The line values of one scrape, shaped as prom-client's histogram gives them. */
interface HistogramValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string | number>;
  value: number;
  metricName: string;
  /** Always none (prom-client's shape: null on bucket lines, undefined on sum and count). */
  exemplar: null | undefined;
}

export class FastHistogram<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: Float64Array;
  readonly #labelNames: readonly L[];
  /** Label value → … → series, one Map level per label name. */
  #index = new Map<unknown, unknown>();
  #series: Series[] = [];
  /** The series of a histogram without labels (scraped from the start, and again once observed after a reset, as prom-client does). */
  #unlabelled: Series | null = null;

  constructor(config: HistogramConfiguration<L>) {
    this.name = config.name;
    this.help = config.help;
    this.#labelNames = config.labelNames ?? [];
    for (let i = 1; i < config.buckets.length; i++) {
      if (!(config.buckets[i]! > config.buckets[i - 1]!)) throw new Error(`${config.name}: buckets must increase`);
    }
    this.#bounds = Float64Array.from(config.buckets);
    if (this.#labelNames.length === 0) this.#unlabelled = this.#create({});
    for (const registry of config.registers) registry.registerMetric(this as never);
  }

  /** Observes `value` (prom-client's signatures: `observe(value)` without labels, `observe(labels, value)`). */
  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
  observe(labelsOrValue: LabelValues<L> | number, maybeValue?: number): void {
    const value = typeof labelsOrValue === 'number' ? labelsOrValue : maybeValue!;
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: ${value} is not a finite number`);
    const series = typeof labelsOrValue === 'number' ? (this.#unlabelled ?? this.#find({})) : this.#find(labelsOrValue);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  #find(labels: LabelValues<L>): Series {
    const names = this.#labelNames;
    if (names.length === 0) return (this.#unlabelled ??= this.#create(labels));
    let level = this.#index;
    for (let i = 0; i < names.length - 1; i++) {
      const value = labels[names[i]!];
      let next = level.get(value) as Map<unknown, unknown> | undefined;
      if (!next) level.set(value, (next = new Map()));
      level = next;
    }
    const last = labels[names[names.length - 1]!];
    let series = level.get(last) as Series | undefined;
    if (!series) {
      series = this.#create(labels);
      level.set(last, series);
    }
    return series;
  }

  /** A new series; its labels are checked here, once (prom-client checks them on every observation). */
  #create(labels: LabelValues<L>): Series {
    const set: Record<string, string | number> = {};
    for (const key in labels) {
      if (!this.#labelNames.includes(key as L)) throw new Error(`${this.name}: label "${key}" is not among its labels`);
    }
    // prom-client keeps the label object of the first observation (undefined values dropped when printed).
    for (const name of this.#labelNames) {
      const value = labels[name];
      if (value !== undefined) set[name] = value;
    }
    const series: Series = { labels: set, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
    this.#series.push(series);
    return series;
  }

  /** Forgets every series (a registry's `resetMetrics`). */
  reset(): void {
    this.#index = new Map();
    this.#series = [];
    this.#unlabelled = null;
  }

  /** The scrape's lines, as prom-client's `Histogram.getForPromString` gives them. */
  getForPromString(): { name: string; help: string; type: 'histogram'; values: HistogramValue[]; aggregator: 'sum' } {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#series) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.#bounds[i]! }, sharedLabels: s.labels, value: acc, metricName: bucket, exemplar: null });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket, exemplar: null });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The metric as prom-client's `get()` gives it (each line's labels in one object). */
  get(): { name: string; help: string; type: 'histogram'; values: Array<Omit<HistogramValue, 'sharedLabels'>>; aggregator: 'sum' } {
    const data = this.getForPromString();
    return { ...data, values: data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })) };
  }
}
