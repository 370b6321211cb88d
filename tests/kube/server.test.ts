// The stand-in over HTTP: REST verbs and Status bodies, watch semantics,
// faults, stop/restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeApi, type KubeApi } from './server.ts';
import { openWatch } from './watch-reader.ts';

let api: KubeApi;
before(async () => {
  api = await startKubeApi({ historySize: 50, bookmarkIntervalMs: 200 });
});
after(() => api.stop());

const PODS = '/api/v1/namespaces/default/pods';

async function call(
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const init: RequestInit = { method, headers: { 'Content-Type': contentType, Accept: 'application/json' } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(api.url + path, init);
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown>, headers: res.headers };
}

function pod(name: string, labels: Record<string, string> = {}, nodeName = 'node-a'): unknown {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { nodeName, containers: [{ name: 'c', image: 'i' }] } };
}

function meta(obj: unknown): Record<string, unknown> {
  return (obj as { metadata: Record<string, unknown> }).metadata;
}

test('create, get, list with selectors, and the real Status bodies', async () => {
  const created = await call('POST', PODS, pod('rest-1', { app: 'mirra' }));
  assert.equal(created.status, 201);
  assert.equal(created.headers.get('content-type'), 'application/json');
  await call('POST', PODS, pod('rest-2', { app: 'other' }, 'node-b'));
  const got = await call('GET', `${PODS}/rest-1`);
  assert.equal(got.status, 200);
  assert.equal(meta(got.body)['uid'], meta(created.body)['uid']);

  const list = await call('GET', `${PODS}?labelSelector=${encodeURIComponent('app in (mirra,x)')}&limit=1`);
  assert.equal(list.body['kind'], 'PodList');
  assert.equal(meta(list.body)['resourceVersion'], String(api.store.currentResourceVersion()));
  const items = list.body['items'] as Record<string, unknown>[];
  assert.deepEqual(
    items.map((i) => meta(i)['name']),
    ['rest-1'],
  );
  assert.equal(items[0]?.['kind'], undefined, 'list items carry no kind, as on the real server');
  const byNode = await call('GET', `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-b`);
  assert.deepEqual(
    (byNode.body['items'] as unknown[]).map((i) => meta(i)['name']),
    ['rest-2'],
  );

  const missing = await call('GET', `${PODS}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'pods "nope" not found',
    reason: 'NotFound',
    details: { name: 'nope', kind: 'pods' },
    code: 404,
  });
  const slice = await call('GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/nope');
  assert.equal(slice.body['message'], 'endpointslices.discovery.k8s.io "nope" not found');
  assert.equal((await call('POST', PODS, pod('rest-1'))).body['reason'], 'AlreadyExists');
  const bad = await call('GET', `${PODS}?labelSelector=${encodeURIComponent('a b')}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body['reason'], 'BadRequest');
  assert.equal((await call('GET', '/api/v1/namespaces/default/widgets')).status, 404);
  assert.equal((await call('GET', '/api/v1/namespaces/%zz/pods')).status, 404);
  assert.equal((await call('POST', `${PODS}?dryRun=All`, pod('dry'))).status, 400);
  assert.equal((await call('POST', PODS, '{not json')).body['reason'], 'BadRequest');
});

test('update with a stale resourceVersion is 409 Conflict; patches of all three types', async () => {
  const created = await call('POST', PODS, pod('upd-1'));
  const fresh = await call('PUT', `${PODS}/upd-1`, { ...created.body, metadata: { ...meta(created.body), labels: { v: '1' } } });
  assert.equal(fresh.status, 200);
  const stale = await call('PUT', `${PODS}/upd-1`, created.body);
  assert.equal(stale.status, 409);
  assert.equal(stale.body['reason'], 'Conflict');
  assert.equal(
    stale.body['message'],
    'Operation cannot be fulfilled on pods "upd-1": the object has been modified; please apply your changes to the latest version and try again',
  );

  const merged = await call(
    'PATCH',
    `${PODS}/upd-1`,
    { metadata: { annotations: { 'mirra.dev/a': '1', 'mirra.dev/b': '2' } } },
    'application/merge-patch+json',
  );
  assert.deepEqual(meta(merged.body)['annotations'], { 'mirra.dev/a': '1', 'mirra.dev/b': '2' });
  const strategic = await call('PATCH', `${PODS}/upd-1`, { metadata: { annotations: { 'mirra.dev/a': null } } }, 'application/strategic-merge-patch+json');
  assert.deepEqual(meta(strategic.body)['annotations'], { 'mirra.dev/b': '2' });
  const json = await call(
    'PATCH',
    `${PODS}/upd-1`,
    [
      { op: 'test', path: '/metadata/annotations/mirra.dev~1b', value: '2' },
      { op: 'remove', path: '/metadata/annotations' },
    ],
    'application/json-patch+json',
  );
  assert.equal(json.status, 200);
  assert.equal(meta(json.body)['annotations'], undefined);
  const stalePatch = await call(
    'PATCH',
    `${PODS}/upd-1`,
    { metadata: { resourceVersion: meta(created.body)['resourceVersion'], labels: { x: 'y' } } },
    'application/merge-patch+json',
  );
  assert.equal(stalePatch.status, 409);
  assert.equal((await call('PATCH', `${PODS}/upd-1`, {}, 'application/json')).status, 415);
  assert.equal((await call('PATCH', `${PODS}/nope`, {}, 'application/merge-patch+json')).status, 404);
});

test('annotations over 256 KiB or with a bad key are 422 Invalid', async () => {
  await call('POST', PODS, pod('big-1'));
  const big = await call('PATCH', `${PODS}/big-1`, { metadata: { annotations: { 'mirra.dev/x': 'x'.repeat(262144) } } }, 'application/merge-patch+json');
  assert.equal(big.status, 422);
  assert.deepEqual(big.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Pod "big-1" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes',
    reason: 'Invalid',
    details: {
      name: 'big-1',
      kind: 'Pod',
      causes: [{ reason: 'FieldValueTooLong', message: 'Too long: may not be more than 262144 bytes', field: 'metadata.annotations' }],
    },
    code: 422,
  });
  const key = await call('PATCH', `${PODS}/big-1`, { metadata: { annotations: { 'mirra.dev/shard 0': '' } } }, 'application/merge-patch+json');
  assert.equal(key.status, 422);
  const fits = await call(
    'PATCH',
    `${PODS}/big-1`,
    { metadata: { annotations: { 'mirra.dev/x': 'x'.repeat(262144 - 'mirra.dev/x'.length) } } },
    'application/merge-patch+json',
  );
  assert.equal(fits.status, 200);
});

test('discovery documents and /version', async () => {
  const apiDoc = await call('GET', '/api');
  assert.deepEqual(apiDoc.body['versions'], ['v1']);
  const groups = (await call('GET', '/apis')).body['groups'] as { name: string }[];
  assert.deepEqual(
    groups.map((g) => g.name),
    ['discovery.k8s.io', 'coordination.k8s.io', 'apps', 'rbac.authorization.k8s.io', 'networking.k8s.io', 'monitoring.coreos.com'],
  );
  const core = (await call('GET', '/api/v1')).body['resources'] as { name: string }[];
  assert.deepEqual(
    core.map((r) => r.name),
    ['pods', 'pods/status', 'services', 'services/status', 'namespaces', 'namespaces/status', 'serviceaccounts', 'configmaps', 'secrets'],
  );
  const leases = await call('GET', '/apis/coordination.k8s.io/v1');
  assert.equal(leases.body['groupVersion'], 'coordination.k8s.io/v1');
  assert.equal((await call('GET', '/version')).body['minor'], '32');
});

test('watch from 0: synthetic ADDED, then changes; selector transitions; timeoutSeconds ends it', async () => {
  await call('POST', PODS, pod('w-1', { app: 'watched' }));
  const watch = await openWatch(`${api.url}${PODS}?watch=1&resourceVersion=0&labelSelector=app%3Dwatched&timeoutSeconds=1`);
  assert.equal(watch.status, 200);
  const added = await watch.next();
  assert.equal(added.type, 'ADDED');
  assert.equal(meta(added.object)['name'], 'w-1');
  await call('PATCH', `${PODS}/w-1`, { metadata: { annotations: { a: 'b' } } }, 'application/merge-patch+json');
  assert.equal((await watch.next()).type, 'MODIFIED');
  const relabelled = await call('PATCH', `${PODS}/w-1`, { metadata: { labels: { app: 'elsewhere' } } }, 'application/merge-patch+json');
  const gone = await watch.next();
  assert.equal(gone.type, 'DELETED', 'an object that stops matching the selector is DELETED for this watch');
  assert.equal(meta(gone.object)['resourceVersion'], meta(relabelled.body)['resourceVersion']);
  await call('PATCH', `${PODS}/w-1`, { metadata: { labels: { app: 'watched' } } }, 'application/merge-patch+json');
  assert.equal((await watch.next()).type, 'ADDED');
  await call('DELETE', `${PODS}/w-1`);
  assert.equal((await watch.next()).type, 'DELETED');
  assert.equal(await watch.ended, 'end', 'timeoutSeconds ends the stream cleanly');
});

test('watch from N replays history; bookmarks carry the latest resourceVersion; too old is 410 Expired', async () => {
  const first = await call('POST', PODS, pod('h-1'));
  const from = String(meta(first.body)['resourceVersion']);
  await call('POST', PODS, pod('h-2'));
  const watch = await openWatch(`${api.url}${PODS}?watch=true&resourceVersion=${from}&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dh-2`);
  const replayed = await watch.next();
  assert.equal(replayed.type, 'ADDED');
  assert.equal(meta(replayed.object)['name'], 'h-2');
  const bookmark = await watch.next();
  assert.equal(bookmark.type, 'BOOKMARK');
  assert.deepEqual(bookmark.object, { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(api.store.currentResourceVersion()) } });
  watch.close();

  for (let i = 0; i < 60; i++) api.update({ ...api.get('Pod', 'default', 'h-1'), metadata: { name: 'h-1', namespace: 'default', labels: { i: String(i) } } });
  const expired = await openWatch(`${api.url}${PODS}?watch=true&resourceVersion=${from}`);
  assert.equal(expired.status, 200);
  const error = await expired.next();
  assert.equal(error.type, 'ERROR');
  assert.deepEqual(error.object, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: ${from} (${api.store.oldestResourceVersion() + 1})`,
    reason: 'Expired',
    code: 410,
  });
  assert.equal(await expired.ended, 'end');
});

test('faults: delay, 500 and 429 for a while, then normal again', async () => {
  api.faults.delayMs(300);
  let start = Date.now();
  assert.equal((await call('GET', PODS)).status, 200);
  assert.ok(Date.now() - start >= 290, 'the answer was delayed');
  api.faults.clear();

  api.faults.failWith(500, 400);
  const failed = await call('GET', PODS);
  assert.equal(failed.status, 500);
  assert.equal(failed.body['reason'], 'InternalError');
  api.faults.failWith(429, 1500);
  const limited = await call('GET', `${PODS}/h-1`);
  assert.equal(limited.status, 429);
  assert.equal(limited.body['reason'], 'TooManyRequests');
  assert.equal(limited.headers.get('retry-after'), '2');
  start = Date.now();
  while ((await call('GET', PODS)).status === 429) await new Promise((r) => setTimeout(r, 100));
  assert.ok(Date.now() - start < 2500);
  api.faults.failWith(500, 10_000);
  api.faults.clear();
  assert.equal((await call('GET', PODS)).status, 200);
});

test('faults: watches failing with 410 Expired or 500 for a while, lists still answered', async () => {
  api.faults.failWatches(410, 10_000);
  const expired = await openWatch(`${api.url}${PODS}?watch=true`);
  assert.equal(expired.status, 200);
  const error = await expired.next();
  assert.equal(error.type, 'ERROR');
  assert.equal((error.object as Record<string, unknown>)['code'], 410);
  assert.equal((error.object as Record<string, unknown>)['reason'], 'Expired');
  assert.equal(await expired.ended, 'end');
  assert.equal((await call('GET', PODS)).status, 200, 'lists are not faulted');
  api.faults.failWatches(500, 10_000);
  const failed = await fetch(`${api.url}${PODS}?watch=1`);
  assert.equal(failed.status, 500);
  assert.equal(((await failed.json()) as Record<string, unknown>)['reason'], 'InternalError');
  api.faults.failWatches(500, 0);
  const healthy = await openWatch(`${api.url}${PODS}?watch=true&sendInitialEvents=false`);
  assert.equal(healthy.status, 200);
  healthy.close();
  api.faults.failWatches(410, 10_000);
  api.faults.clear();
  const cleared = await openWatch(`${api.url}${PODS}?watch=true&sendInitialEvents=false`);
  assert.equal(cleared.status, 200);
  cleared.close();
});

test('dropWatches cuts streams; stop and restart keep data and port; clearHistory expires old versions', async () => {
  const rv = String(api.store.currentResourceVersion());
  const watch = await openWatch(`${api.url}${PODS}?watch=1&resourceVersion=${rv}`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(api.openWatches(), 1);
  api.dropWatches();
  assert.equal(await watch.ended, 'error', 'dropped abruptly');
  assert.equal(api.openWatches(), 0);

  const before = (await call('GET', PODS)).body;
  const survivor = await openWatch(`${api.url}${PODS}?watch=1&resourceVersion=${rv}`);
  await api.stop();
  assert.equal(await survivor.ended, 'error');
  await assert.rejects(fetch(`${api.url}${PODS}`));
  api.create(pod('while-down'));
  await api.restart();
  const afterList = (await call('GET', PODS)).body;
  const names = (afterList['items'] as unknown[]).map((i) => meta(i)['name']);
  assert.deepEqual(names, [...(before['items'] as unknown[]).map((i) => meta(i)['name']), 'while-down'].sort());
  const replay = await openWatch(`${api.url}${PODS}?watch=1&resourceVersion=${rv}`);
  assert.equal(meta((await replay.next()).object)['name'], 'while-down', 'history kept across a plain restart');
  replay.close();

  await api.stop();
  await api.restart({ clearHistory: true });
  const expired = await openWatch(`${api.url}${PODS}?watch=1&resourceVersion=${rv}`);
  assert.equal((await expired.next()).type, 'ERROR');
});
