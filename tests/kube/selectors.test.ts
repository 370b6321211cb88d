import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { ApiError } from './status.ts';

const labels = { app: 'mirra', tier: 'node', 'example.com/zone': 'a' };

function matches(selector: string, l: Record<string, string> = labels): boolean {
  return matchesLabels(parseLabelSelector(selector), l);
}

test('label selector operators match like the real server', () => {
  assert.equal(matches(''), true);
  assert.equal(matches('app=mirra'), true);
  assert.equal(matches('app==mirra'), true);
  assert.equal(matches('app=other'), false);
  assert.equal(matches('app!=other'), true);
  assert.equal(matches('missing!=x'), true, '!= matches objects without the label');
  assert.equal(matches('app in (mirra, spegel)'), true);
  assert.equal(matches('app in (spegel)'), false);
  assert.equal(matches('app notin (spegel)'), true);
  assert.equal(matches('missing notin (x)'), true);
  assert.equal(matches('missing in (x)'), false);
  assert.equal(matches('app'), true);
  assert.equal(matches('missing'), false);
  assert.equal(matches('!missing'), true);
  assert.equal(matches('!app'), false);
  assert.equal(matches('app=mirra,tier in (node,edge),!missing,example.com/zone=a'), true);
  assert.equal(matches('app=mirra,tier=edge'), false);
  assert.equal(matches('n>3', { n: '4' }), true);
  assert.equal(matches('n<3', { n: '4' }), false);
});

test('bad label selectors are 400 BadRequest', () => {
  for (const bad of ['bad key=x', 'app=not valid!', 'a/b/c=x', ',', 'n>x']) {
    assert.throws(
      () => parseLabelSelector(bad),
      (err: unknown) => err instanceof ApiError && err.status.code === 400 && err.status.reason === 'BadRequest',
      bad,
    );
  }
});

test('field selectors: supported fields, =, ==, !=', () => {
  const pod = { metadata: { name: 'p1', namespace: 'default' }, spec: { nodeName: 'n1' } };
  assert.equal(matchesFields(parseFieldSelector('metadata.name=p1', 'Pod'), pod), true);
  assert.equal(matchesFields(parseFieldSelector('metadata.name==p2', 'Pod'), pod), false);
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName=n1,metadata.namespace=default', 'Pod'), pod), true);
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName!=n1', 'Pod'), pod), false);
  assert.equal(matchesFields(parseFieldSelector('spec.nodeName=', 'Pod'), { metadata: {} }), true);
  assert.throws(
    () => parseFieldSelector('spec.nodeName=n1', 'EndpointSlice'),
    (err: unknown) => err instanceof ApiError && err.status.code === 400 && err.message === 'field label not supported: spec.nodeName',
  );
});
