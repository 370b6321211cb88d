import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStore, type StoreEvent } from './store.ts';
import { RESOURCES, type ResourceDef } from './resources.ts';
import { ApiError } from './status.ts';

function def(kind: string): ResourceDef {
  const found = RESOURCES.find((r) => r.kind === kind);
  assert.ok(found);
  return found;
}
const POD = def('Pod');
const LEASE = def('Lease');
const NAMESPACE = def('Namespace');

function apiCode(fn: () => unknown): { code: number; reason: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return { code: err.status.code, reason: err.status.reason };
    throw err;
  }
  return { code: 0, reason: '' };
}

test('one cluster-wide monotonic resourceVersion; objects get uid, creationTimestamp, generation', () => {
  const store = createStore(100);
  const start = store.currentResourceVersion();
  const pod = store.create(POD, 'default', { metadata: { name: 'p1' }, spec: { containers: [] } });
  const lease = store.create(LEASE, 'kube-system', { metadata: { name: 'l1' }, spec: {} });
  assert.equal(pod.metadata['resourceVersion'], String(start + 1));
  assert.equal(lease.metadata['resourceVersion'], String(start + 2));
  assert.equal(pod.kind, 'Pod');
  assert.equal(pod.apiVersion, 'v1');
  assert.equal(lease.apiVersion, 'coordination.k8s.io/v1');
  assert.match(String(pod.metadata['uid']), /^[0-9a-f-]{36}$/);
  assert.match(String(pod.metadata['creationTimestamp']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(pod.metadata['generation'], 1);
  assert.equal(apiCode(() => store.create(POD, 'default', { metadata: { name: 'p1' } })).reason, 'AlreadyExists');
});

test('update: 409 Conflict on a stale resourceVersion, no-op updates are not written, generation follows spec', () => {
  const store = createStore(100);
  const pod = store.create(POD, 'default', { metadata: { name: 'p1' }, spec: { nodeName: 'a' } });
  const rv = pod.metadata['resourceVersion'];
  const annotated = store.update(POD, 'default', 'p1', { input: { ...pod, metadata: { ...pod.metadata, annotations: { k: 'v' } } }, mode: 'main' });
  assert.notEqual(annotated.metadata['resourceVersion'], rv);
  assert.equal(annotated.metadata['generation'], 1, 'metadata changes keep the generation');
  assert.deepEqual(
    apiCode(() => store.update(POD, 'default', 'p1', { input: pod, mode: 'main' })),
    { code: 409, reason: 'Conflict' },
  );
  const same = store.update(POD, 'default', 'p1', { input: annotated, mode: 'main' });
  assert.equal(same.metadata['resourceVersion'], annotated.metadata['resourceVersion']);
  const moved = store.update(POD, 'default', 'p1', { input: { ...annotated, spec: { nodeName: 'b' } }, mode: 'main' });
  assert.equal(moved.metadata['generation'], 2);
  const unconditional = store.update(POD, 'default', 'p1', { input: { metadata: { name: 'p1', labels: { a: 'b' } }, spec: { nodeName: 'b' } }, mode: 'main' });
  assert.equal(unconditional.metadata['uid'], pod.metadata['uid'], 'uid and creationTimestamp are kept');
  assert.equal(apiCode(() => store.update(POD, 'default', 'nope', { input: pod, mode: 'main' })).code, 404);
});

test('status: the main resource keeps it, the status subresource changes only it', () => {
  const store = createStore(100);
  store.create(POD, 'default', { metadata: { name: 'p1' }, spec: {}, status: { phase: 'Running' } });
  const main = store.update(POD, 'default', 'p1', {
    input: { metadata: { name: 'p1', labels: { a: 'b' } }, spec: {}, status: { phase: 'Failed' } },
    mode: 'main',
  });
  assert.deepEqual(main['status'], { phase: 'Running' });
  const status = store.update(POD, 'default', 'p1', { input: { metadata: { name: 'p1' }, status: { phase: 'Succeeded' } }, mode: 'status' });
  assert.deepEqual(status['status'], { phase: 'Succeeded' });
  assert.deepEqual(status.metadata['labels'], { a: 'b' });
});

test('bounded history: events after N, or expired once N has left the window', () => {
  const store = createStore(5);
  const events: StoreEvent[] = [];
  store.subscribe((e) => events.push(e));
  const from = store.currentResourceVersion();
  store.create(POD, 'default', { metadata: { name: 'p1' } });
  for (let i = 0; i < 3; i++) store.update(POD, 'default', 'p1', { input: { metadata: { name: 'p1', labels: { i: String(i) } } }, mode: 'main' });
  const deleted = store.delete(POD, 'default', 'p1');
  assert.deepEqual(
    events.map((e) => e.type),
    ['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'DELETED'],
  );
  assert.equal(deleted.metadata['resourceVersion'], String(from + 5), 'the DELETED object carries a new resourceVersion');
  assert.deepEqual(
    events.map((e) => e.resourceVersion),
    [1, 2, 3, 4, 5].map((n) => from + n),
  );
  const since = store.eventsSince(from);
  assert.ok(since !== 'expired');
  assert.equal(since.length, 5);
  store.create(POD, 'default', { metadata: { name: 'p2' } });
  assert.equal(store.eventsSince(from), 'expired');
  assert.equal(store.oldestResourceVersion(), from + 1);
  const rest = store.eventsSince(from + 1);
  assert.ok(rest !== 'expired');
  assert.equal(rest.length, 5);
  store.clearHistory();
  assert.equal(store.eventsSince(from + 1), 'expired');
  assert.deepEqual(store.eventsSince(store.currentResourceVersion()), []);
});

test('namespaces exist implicitly; deleting one deletes what is in it', () => {
  const store = createStore(100);
  assert.deepEqual(
    store.list(NAMESPACE, '').map((n) => n.metadata['name']),
    ['default', 'kube-node-lease', 'kube-public', 'kube-system'],
  );
  store.create(POD, 'team-a', { metadata: { name: 'p1', namespace: 'team-a' } });
  assert.equal(store.get(NAMESPACE, '', 'team-a')?.metadata['name'], 'team-a');
  assert.deepEqual(
    store.list(POD, '').map((p) => p.metadata['name']),
    ['p1'],
  );
  store.delete(NAMESPACE, '', 'team-a');
  assert.deepEqual(store.list(POD, ''), []);
  assert.equal(apiCode(() => store.create(POD, 'x', { metadata: { name: 'p1', namespace: 'y' } })).code, 400);
  assert.equal(apiCode(() => store.create(POD, 'x', { kind: 'Service', metadata: { name: 'p1' } })).code, 400);
});

test('invalid metadata is 422 Invalid with causes; generateName works', () => {
  const store = createStore(100);
  try {
    store.create(POD, 'default', { metadata: { name: 'p1', annotations: { 'no good': 'v' } } });
    assert.fail('expected 422');
  } catch (err) {
    assert.ok(err instanceof ApiError);
    assert.equal(err.status.code, 422);
    assert.equal(err.status.reason, 'Invalid');
    assert.match(err.status.message, /^Pod "p1" is invalid: metadata\.annotations: Invalid value: "no good": /);
    assert.equal(err.status.details?.kind, 'Pod');
    assert.equal(err.status.details?.causes?.[0]?.field, 'metadata.annotations');
  }
  const generated = store.create(POD, 'default', { metadata: { generateName: 'mirra-' } });
  assert.match(String(generated.metadata['name']), /^mirra-[a-z0-9]{5}$/);
});
