import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createLogger } from '../log/logger.ts';
import { createHasher } from '../routing/hash.ts';
import { encodeSummary } from '../routing/encode.ts';
import { createPeerIndex, type PeerIndex } from '../routing/peer-index.ts';
import { createKubeClient, type KubeClient } from './client.ts';
import { loadKubeConfig } from './config.ts';
import { watchPeers, type PeerInfo, type PeerWatcher } from './peers.ts';

const HISTORY_SIZE = 20;
const SELF = 'mirra-self';
let api: KubeApi;
let dir: string;
let client: KubeClient;
const logger = createLogger('silent');
const hasher = await createHasher();

before(async () => {
  api = await startKubeApi({ historySize: HISTORY_SIZE, bookmarkIntervalMs: 300 });
  dir = await mkdtemp(join(tmpdir(), 'mirra-kube-peers-'));
  client = createKubeClient(loadKubeConfig({ kubeconfigPath: await api.kubeconfigPath(dir), env: {} }).target);
});

after(async () => {
  client.close();
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

const keyOf = (name: string): string => `sha256:${hasher.digest(name).repeat(4)}`;
const summaryOf = (keys: string[], generation = 1): Record<string, string> => encodeSummary(keys, { hasher, shards: 8, generation }).annotations;

function createPod(namespace: string, name: string, annotations: Record<string, string> = {}): void {
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'mirra' }, annotations },
    spec: { nodeName: `node-${name}`, containers: [{ name: 'mirra', image: 'mirra' }] },
    status: { phase: 'Running', podIP: `10.1.0.${name.length}` },
  });
}

function setPodAnnotations(namespace: string, name: string, annotations: Record<string, string>): void {
  const pod = api.get('Pod', namespace, name);
  assert.ok(pod);
  api.update({ ...pod, metadata: { ...pod.metadata, annotations } });
}

interface Ep {
  pod: string;
  ip: string;
  ready: boolean;
  zone?: string;
}

function setSlice(namespace: string, name: string, endpoints: Ep[]): void {
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: 'IPv4',
    ports: [
      { name: 'metrics', port: 9090, protocol: 'TCP' },
      { name: 'registry', port: 5000, protocol: 'TCP' },
    ],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready },
      targetRef: { kind: 'Pod', name: e.pod, namespace },
      nodeName: `node-${e.pod}`,
      ...(e.zone === undefined ? {} : { zone: e.zone }),
    })),
  };
  if (api.get('EndpointSlice', namespace, name) === undefined) api.create(slice);
  else api.update(slice);
}

interface Harness {
  watcher: PeerWatcher;
  index: PeerIndex;
  upserts: string[];
  changes: string[];
}

/** A real peer index, with its upsertPeer calls counted. */
function start(namespace: string): Harness {
  const real = createPeerIndex({ self: SELF, hasher });
  const upserts: string[] = [];
  const changes: string[] = [];
  const index: PeerIndex = { ...real, upsertPeer: (name, update) => (upserts.push(name), real.upsertPeer(name, update)) };
  const watcher = watchPeers({
    client,
    namespace,
    labelSelector: 'app.kubernetes.io/name=mirra',
    serviceName: 'mirra',
    self: SELF,
    index,
    logger,
    onChange: (name) => changes.push(name),
    minBackoffMs: 50,
    maxBackoffMs: 300,
  });
  return { watcher, index, upserts, changes };
}

const peer = (h: Harness, name: string): PeerInfo | undefined => h.watcher.peers().get(name);

test('peers appear with ip, port, zone and readiness; lookup, readiness, summary updates and deletion follow the API', async () => {
  const ns = 'peers-basic';
  createPod(ns, SELF, summaryOf([keyOf('self')]));
  createPod(ns, 'mirra-a', summaryOf([keyOf('a'), keyOf('shared')]));
  createPod(ns, 'mirra-b', summaryOf([keyOf('b'), keyOf('shared')]));
  setSlice(ns, 'mirra-x1', [
    { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z1' },
    { pod: 'mirra-a', ip: '10.0.0.2', ready: true, zone: 'z1' },
    { pod: 'mirra-b', ip: '10.0.0.3', ready: false, zone: 'z2' },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2, 5000);
    assert.deepEqual(peer(h, 'mirra-a'), { name: 'mirra-a', ip: '10.0.0.2', port: 5000, zone: 'z1', nodeName: 'node-mirra-a', ready: true });
    assert.equal(peer(h, 'mirra-b')?.ready, false);
    assert.equal(peer(h, SELF), undefined, 'self is not a peer');
    assert.equal(h.watcher.ownZone(), 'z1', 'the own zone comes from the own endpoint');
    assert.deepEqual(h.index.lookup(keyOf('a')), ['mirra-a']);
    assert.deepEqual(h.index.lookup(keyOf('b')), [], 'b is not ready');
    assert.deepEqual(h.index.lookup(keyOf('self')), []);

    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z1' },
      { pod: 'mirra-a', ip: '10.0.0.2', ready: true, zone: 'z1' },
      { pod: 'mirra-b', ip: '10.0.0.3', ready: true, zone: 'z2' },
    ]);
    await waitFor('b ready', async () => peer(h, 'mirra-b')?.ready === true, 5000);
    assert.deepEqual(h.index.lookup(keyOf('b')), ['mirra-b']);
    assert.deepEqual(h.index.lookup(keyOf('shared'), { zone: 'z2' }), ['mirra-b', 'mirra-a'], 'same zone first');

    const decodesBefore = h.index.stats().shardDecodes;
    setPodAnnotations(ns, 'mirra-b', summaryOf([keyOf('b'), keyOf('shared'), keyOf('c')], 2));
    await waitFor('the new key', async () => h.index.lookup(keyOf('c')).includes('mirra-b'), 5000);
    const decoded = h.index.stats().shardDecodes - decodesBefore;
    assert.ok(decoded >= 1 && decoded < 8, `only the changed shard was decoded (${decoded})`);

    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z3' },
      { pod: 'mirra-b', ip: '10.0.0.3', ready: true, zone: 'z2' },
    ]);
    await waitFor('a without endpoint', async () => peer(h, 'mirra-a') === undefined, 5000);
    assert.equal(h.watcher.ownZone(), 'z3', 'the own zone follows the slice');
    assert.deepEqual(h.index.lookup(keyOf('a')), [], 'an endpoint that is gone is not ready');

    api.delete('Pod', ns, 'mirra-b');
    await waitFor('b deleted', async () => peer(h, 'mirra-b') === undefined, 5000);
    assert.deepEqual(h.index.lookup(keyOf('b')), [], 'a deleted pod is no candidate even with a ready endpoint');
    assert.equal(h.index.stats().peers, 1, 'only mirra-a (no endpoint) remains in the index');
  } finally {
    await h.watcher.close();
  }
});

test('an endpoint without its pod is no candidate; irrelevant pod changes do not touch the index', async () => {
  const ns = 'peers-relevance';
  setSlice(ns, 'mirra-x1', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: true }]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced(), 5000);
    assert.equal(h.watcher.peers().size, 0);
    createPod(ns, 'mirra-a', summaryOf([keyOf('a')]));
    await waitFor('a', async () => peer(h, 'mirra-a')?.ready === true, 5000);
    assert.deepEqual(h.index.lookup(keyOf('a')), ['mirra-a']);
    const upserts = h.upserts.length;
    const changes = h.changes.length;
    const pod = api.get('Pod', ns, 'mirra-a');
    assert.ok(pod);
    const { labels, annotations } = pod.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
    api.update({ ...pod, metadata: { ...pod.metadata, labels: { ...labels, extra: 'x' }, annotations: { ...annotations, 'other.io/a': 'b' } } });
    createPod(ns, 'mirra-marker', {});
    await waitFor('a later event', async () => h.changes.includes('mirra-marker'), 5000);
    assert.equal(h.upserts.filter((n) => n === 'mirra-a').length, upserts, 'no upsertPeer for a change outside the summary');
    assert.equal(h.changes.length, changes + 1, 'only the marker changed');
  } finally {
    await h.watcher.close();
  }
});

test('watches use bookmarks, recover from 410 by relisting, and close() leaves nothing open', async () => {
  const ns = 'peers-410';
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  createPod(ns, 'mirra-keep', summaryOf([keyOf('keep')]));
  createPod(ns, 'mirra-gone', summaryOf([keyOf('gone')]));
  setSlice(ns, 'mirra-x1', [
    { pod: 'mirra-keep', ip: '10.0.0.2', ready: true },
    { pod: 'mirra-gone', ip: '10.0.0.3', ready: true },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2 && api.openWatches() === 2, 5000);
    const watchUrls = api.requests().filter((r) => r.url.includes(`/namespaces/${ns}/`) && r.url.includes('watch=true'));
    assert.ok(watchUrls.length >= 2 && watchUrls.every((r) => r.url.includes('allowWatchBookmarks=true')));
    await sleep(400); // a bookmark moves the watch's resourceVersion
    const expiredBefore = api.expiredWatches();

    api.dropWatches();
    api.delete('Pod', ns, 'mirra-gone');
    createPod(ns, 'mirra-new', summaryOf([keyOf('new')]));
    setSlice(ns, 'mirra-x1', [
      { pod: 'mirra-keep', ip: '10.0.0.2', ready: true },
      { pod: 'mirra-gone', ip: '10.0.0.3', ready: true },
      { pod: 'mirra-new', ip: '10.0.0.4', ready: true },
    ]);
    for (let i = 0; i < HISTORY_SIZE + 5; i++) createPod('peers-noise', `noise-${i}`);

    await waitFor('the relist', async () => [...h.watcher.peers().keys()].sort().join() === 'mirra-keep,mirra-new', 10_000);
    assert.ok(api.expiredWatches() > expiredBefore, 'a watch was answered with 410');
    assert.deepEqual(h.index.lookup(keyOf('new')), ['mirra-new']);
    assert.deepEqual(h.index.lookup(keyOf('gone')), []);
    assert.deepEqual(h.index.lookup(keyOf('keep')), ['mirra-keep']);
  } finally {
    await h.watcher.close();
  }
  await waitFor('no open watches after close()', async () => api.openWatches() === 0, 2000);
  await sleep(100);
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  assert.ok(timersAfter <= timersBefore, `no timers left (${timersBefore} before, ${timersAfter} after)`);
});

test('the last known state is kept while the API is down; a restart with a fresh watch cache converges', async () => {
  const ns = 'peers-outage';
  createPod(ns, 'mirra-a', summaryOf([keyOf('a')]));
  createPod(ns, 'mirra-b', summaryOf([keyOf('b')]));
  setSlice(ns, 'mirra-x1', [
    { pod: 'mirra-a', ip: '10.0.0.2', ready: true },
    { pod: 'mirra-b', ip: '10.0.0.3', ready: true },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2, 5000);
    await api.stop();
    api.delete('Pod', ns, 'mirra-b');
    setPodAnnotations(ns, 'mirra-a', summaryOf([keyOf('a'), keyOf('a2')], 2));
    await sleep(1500); // several failed reconnects
    assert.deepEqual(h.index.lookup(keyOf('a')), ['mirra-a'], 'lookups keep working on the last known index');
    assert.deepEqual(h.index.lookup(keyOf('b')), ['mirra-b']);
    assert.equal(h.watcher.peers().size, 2);

    await api.restart({ clearHistory: true });
    await waitFor('converged', async () => peer(h, 'mirra-b') === undefined && h.index.lookup(keyOf('a2')).includes('mirra-a'), 10_000);
    assert.deepEqual(h.index.lookup(keyOf('b')), []);
  } finally {
    await h.watcher.close();
  }
  await waitFor('no open watches after close()', async () => api.openWatches() === 0, 2000);
});

test('the first list is retried through 500s; a bookmark moves the version a dropped watch resumes from', async () => {
  const ns = 'peers-bookmark';
  createPod(ns, 'mirra-a', summaryOf([keyOf('a')]));
  setSlice(ns, 'mirra-x1', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: true }]);
  api.faults.failWith(500, 600);
  const h = start(ns);
  try {
    assert.equal(h.watcher.synced(), false);
    await waitFor('sync after the 500s', async () => h.watcher.synced() && api.openWatches() === 2, 5000);
    assert.deepEqual(h.index.lookup(keyOf('a')), ['mirra-a']);
    const watchRv = (): number[] =>
      api
        .requests()
        .filter((r) => r.url.startsWith(`/api/v1/namespaces/${ns}/pods?`) && r.url.includes('watch=true'))
        .map((r) => Number(new URL(r.url, api.url).searchParams.get('resourceVersion')));
    const first = watchRv().at(-1) ?? 0;
    createPod('peers-elsewhere', 'other'); // moves the cluster's version; not an event of this watch
    const moved = Number(api.get('Pod', 'peers-elsewhere', 'other')?.metadata['resourceVersion']);
    await sleep(700); // bookmarks every 300 ms
    api.dropWatches();
    await waitFor('the new watch', async () => watchRv().length >= 2 && api.openWatches() === 2, 5000);
    assert.ok(first < moved && (watchRv().at(-1) ?? 0) >= moved, `resumed from the bookmark's version (${watchRv().join(', ')}; moved to ${moved})`);
  } finally {
    api.faults.clear();
    await h.watcher.close();
  }
});
