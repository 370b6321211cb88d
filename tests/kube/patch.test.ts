import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyPatch, jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { ApiError } from './status.ts';

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err.status.code;
    throw err;
  }
  return 0;
}

test('merge patch follows the RFC 7386 examples', () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) assert.deepEqual(mergePatch(target, patch), want, JSON.stringify([target, patch]));
  const target = { metadata: { annotations: { a: '1' } } };
  mergePatch(target, { metadata: { annotations: { a: null } } });
  assert.deepEqual(target, { metadata: { annotations: { a: '1' } } }, 'the target is not modified');
});

test('strategic merge patch merges maps, replaces lists and drops directives', () => {
  const pod = { metadata: { annotations: { a: '1', b: '2' }, labels: { x: 'y' } }, spec: { containers: [{ name: 'c' }] } };
  const patch = { $setElementOrder: {}, metadata: { annotations: { a: null, c: '3' } }, spec: { containers: [{ name: 'd' }] } };
  assert.deepEqual(strategicMergePatch(pod, patch), {
    metadata: { annotations: { b: '2', c: '3' }, labels: { x: 'y' } },
    spec: { containers: [{ name: 'd' }] },
  });
});

test('json patch follows RFC 6902: add, remove, replace, move, copy, test', () => {
  const doc = { metadata: { annotations: { 'a/b': '1' } }, list: [1, 2, 3] };
  const out = jsonPatch(doc, [
    { op: 'add', path: '/metadata/annotations/c~1d', value: '2' },
    { op: 'replace', path: '/metadata/annotations/a~1b', value: 'x' },
    { op: 'add', path: '/list/1', value: 9 },
    { op: 'add', path: '/list/-', value: 4 },
    { op: 'remove', path: '/list/0' },
    { op: 'copy', from: '/list/0', path: '/copied' },
    { op: 'move', from: '/copied', path: '/moved' },
    { op: 'test', path: '/moved', value: 9 },
    { op: 'test', path: '/metadata', value: { annotations: { 'c/d': '2', 'a/b': 'x' } } },
  ]);
  assert.deepEqual(out, { metadata: { annotations: { 'a/b': 'x', 'c/d': '2' } }, list: [9, 2, 3, 4], moved: 9 });
  assert.deepEqual(doc.list, [1, 2, 3], 'the input is not modified');
  assert.equal(
    code(() => jsonPatch(doc, [{ op: 'test', path: '/list/0', value: 2 }])),
    422,
  );
  assert.equal(
    code(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }])),
    422,
  );
  assert.equal(
    code(() => jsonPatch(doc, [{ op: 'replace', path: '/metadata/nope', value: 1 }])),
    422,
  );
  assert.equal(
    code(() => jsonPatch(doc, [{ op: 'add', path: '/list/7', value: 1 }])),
    422,
  );
  assert.equal(
    code(() => jsonPatch(doc, [{ op: 'jump', path: '/list' }])),
    400,
  );
  assert.equal(
    code(() => jsonPatch(doc, { op: 'add' })),
    400,
  );
});

test('applyPatch picks the patch type by Content-Type; others are 415', () => {
  const pod = { metadata: { labels: { a: '1' } } };
  assert.deepEqual(applyPatch('application/merge-patch+json', pod, '{"metadata":{"labels":{"b":"2"}}}'), { metadata: { labels: { a: '1', b: '2' } } });
  assert.deepEqual(applyPatch('application/strategic-merge-patch+json; charset=utf-8', pod, '{"metadata":{"labels":{"a":null}}}'), {
    metadata: { labels: {} },
  });
  assert.deepEqual(applyPatch('application/json-patch+json', pod, '[{"op":"remove","path":"/metadata/labels/a"}]'), { metadata: { labels: {} } });
  assert.equal(
    code(() => applyPatch('application/json', pod, '{}')),
    415,
  );
  assert.equal(
    code(() => applyPatch('application/apply-patch+yaml', pod, '{}')),
    415,
  );
  assert.equal(
    code(() => applyPatch('application/merge-patch+json', pod, '{oops')),
    400,
  );
  assert.equal(
    code(() => applyPatch('application/merge-patch+json', pod, '[1]')),
    400,
  );
});
