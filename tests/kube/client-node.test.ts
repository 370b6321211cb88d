// @kubernetes/client-node 2.x against the stand-in: list, merge patch,
// EndpointSlices, and an informer that recovers through 410 Gone and a relist.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, DiscoveryV1Api, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { waitFor } from '../support/process.ts';
import { startKubeApi, type KubeApi } from './server.ts';

const HISTORY_SIZE = 20;
let api: KubeApi;
let dir: string;
let kc: KubeConfig;

before(async () => {
  api = await startKubeApi({ historySize: HISTORY_SIZE });
  dir = await mkdtemp(join(tmpdir(), 'kube-stand-in-client-'));
  kc = new KubeConfig();
  kc.loadFromFile(await api.kubeconfigPath(dir));
});

after(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

function pod(name: string, labels: Record<string, string>): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels }, spec: { containers: [{ name: 'c', image: 'i' }] } };
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

test('list, merge patch and its 422, EndpointSlices', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: 'default', body: pod('list-a', { app: 'list' }) });
  await core.createNamespacedPod({ namespace: 'default', body: pod('list-b', { app: 'nope' }) });
  const list = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=list' });
  assert.deepEqual(
    list.items.map((p) => p.metadata?.name),
    ['list-a'],
  );
  assert.equal(list.metadata?.resourceVersion, String(api.store.currentResourceVersion()));

  const patched = await core.patchNamespacedPod(
    { name: 'list-a', namespace: 'default', body: { metadata: { annotations: { 'mirra.dev/shard-3': 'AQID' } } } },
    mergePatch,
  );
  assert.deepEqual(patched.metadata?.annotations, { 'mirra.dev/shard-3': 'AQID' });
  assert.equal(api.requests().at(-1)?.method, 'PATCH');

  await assert.rejects(
    core.patchNamespacedPod({ name: 'list-a', namespace: 'default', body: { metadata: { annotations: { big: 'x'.repeat(300_000) } } } }, mergePatch),
    (err: unknown) => {
      assert.ok(err instanceof ApiException);
      assert.equal(err.code, 422);
      const body = JSON.parse(String(err.body)) as { reason: string; details: { causes: { field: string }[] } };
      assert.equal(body.reason, 'Invalid');
      assert.equal(body.details.causes[0]?.field, 'metadata.annotations');
      return true;
    },
  );

  const discovery = kc.makeApiClient(DiscoveryV1Api);
  await discovery.createNamespacedEndpointSlice({
    namespace: 'default',
    body: {
      metadata: { name: 'mirra-abc', labels: { 'kubernetes.io/service-name': 'mirra' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }],
    },
  });
  const slices = await discovery.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: 'kubernetes.io/service-name=mirra' });
  assert.deepEqual(
    slices.items.map((s) => [s.metadata?.name, s.endpoints?.[0]?.conditions?.ready]),
    [['mirra-abc', true]],
  );
});

interface Seen {
  adds: string[];
  updates: string[];
  deletes: string[];
}

/** An informer for app=<app> pods that restarts itself after errors, as the agent's would. */
function podInformer(app: string) {
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1Pod>(
    kc,
    '/api/v1/namespaces/default/pods',
    () => core.listNamespacedPod({ namespace: 'default', labelSelector: `app=${app}` }),
    `app=${app}`,
  );
  const seen: Seen = { adds: [], updates: [], deletes: [] };
  let stopped = false;
  informer.on('add', (p) => seen.adds.push(p.metadata?.name ?? ''));
  informer.on('update', (p) => seen.updates.push(p.metadata?.name ?? ''));
  informer.on('delete', (p) => seen.deletes.push(p.metadata?.name ?? ''));
  informer.on('error', () => {
    if (!stopped) setTimeout(() => void informer.start(), 100);
  });
  const names = (): string[] =>
    informer
      .list('default')
      .map((p) => p.metadata?.name ?? '')
      .sort();
  return {
    informer,
    seen,
    names,
    async stop() {
      stopped = true;
      await informer.stop();
    },
  };
}

test('informer with a label selector gets add, update and delete', async () => {
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedPod({ namespace: 'default', body: pod('inf-1', { app: 'inf' }) });
  const inf = podInformer('inf');
  await inf.informer.start();
  try {
    await waitFor('initial add', async () => inf.seen.adds.includes('inf-1'), 5000);
    await core.createNamespacedPod({ namespace: 'default', body: pod('inf-2', { app: 'inf' }) });
    await core.createNamespacedPod({ namespace: 'default', body: pod('inf-x', { app: 'other' }) });
    await core.patchNamespacedPod({ name: 'inf-1', namespace: 'default', body: { metadata: { annotations: { a: 'b' } } } }, mergePatch);
    await core.deleteNamespacedPod({ name: 'inf-2', namespace: 'default' });
    await waitFor('watch events', async () => inf.seen.deletes.includes('inf-2'), 5000);
    assert.deepEqual(inf.seen, { adds: ['inf-1', 'inf-2'], updates: ['inf-1'], deletes: ['inf-2'] });
    assert.equal(inf.informer.get('inf-1', 'default')?.metadata?.annotations?.['a'], 'b');
  } finally {
    await inf.stop();
  }
});

/** Changes while the informer is cut off, more of them than the history holds. */
function changeBeyondHistory(app: string): void {
  const keep = api.get('Pod', 'default', `${app}-keep`);
  assert.ok(keep);
  api.update({ ...keep, metadata: { ...keep.metadata, annotations: { changed: 'yes' } } });
  api.delete('Pod', 'default', `${app}-gone`);
  api.create(pod(`${app}-new`, { app }));
  for (let i = 0; i < HISTORY_SIZE + 5; i++) api.create(pod(`${app}-noise-${i}`, { app: 'noise' }));
}

async function expectRecovered(app: string, inf: ReturnType<typeof podInformer>, watchRvBefore: string, expiredBefore: number): Promise<void> {
  await waitFor('the relist after 410', async () => inf.names().join() === [`${app}-keep`, `${app}-new`].join(), 10_000);
  assert.ok(inf.seen.deletes.includes(`${app}-gone`), 'the delete was seen, though its event had left the history');
  assert.ok(inf.seen.adds.includes(`${app}-new`));
  assert.equal(api.expiredWatches(), expiredBefore + 1, 'one watch was answered with 410 Expired');
  assert.equal(inf.informer.get(`${app}-keep`, 'default')?.metadata?.annotations?.['changed'], 'yes');
  // The sequence on the wire: a watch from the old version (answered with the 410 ERROR event), then a list.
  const log = api.requests().map((r) => r.url);
  const stale = log.findIndex((u) => u.includes('watch=true') && u.includes(`resourceVersion=${watchRvBefore}&`));
  assert.ok(stale >= 0, `a watch from resourceVersion ${watchRvBefore} was made`);
  assert.ok(
    log.slice(stale + 1).some((u) => u.startsWith('/api/v1/namespaces/default/pods?') && !u.includes('watch=')),
    'then a relist',
  );
  assert.ok(
    log.slice(stale + 1).some((u) => u.includes('watch=true') && !u.includes(`resourceVersion=${watchRvBefore}&`)),
    'then a new watch',
  );
}

async function startedInformer(app: string): Promise<{ inf: ReturnType<typeof podInformer>; rv: string; expired: number }> {
  api.create(pod(`${app}-keep`, { app }));
  api.create(pod(`${app}-gone`, { app }));
  const inf = podInformer(app);
  try {
    await inf.informer.start();
    await waitFor('the informer watch', async () => api.openWatches() === 1 && inf.names().length === 2, 5000);
  } catch (err) {
    await inf.stop();
    throw err;
  }
  // The version the informer watches from: that of its open watch request.
  const watchUrl = api.requests().findLast((r) => r.url.includes('watch=true'))?.url ?? '';
  const rv = new URL(watchUrl, api.url).searchParams.get('resourceVersion') ?? '';
  assert.match(rv, /^\d+$/);
  return { inf, rv, expired: api.expiredWatches() };
}

test('a dropped watch that outlives the history window recovers through 410 and relist', async () => {
  const { inf, rv, expired } = await startedInformer('drop');
  try {
    api.dropWatches();
    changeBeyondHistory('drop'); // synchronously, before the client can reconnect
    await expectRecovered('drop', inf, rv, expired);
  } finally {
    await inf.stop();
  }
});

test('an API server restart with many changes while it was down recovers through 410 and relist', async () => {
  const { inf, rv, expired } = await startedInformer('restart');
  try {
    await api.stop();
    changeBeyondHistory('restart');
    await new Promise((resolve) => setTimeout(resolve, 300)); // the client fails to reconnect for a while
    await api.restart();
    await expectRecovered('restart', inf, rv, expired);
  } finally {
    await inf.stop();
  }
});
