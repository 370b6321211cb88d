// The agent's own metrics core: the exact text of a scrape (HELP and label
// escapes, numbers, histogram buckets), labels checked at the call, reset()
// and the collect hooks. exposition.fuzz.test.ts writes random families.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseExposition, sumSamples } from '../../tests/support/exposition.ts';
import { Counter, Gauge } from './family.ts';
import { Histogram } from './histogram.ts';
import { CONTENT_TYPE, Registry } from './registry.ts';
import { formatValue } from './text-format.ts';

test('the text of a scrape: HELP and TYPE, escapes, labels in their declared order', async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'a_total', help: 'Back\\slash and\nnewline "quoted".', labelNames: ['z', 'a'] as const, registry });
  const gauge = new Gauge({ name: 'b', help: 'A gauge.', registry });
  counter.inc({ a: 'x', z: 'q"uote\\ \nline' }, 2);
  counter.inc({ z: 1, a: 'x' });
  gauge.set(-1.5);
  assert.equal(registry.contentType, CONTENT_TYPE);
  assert.equal(CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(
    await registry.metrics(),
    [
      '# HELP a_total Back\\\\slash and\\nnewline "quoted".',
      '# TYPE a_total counter',
      'a_total{z="q\\"uote\\\\ \\nline",a="x"} 2',
      'a_total{z="1",a="x"} 1',
      '# HELP b A gauge.',
      '# TYPE b gauge',
      'b -1.5',
      '',
    ].join('\n'),
  );
  assert.equal(await new Registry().metrics(), '', 'an empty registry writes nothing');
});

test('numbers as Prometheus reads them: +Inf, -Inf, NaN, -0, integers without an exponent', () => {
  assert.equal(formatValue(Infinity), '+Inf');
  assert.equal(formatValue(-Infinity), '-Inf');
  assert.equal(formatValue(NaN), 'NaN');
  assert.equal(formatValue(-0), '-0');
  assert.equal(formatValue(0), '0');
  assert.equal(formatValue(42), '42');
  assert.equal(formatValue(0.1), '0.1');
  assert.equal(formatValue(1e21), '1000000000000000000000');
  assert.equal(formatValue(-(2 ** 80)), '-1208925819614629174706176');
  assert.equal(formatValue(Number.MAX_VALUE), BigInt(Number.MAX_VALUE).toString());
  assert.equal(formatValue(1.5e-10), '1.5e-10', 'small fractions keep their exponent (Go reads it)');
  for (const value of [1e21, 2 ** 80, Number.MAX_VALUE, 1.5e-10, 123.456]) assert.equal(Number(formatValue(value)), value);
});

test('a histogram: cumulative buckets up to +Inf, its sum and count, per label set', async () => {
  const registry = new Registry();
  const histogram = new Histogram({ name: 'd_seconds', help: 'Durations.', labelNames: ['h'] as const, buckets: [0.1, 1, 5], registry });
  for (const value of [0.05, 0.1, 0.5, 3, 7, -Infinity]) histogram.observe({ h: 'x' }, value);
  histogram.observe({ h: 'y' }, Infinity);
  const text = await registry.metrics();
  assert.ok(text.includes('d_seconds_bucket{h="x",le="0.1"} 3\n'), text);
  const scrape = parseExposition(text);
  assert.equal(scrape.types.get('d_seconds'), 'histogram');
  const buckets = (h: string): [string | undefined, number][] =>
    scrape.samples.filter((s) => s.name === 'd_seconds_bucket' && s.labels['h'] === h).map((s) => [s.labels['le'], s.value]);
  assert.deepEqual(buckets('x'), [
    ['0.1', 3],
    ['1', 4],
    ['5', 5],
    ['+Inf', 6],
  ]);
  assert.deepEqual(buckets('y'), [
    ['0.1', 0],
    ['1', 0],
    ['5', 0],
    ['+Inf', 1],
  ]);
  assert.equal(sumSamples(scrape, 'd_seconds_count', { h: 'x' }), 6);
  assert.equal(sumSamples(scrape, 'd_seconds_sum', { h: 'x' }), -Infinity);
  assert.equal(sumSamples(scrape, 'd_seconds_sum', { h: 'y' }), Infinity);

  const plain = new Histogram({ name: 'e_seconds', help: 'No labels.', buckets: [1], registry });
  plain.observe(0.5);
  plain.observe(0.25);
  const again = parseExposition(await registry.metrics());
  assert.equal(sumSamples(again, 'e_seconds_sum'), 0.75);
  assert.equal(sumSamples(again, 'e_seconds_bucket', { le: '1' }), 2);
  assert.throws(() => plain.observe(NaN), /e_seconds: an observation is a number, not NaN/);
  for (const buckets of [[1, 1], [2, 1], [1, Infinity], [NaN]]) {
    assert.throws(() => new Histogram({ name: 'f', help: '', buckets, registry: new Registry() }), /f: bucket bounds must be finite and increasing/);
  }
});

test('a wrong, missing or mistyped label throws at the call, naming the metric and its labels', () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'req_total', help: 'Requests.', labelNames: ['handler', 'status'] as const, registry });
  const plain = new Gauge({ name: 'g', help: 'No labels.', registry });
  const histogram = new Histogram({ name: 'h', help: 'One label.', labelNames: ['x'] as const, buckets: [1], registry });
  // The casts stand for callers the types do not see (a label built at run time, JavaScript).
  const loose = counter as unknown as Counter<string>;
  assert.throws(() => loose.inc({ handler: 'blob', status: '200', method: 'GET' }), {
    message: 'req_total: unknown label "method" (its labels: handler, status)',
  });
  assert.throws(() => loose.inc({ handler: 'blob' }), { message: 'req_total: label status is missing (its labels: handler, status)' });
  assert.throws(() => loose.inc(), { message: 'req_total: label handler is missing (its labels: handler, status)' });
  assert.throws(() => loose.inc({ handler: 'blob', status: true } as unknown as Record<string, string>), /req_total: label status is a boolean/);
  assert.throws(() => (plain as unknown as Gauge<string>).set({ x: '1' }, 1), { message: 'g: unknown label "x" (it has no labels)' });
  assert.throws(() => (histogram as unknown as Histogram<string>).observe({}, 1), { message: 'h: label x is missing (its labels: x)' });
  assert.throws(() => counter.inc({ handler: 'blob', status: 200 }, -1), /req_total: a counter is increased by a finite number of at least 0, not -1/);
  assert.throws(() => counter.inc({ handler: 'blob', status: 200 }, NaN), /not NaN/);
  assert.throws(() => counter.inc({ handler: 'blob', status: 200 }, Infinity), /not Infinity/);
});

test('names are checked when a family is made, and a name is registered once', () => {
  const registry = new Registry();
  const make = (name: string, labelNames: readonly string[] = []): Gauge<string> => new Gauge({ name, help: 'x', labelNames, registry });
  assert.throws(() => make('9a'), /invalid metric name "9a"/);
  assert.throws(() => make('a-b'), /invalid metric name "a-b"/);
  assert.throws(() => make('a', ['__reserved']), /a: invalid label name "__reserved"/);
  assert.throws(() => make('a', ['x-y']), /a: invalid label name "x-y"/);
  assert.throws(() => make('a', ['x', 'x']), /a: label x named twice/);
  assert.throws(() => new Histogram({ name: 'h', help: 'x', labelNames: ['le'], buckets: [], registry }), /h: invalid label name "le"/);
  make('ns:a_total', ['_x', 'Y1']);
  assert.throws(() => make('ns:a_total'), /metric ns:a_total is registered twice/);
});

test('reset() empties a family; one without labels keeps its series at 0; gauges go both ways', async () => {
  const registry = new Registry();
  const labelled = new Gauge({ name: 'l', help: 'x', labelNames: ['k'] as const, registry });
  const plain = new Counter({ name: 'p_total', help: 'x', registry });
  const histogram = new Histogram({ name: 'h', help: 'x', buckets: [1], registry });
  labelled.set({ k: 'a' }, 5);
  labelled.inc({ k: 'a' }, -7);
  labelled.inc({ k: 'b' });
  plain.inc(3);
  histogram.observe(2);
  let scrape = parseExposition(await registry.metrics());
  assert.equal(sumSamples(scrape, 'l', { k: 'a' }), -2);
  assert.equal(sumSamples(scrape, 'l', { k: 'b' }), 1);
  assert.equal(sumSamples(scrape, 'p_total'), 3);
  for (const family of [labelled, plain, histogram]) family.reset();
  scrape = parseExposition(await registry.metrics());
  assert.deepEqual(
    scrape.samples.map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`),
    ['p_total{} 0', 'h_bucket{"le":"1"} 0', 'h_bucket{"le":"+Inf"} 0', 'h_sum{} 0', 'h_count{} 0'],
  );
  assert.deepEqual([...scrape.types.keys()], ['l', 'p_total', 'h'], 'a family without series is still declared');
});

test('collect hooks run at every scrape, with the family as this, all of them before any family is written', async () => {
  const registry = new Registry();
  let reading = 1;
  const seen: number[] = [];
  const early = new Gauge({
    name: 'early',
    help: 'x',
    registry,
    collect() {
      seen.push(reading);
    },
  });
  new Counter({
    name: 'later_total',
    help: 'x',
    labelNames: ['kind'] as const,
    registry,
    async collect() {
      await new Promise((resolve) => setImmediate(resolve));
      this.reset();
      this.inc({ kind: 'a' }, reading);
      early.set(reading * 10); // a sibling registered before it, set from the same reading
    },
  });
  let scrape = parseExposition(await registry.metrics());
  assert.equal(sumSamples(scrape, 'later_total', { kind: 'a' }), 1);
  assert.equal(sumSamples(scrape, 'early'), 10);
  reading = 4;
  scrape = parseExposition(await registry.metrics());
  assert.equal(sumSamples(scrape, 'later_total', { kind: 'a' }), 4, 'set again, not added');
  assert.equal(sumSamples(scrape, 'early'), 40);
  assert.deepEqual(seen, [1, 4]);
});

test('a collect hook that throws fails the scrape', async () => {
  const registry = new Registry();
  new Gauge({
    name: 'broken',
    help: 'x',
    registry,
    collect() {
      throw new Error('stats unavailable');
    },
  });
  await assert.rejects(registry.metrics(), /stats unavailable/);
});
