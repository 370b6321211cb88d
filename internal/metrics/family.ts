// A metric family of the agent's own metrics (registry.ts says why they are
// its own): a name, a HELP text, label names, and one series per set of
// label values, kept in a Map keyed by those values. Counter and Gauge are
// here; Histogram is in histogram.ts.
//
// Labels are checked at every call, so a wrong or missing label throws at the
// line that gave it, naming the metric and its labels (the label names are
// typed as well: `Counter<'handler' | 'source'>`). A family without labels
// always has its one series, at 0 after reset(), as Prometheus clients do.
// The collect hook runs at every scrape with `this` the family, usually as
// `collect() { this.reset(); ...this.inc(...) }` from another component's stats.
import type { Registry } from './registry.ts';
import { escapeHelp, sampleLine } from './text-format.ts';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The value of every label of a family, by name. */
export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;
/** A series' labels as written: (name, value) in the family's label order. */
export type LabelPairs = readonly (readonly [string, string])[];

export interface FamilyConfig<L extends string, F> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registry: Registry;
  /** Run at every scrape, before any family is written. */
  collect?: (this: F) => void | Promise<void>;
}

/** What a family keeps per series: its labels and its own state. */
export interface SeriesBase {
  readonly labels: LabelPairs;
}

function checkNames(name: string, labelNames: readonly string[], reserved: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
  for (const [index, label] of labelNames.entries()) {
    if (!LABEL_NAME.test(label) || label.startsWith('__') || reserved.includes(label)) {
      throw new Error(`${name}: invalid label name ${JSON.stringify(label)}`);
    }
    if (labelNames.indexOf(label) !== index) throw new Error(`${name}: label ${label} named twice`);
  }
}

export abstract class Family<L extends string, S extends SeriesBase> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected abstract readonly type: 'counter' | 'gauge' | 'histogram';
  readonly #series = new Map<string, S>();
  #collect: ((this: this) => void | Promise<void>) | undefined;

  /** `reserved`: label names the family writes itself (a histogram's `le`). */
  protected constructor(config: Pick<FamilyConfig<L, never>, 'name' | 'help' | 'labelNames'>, reserved: readonly string[] = []) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = [...(config.labelNames ?? [])];
    checkNames(this.name, this.labelNames, reserved);
  }

  /** A new series of the family, at its zero. */
  protected abstract newSeries(labels: LabelPairs): S;
  protected abstract writeSeries(lines: string[], series: S): void;

  /** The end of a subclass's constructor: the family is complete, it gets its series and goes on the registry. */
  protected start(registry: Registry, collect: ((this: this) => void | Promise<void>) | undefined): void {
    this.#collect = collect;
    this.reset();
    registry.register(this);
  }

  collect(): void | Promise<void> {
    return this.#collect?.call(this);
  }

  /** Drops every series (a family without labels keeps its one, at 0). */
  reset(): void {
    this.#series.clear();
    if (this.labelNames.length === 0) this.#series.set('', this.newSeries([]));
  }

  write(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
    for (const series of this.#series.values()) this.writeSeries(lines, series);
  }

  /** The series of `labels`, made on first use; throws when a label is unknown, missing or not a string or number. */
  protected seriesOf(labels: LabelValues<L> | undefined): S {
    const values = this.#labelValues(labels);
    const key = values.length === 0 ? '' : JSON.stringify(values);
    let series = this.#series.get(key);
    if (series === undefined) {
      series = this.newSeries(values.map((value, index) => [this.labelNames[index] ?? '', value] as const));
      this.#series.set(key, series);
    }
    return series;
  }

  #labelValues(labels: LabelValues<L> | undefined): string[] {
    const names = this.labelNames;
    const which = (): string => (names.length === 0 ? 'it has no labels' : `its labels: ${names.join(', ')}`);
    if (labels !== undefined) {
      const unknown = Object.keys(labels).find((label) => !(names as readonly string[]).includes(label));
      if (unknown !== undefined) throw new Error(`${this.name}: unknown label ${JSON.stringify(unknown)} (${which()})`);
    }
    return names.map((name) => {
      const value: unknown = labels?.[name];
      if (value === undefined) throw new Error(`${this.name}: label ${name} is missing (${which()})`);
      if (typeof value !== 'string' && typeof value !== 'number') throw new Error(`${this.name}: label ${name} is a ${typeof value}, not a string or number`);
      return String(value);
    });
  }
}

/** The two ways to call a family's methods: `(value)` without labels, `(labels, value)` with. */
export function labelsAndValue<L extends string>(
  first: LabelValues<L> | number | undefined,
  second: number | undefined,
): [LabelValues<L> | undefined, number | undefined] {
  return typeof first === 'object' ? [first, second] : [undefined, first];
}

interface ScalarSeries extends SeriesBase {
  value: number;
}

function scalarSeries(labels: LabelPairs): ScalarSeries {
  return { labels, value: 0 };
}

export class Counter<L extends string = never> extends Family<L, ScalarSeries> {
  protected readonly type = 'counter';

  constructor(config: FamilyConfig<L, Counter<L>>) {
    super(config);
    this.start(config.registry, config.collect);
  }

  /** Adds `value` (default 1): finite and not negative. */
  inc(value?: number): void;
  inc(labels: LabelValues<L>, value?: number): void;
  inc(first?: LabelValues<L> | number, second?: number): void {
    const [labels, value = 1] = labelsAndValue(first, second);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new Error(`${this.name}: a counter is increased by a finite number of at least 0, not ${String(value)}`);
    }
    this.seriesOf(labels).value += value;
  }

  protected newSeries(labels: LabelPairs): ScalarSeries {
    return scalarSeries(labels);
  }

  protected writeSeries(lines: string[], series: ScalarSeries): void {
    lines.push(sampleLine(this.name, series.labels, series.value));
  }
}

export class Gauge<L extends string = never> extends Family<L, ScalarSeries> {
  protected readonly type = 'gauge';

  constructor(config: FamilyConfig<L, Gauge<L>>) {
    super(config);
    this.start(config.registry, config.collect);
  }

  set(value: number): void;
  set(labels: LabelValues<L>, value: number): void;
  set(first: LabelValues<L> | number, second?: number): void {
    const [labels, value] = labelsAndValue(first, second);
    this.seriesOf(labels).value = this.#checked(value);
  }

  /** Adds `value` (default 1; negative to go down). */
  inc(value?: number): void;
  inc(labels: LabelValues<L>, value?: number): void;
  inc(first?: LabelValues<L> | number, second?: number): void {
    const [labels, value = 1] = labelsAndValue(first, second);
    this.seriesOf(labels).value += this.#checked(value);
  }

  #checked(value: number | undefined): number {
    if (typeof value !== 'number') throw new Error(`${this.name}: a gauge's value is a number, not ${String(value)}`);
    return value;
  }

  protected newSeries(labels: LabelPairs): ScalarSeries {
    return scalarSeries(labels);
  }

  protected writeSeries(lines: string[], series: ScalarSeries): void {
    lines.push(sampleLine(this.name, series.labels, series.value));
  }
}
