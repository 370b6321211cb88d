import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExpositionError, parseExposition, sumSamples } from './exposition.ts';

test('parses families, labels with escapes, special values', () => {
  const text = [
    '# HELP a_total Things.',
    '# TYPE a_total counter',
    'a_total{x="1",y="q\\"uote\\\\ \\n"} 2',
    'a_total{x="2"} 3 1700000000000',
    '# a plain comment',
    'b_seconds NaN',
    'c_bucket{le="+Inf"} 4',
    '',
  ].join('\n');
  const parsed = parseExposition(text);
  assert.equal(parsed.types.get('a_total'), 'counter');
  assert.equal(parsed.help.get('a_total'), 'Things.');
  assert.deepEqual(parsed.samples[0], { name: 'a_total', labels: { x: '1', y: 'q"uote\\ \n' }, value: 2 });
  assert.equal(sumSamples(parsed, 'a_total'), 5);
  assert.equal(sumSamples(parsed, 'a_total', { x: '2' }), 3);
  assert.ok(Number.isNaN(parsed.samples[2]?.value));
  assert.equal(sumSamples(parsed, 'c_bucket', { le: '+Inf' }), 4);
});

test('HELP text is unescaped: \\\\ and \\n only; a carriage return stays', () => {
  const parsed = parseExposition('# HELP a_total back\\\\slash, new\\nline, cr\r.\n');
  assert.equal(parsed.help.get('a_total'), 'back\\slash, new\nline, cr\r.');
  for (const bad of ['# HELP a x\\t', '# HELP a x\\"', '# HELP a x\\']) {
    assert.throws(() => parseExposition(bad), ExpositionError, bad);
  }
});

test('malformed input is an ExpositionError, never a guess', () => {
  for (const bad of [
    'a_total',
    'a_total{x="1"',
    'a_total{x=1} 2',
    'a_total{x="1",x="2"} 2',
    'a_total abc',
    '9a 1',
    'a{x="1"} 1 2 3',
    '# TYPE a wrong',
    'a{x="\\q"} 1',
  ]) {
    assert.throws(() => parseExposition(bad), ExpositionError, bad);
  }
});
