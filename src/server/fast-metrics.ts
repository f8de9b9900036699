// Two metric kinds for the request hot path, kept as plain numbers and handed to prom-client's
// registry (which formats them) only at scrape time. prom-client's own Histogram and labelled
// Counter hash the label set on every observation: 3-4 µs per narinfo request on the build
// machine, against ~0.1 µs here (bench/metrics-overhead.ts). prom-client reads any object with
// name, help, type and get() (its Registry.registerMetric).
import type { Metric, Registry } from "prom-client";

interface Value {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}

interface Collected {
  name: string;
  help: string;
  type: "counter" | "histogram";
  values: Value[];
  aggregator: "sum";
}

abstract class FastMetric {
  readonly name: string;
  readonly help: string;
  readonly aggregator = "sum";
  constructor(registry: Registry, name: string, help: string) {
    this.name = name;
    this.help = help;
    registry.registerMetric(this as unknown as Metric);
  }
  abstract get(): Promise<Collected>;
}

/** A counter; labelled series are keyed by their label values, in a fixed order. */
export class FastCounter extends FastMetric {
  readonly type = "counter";
  private readonly series = new Map<string, Value>();

  inc(value = 1, labels?: Record<string, string>): void {
    const key = labels ? Object.values(labels).join("\u0000") : "";
    const s = this.series.get(key);
    if (s) s.value += value;
    else this.series.set(key, { labels: labels ? { ...labels } : {}, value });
  }

  /** set the total kept elsewhere (a module's own count), read at scrape time */
  set(value: number): void {
    this.series.set("", { labels: {}, value });
  }

  async get(): Promise<Collected> {
    const values = [...this.series.values()].map((v) => ({ labels: { ...v.labels }, value: v.value }));
    // an unlabelled counter shows 0 before its first count
    if (values.length === 0 && !this.labelled) values.push({ labels: {}, value: 0 });
    return { name: this.name, help: this.help, type: "counter", values, aggregator: "sum" };
  }

  private readonly labelled: boolean;
  constructor(registry: Registry, name: string, help: string, labelled = false) {
    super(registry, name, help);
    this.labelled = labelled;
  }
}

interface HistogramSeries {
  labels: Record<string, string>;
  /** per bucket (not cumulative), then one for +Inf */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram with fixed buckets; a series is found by the caller's own key. */
export class FastHistogram extends FastMetric {
  readonly type = "histogram";
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(registry: Registry, name: string, help: string, bounds: readonly number[]) {
    super(registry, name, help);
    this.bounds = bounds;
  }

  /** `key` identifies `labels` (the caller builds it cheaply); `labels` is read on a key's first use only */
  observe(key: string, labels: () => Record<string, string>, value: number): void {
    let s = this.series.get(key);
    if (!s) {
      s = { labels: labels(), counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** each series' labels, observation count and sum */
  summaries(): { labels: Record<string, string>; count: number; sum: number }[] {
    return [...this.series.values()].map((s) => ({ labels: { ...s.labels }, count: s.count, sum: s.sum }));
  }

  async get(): Promise<Collected> {
    const values: Value[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le: String(bound), ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: "+Inf", ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: "histogram", values, aggregator: "sum" };
  }
}
