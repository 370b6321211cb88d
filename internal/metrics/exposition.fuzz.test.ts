// Fuzzing the agent's own metrics writer: random families (counters, gauges,
// histograms with random bounds), random label names, label values and HELP
// text (any UTF-16, backslashes, quotes, newlines, carriage returns), random
// values (NaN, infinities, -0, the largest doubles) and resets. What the
// strict reader of tests/support/exposition.ts reads back from the scrape
// must be exactly what a plain model of the calls says: every family's TYPE
// and HELP, every sample in order, every value to the bit.
// Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { parseExposition } from '../../tests/support/exposition.ts';
import { Counter, Gauge } from './family.ts';
import { Histogram } from './histogram.ts';
import { Registry } from './registry.ts';

type Kind = 'counter' | 'gauge' | 'histogram';
/** `write`: a counter's inc, a gauge's set, a histogram's observe; `add`: a gauge's inc (a counter's inc otherwise). */
interface Op {
  act: 'write' | 'add' | 'reset';
  tuple: number;
  value: number;
}
interface FamilySpec {
  kind: Kind;
  name: string;
  help: string;
  labelNames: string[];
  buckets: number[];
  /** Label values to pick from, one per label name each. */
  tuples: string[][];
  ops: Op[];
}
interface ExpectedSample {
  name: string;
  labels: Record<string, string | number>;
  value: number;
}

/** Strings that exercise the escapes, or any UTF-16 at all. */
const text = (maxLength: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', maxLength }),
    fc.array(fc.constantFrom('\\', '"', '\n', '\\n', '\r', '\u2028', ' ', 'a', '{', '}', '=', ','), { maxLength }).map((parts) => parts.join('')),
  );
const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,6}$/).filter((name) => !name.startsWith('__') && name !== 'le');
const bounds = fc
  .uniqueArray(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 5 })
  .map((values) => [...values].sort((a, b) => a - b).filter((value, index, sorted) => index === 0 || value !== sorted[index - 1]));

function valueArb(kind: Kind): fc.Arbitrary<number> {
  if (kind === 'counter') return fc.oneof(fc.nat(), fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }));
  if (kind === 'gauge') return fc.oneof(fc.integer(), fc.double());
  return fc.oneof(fc.integer({ min: -5, max: 5 }), fc.double({ noNaN: true }));
}

const familyArb = (index: number): fc.Arbitrary<FamilySpec> =>
  fc
    .record({
      kind: fc.constantFrom<Kind>('counter', 'gauge', 'histogram'),
      stem: fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,8}$/),
      help: text(40),
      labelNames: fc.uniqueArray(labelName, { maxLength: 3 }),
      buckets: bounds,
    })
    .chain(({ kind, stem, help, labelNames, buckets }) =>
      fc
        .record({
          tuples: fc.array(fc.array(text(8), { minLength: labelNames.length, maxLength: labelNames.length }), { minLength: 1, maxLength: 4 }),
          ops: fc.array(fc.record({ act: fc.constantFrom<Op['act']>('write', 'write', 'add', 'reset'), tuple: fc.nat(3), value: valueArb(kind) }), {
            maxLength: 20,
          }),
        })
        // The index keeps names apart, and a name ending in a digit never meets another's _bucket, _sum or _count.
        .map(({ tuples, ops }) => ({ kind, name: `${stem}_${index}`, help, labelNames, buckets, tuples, ops })),
    );

const familiesArb = fc.integer({ min: 1, max: 6 }).chain((count) => fc.tuple(...Array.from({ length: count }, (_, index) => familyArb(index))));

/** Makes the family on `registry` and applies its calls. */
function play(spec: FamilySpec, registry: Registry): void {
  const { name, help, labelNames } = spec;
  const family =
    spec.kind === 'counter'
      ? new Counter<string>({ name, help, labelNames, registry })
      : spec.kind === 'gauge'
        ? new Gauge<string>({ name, help, labelNames, registry })
        : new Histogram<string>({ name, help, labelNames, buckets: spec.buckets, registry });
  for (const op of spec.ops) {
    const values = spec.tuples[op.tuple % spec.tuples.length] ?? [];
    const labels = Object.fromEntries(labelNames.map((label, index) => [label, values[index] ?? '']));
    if (op.act === 'reset') family.reset();
    else if (family instanceof Histogram) family.observe(labels, op.value);
    else if (family instanceof Gauge && op.act === 'write') family.set(labels, op.value);
    else family.inc(labels, op.value);
  }
}

/** The samples `spec` must show, from a plain model of its calls: series in the order they were first used since the last reset. */
function model(spec: FamilySpec): ExpectedSample[] {
  const { name, labelNames } = spec;
  let series = new Map<string, { values: string[]; value: number; observed: number[] }>();
  const start = (): void => {
    series = new Map();
    if (labelNames.length === 0) series.set('[]', { values: [], value: 0, observed: [] });
  };
  start();
  for (const op of spec.ops) {
    if (op.act === 'reset') {
      start();
      continue;
    }
    const values = spec.tuples[op.tuple % spec.tuples.length] ?? [];
    const key = JSON.stringify(values);
    const entry = series.get(key) ?? { values, value: 0, observed: [] };
    series.set(key, entry);
    if (spec.kind === 'histogram') entry.observed.push(op.value);
    else entry.value = spec.kind === 'gauge' && op.act === 'write' ? op.value : entry.value + op.value;
  }
  return [...series.values()].flatMap(({ values, value, observed }) => {
    const labels = Object.fromEntries(labelNames.map((label, index) => [label, values[index] ?? '']));
    if (spec.kind !== 'histogram') return [{ name, labels, value }];
    const buckets = [...spec.buckets, Infinity].map((le) => ({
      name: `${name}_bucket`,
      labels: { ...labels, le },
      value: observed.filter((v) => v <= le).length,
    }));
    const sum = observed.reduce((total, v) => total + v, 0);
    return [...buckets, { name: `${name}_sum`, labels, value: sum }, { name: `${name}_count`, labels, value: observed.length }];
  });
}

test('what the writer writes, the strict reader reads back exactly: families, HELP, labels, values', async (t) => {
  await checkProperty(
    t,
    fc.asyncProperty(familiesArb, async (families) => {
      const registry = new Registry();
      for (const spec of families) play(spec, registry);
      const scrape = parseExposition(await registry.metrics());
      assert.deepEqual(
        [...scrape.types],
        families.map((f) => [f.name, f.kind]),
      );
      assert.deepEqual(
        [...scrape.help],
        families.map((f) => [f.name, f.help]),
      );
      // `le` is compared as the number it stands for (the reader's +Inf is Infinity).
      const read = scrape.samples.map(({ name, labels, value }) => {
        const le = labels['le'];
        return { name, labels: le === undefined ? { ...labels } : { ...labels, le: le === '+Inf' ? Infinity : Number(le) }, value };
      });
      assert.deepStrictEqual(read, families.flatMap(model));
    }),
    300,
  );
});
