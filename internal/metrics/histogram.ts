// A histogram family of the agent's own metrics (family.ts has the rest):
// observations counted per bucket, written as Prometheus wants them, the
// `_bucket{le="..."}` counts cumulative up to `le="+Inf"` (every
// observation), then `_sum` and `_count`. The upper bounds are given finite
// and increasing; +Inf is always added.
import { Family, labelsAndValue, type FamilyConfig, type LabelPairs, type LabelValues, type SeriesBase } from './family.ts';
import { formatValue, sampleLine } from './text-format.ts';

export interface HistogramConfig<L extends string> extends FamilyConfig<L, Histogram<L>> {
  /** Upper bounds of the buckets, finite and increasing (+Inf is added). */
  buckets: readonly number[];
}

interface HistogramSeries extends SeriesBase {
  /** Observations per bucket (not cumulative), the last one above every bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Family<L, HistogramSeries> {
  protected readonly type = 'histogram';
  readonly #bounds: readonly number[];
  /** `le` of each bucket as written, +Inf last. */
  readonly #le: readonly string[];

  constructor(config: HistogramConfig<L>) {
    super(config, ['le']);
    const bounds = config.buckets;
    bounds.forEach((bound, index) => {
      const previous = bounds[index - 1];
      if (!Number.isFinite(bound) || (previous !== undefined && !(bound > previous))) {
        throw new Error(`${this.name}: bucket bounds must be finite and increasing (+Inf is added), got ${bounds.join(', ')}`);
      }
    });
    this.#bounds = [...bounds];
    this.#le = [...bounds.map(formatValue), '+Inf'];
    this.start(config.registry, config.collect);
  }

  /** Counts `value` (not NaN) in its bucket, its sum and its count. */
  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
  observe(first: LabelValues<L> | number, second?: number): void {
    const [labels, value] = labelsAndValue(first, second);
    if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`${this.name}: an observation is a number, not ${String(value)}`);
    const series = this.seriesOf(labels);
    let bucket = this.#bounds.findIndex((bound) => value <= bound);
    if (bucket < 0) bucket = this.#bounds.length;
    series.counts[bucket] = (series.counts[bucket] ?? 0) + 1;
    series.sum += value;
    series.count++;
  }

  protected newSeries(labels: LabelPairs): HistogramSeries {
    return { labels, counts: this.#le.map(() => 0), sum: 0, count: 0 };
  }

  protected writeSeries(lines: string[], series: HistogramSeries): void {
    const { labels } = series;
    let cumulative = 0;
    this.#le.forEach((le, index) => {
      cumulative += series.counts[index] ?? 0;
      lines.push(sampleLine(`${this.name}_bucket`, [...labels, ['le', le]], cumulative));
    });
    lines.push(sampleLine(`${this.name}_sum`, labels, series.sum), sampleLine(`${this.name}_count`, labels, series.count));
  }
}
