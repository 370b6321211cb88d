// The peer watcher against the stand-in API server: the directory comes from
// the headless Service's EndpointSlices only (address, registry port, zone,
// node, readiness), the own endpoint gives the own zone and readiness
// (onOwnReady), pods are never watched, and the watch survives 410s, outages
// and dropped streams.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createLogger } from '../log/logger.ts';
import { createKubeClient, type KubeClient } from './client.ts';
import { loadKubeConfig } from './config.ts';
import { watchPeers, type PeerInfo, type PeerWatcher } from './peers.ts';

const HISTORY_SIZE = 20;
const SELF = 'mirra-self';
let api: KubeApi;
let dir: string;
let client: KubeClient;
const logger = createLogger('silent');

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

/** An agent pod with mirra's labels and a status annotation: the watcher must not care about it. */
function createPod(namespace: string, name: string, annotations: Record<string, string> = {}): void {
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'mirra' }, annotations },
    spec: { nodeName: `node-${name}`, containers: [{ name: 'mirra', image: 'mirra' }] },
    status: { phase: 'Running', podIP: `10.1.0.${name.length}` },
  });
}

interface Ep {
  pod: string;
  ip: string;
  ready: boolean;
  zone?: string;
}

interface SliceShape {
  addressType?: 'IPv4' | 'IPv6';
  /** The slice's ports; default metrics 9090 and registry 5000. */
  ports?: Array<{ name: string; port: number }>;
}

const DEFAULT_PORTS = [
  { name: 'metrics', port: 9090 },
  { name: 'registry', port: 5000 },
];

function setSlice(namespace: string, name: string, endpoints: Ep[], shape: SliceShape = {}): void {
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: shape.addressType ?? 'IPv4',
    ports: (shape.ports ?? DEFAULT_PORTS).map((p) => ({ ...p, protocol: 'TCP' })),
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
  /** Every onChange call in order: the name and the new entry (undefined: gone from the directory). */
  changes: Array<[string, PeerInfo | undefined]>;
  /** Every onOwnReady call in order. */
  ownReady: boolean[];
}

function start(namespace: string): Harness {
  const changes: Array<[string, PeerInfo | undefined]> = [];
  const ownReady: boolean[] = [];
  const watcher = watchPeers({
    client,
    namespace,
    serviceName: 'mirra',
    self: SELF,
    logger,
    onChange: (name, peer) => changes.push([name, peer]),
    onOwnReady: (ready) => ownReady.push(ready),
    minBackoffMs: 50,
    maxBackoffMs: 300,
  });
  return { watcher, changes, ownReady };
}

const peer = (h: Harness, name: string): PeerInfo | undefined => h.watcher.peers().get(name);
const changedNames = (h: Harness, from = 0): string[] => h.changes.slice(from).map(([name]) => name);
const requestsIn = (ns: string): string[] =>
  api
    .requests()
    .map((r) => r.url)
    .filter((url) => url.includes(`/namespaces/${ns}/`));

test('peers appear with ip, port, zone, node and readiness; readiness changes and removals follow the EndpointSlices', async () => {
  const ns = 'peers-basic';
  setSlice(ns, 'mirra-x1', [
    { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z1' },
    { pod: 'mirra-a', ip: '10.0.0.2', ready: true, zone: 'z1' },
    { pod: 'mirra-b', ip: '10.0.0.3', ready: false, zone: 'z2' },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2, 5000);
    const a: PeerInfo = { name: 'mirra-a', ip: '10.0.0.2', port: 5000, zone: 'z1', nodeName: 'node-mirra-a', ready: true };
    assert.deepEqual(peer(h, 'mirra-a'), a, 'the registry port, the endpoint zone and node');
    assert.equal(peer(h, 'mirra-b')?.ready, false, 'an unready endpoint is in the directory, not ready');
    assert.equal(peer(h, SELF), undefined, 'self is not a peer');
    assert.equal(h.watcher.ownZone(), 'z1', 'the own zone comes from the own endpoint');
    assert.equal(h.watcher.ownReady(), true);
    assert.deepEqual(changedNames(h).sort(), ['mirra-a', 'mirra-b'], 'one change per peer, none for self');
    assert.deepEqual(h.changes.find(([name]) => name === 'mirra-a')?.[1], a);

    let mark = h.changes.length;
    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z1' },
      { pod: 'mirra-a', ip: '10.0.0.2', ready: true, zone: 'z1' },
      { pod: 'mirra-b', ip: '10.0.0.3', ready: true, zone: 'z2' },
    ]);
    await waitFor('b ready', async () => peer(h, 'mirra-b')?.ready === true, 5000);
    assert.deepEqual(changedNames(h, mark), ['mirra-b'], 'only the entry that changed');
    assert.equal(h.changes.at(-1)?.[1]?.ready, true);

    mark = h.changes.length;
    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z3' },
      { pod: 'mirra-b', ip: '10.0.0.30', ready: true, zone: 'z2' },
    ]);
    await waitFor('a without endpoint', async () => peer(h, 'mirra-a') === undefined && peer(h, 'mirra-b')?.ip === '10.0.0.30', 5000);
    assert.equal(h.watcher.ownZone(), 'z3', 'the own zone follows the slice');
    assert.deepEqual(
      h.changes.slice(mark).sort(([x], [y]) => x.localeCompare(y)),
      [
        ['mirra-a', undefined],
        ['mirra-b', { name: 'mirra-b', ip: '10.0.0.30', port: 5000, zone: 'z2', nodeName: 'node-mirra-b', ready: true }],
      ],
      'a gone (undefined), b with its new address',
    );

    mark = h.changes.length;
    api.delete('EndpointSlice', ns, 'mirra-x1');
    await waitFor('all gone', async () => h.watcher.peers().size === 0, 5000);
    assert.deepEqual(h.changes.slice(mark), [['mirra-b', undefined]]);
    assert.equal(h.watcher.ownReady(), false);
    assert.equal(h.watcher.ownZone(), undefined);
  } finally {
    await h.watcher.close();
  }
});

test('only an endpoint with a port is an entry; a pod in two slices (dual stack) is one entry, its ready endpoint first', async () => {
  const ns = 'peers-ports';
  setSlice(ns, 'mirra-noports', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: true }], { ports: [] });
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced(), 5000);
    assert.equal(h.watcher.peers().size, 0, 'no port: no way to reach it');
    assert.deepEqual(h.changes, []);

    setSlice(ns, 'mirra-v4', [{ pod: 'mirra-b', ip: '10.0.0.3', ready: false }], { ports: [{ name: 'other', port: 7000 }] });
    await waitFor('b', async () => peer(h, 'mirra-b') !== undefined, 5000);
    assert.deepEqual(
      peer(h, 'mirra-b'),
      { name: 'mirra-b', ip: '10.0.0.3', port: 7000, zone: undefined, nodeName: 'node-mirra-b', ready: false },
      'the first port',
    );

    setSlice(ns, 'mirra-v6', [{ pod: 'mirra-b', ip: 'fd00::3', ready: true }], { addressType: 'IPv6' });
    await waitFor('b ready through its second slice', async () => peer(h, 'mirra-b')?.ready === true, 5000);
    assert.equal(peer(h, 'mirra-b')?.ip, 'fd00::3');
    assert.equal(h.watcher.peers().size, 1);

    api.delete('EndpointSlice', ns, 'mirra-v6');
    await waitFor('back to the first slice', async () => peer(h, 'mirra-b')?.ip === '10.0.0.3', 5000);
    assert.equal(peer(h, 'mirra-b')?.ready, false);
  } finally {
    await h.watcher.close();
  }
});

test("onOwnReady fires when the own endpoint's readiness changes, and only then", async () => {
  const ns = 'peers-own';
  setSlice(ns, 'mirra-x1', [
    { pod: SELF, ip: '10.0.0.1', ready: false, zone: 'z1' },
    { pod: 'mirra-a', ip: '10.0.0.2', ready: true },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 1, 5000);
    assert.equal(h.watcher.ownReady(), false);
    assert.deepEqual(h.ownReady, [], 'not ready from the start: no change');

    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z1' },
      { pod: 'mirra-a', ip: '10.0.0.2', ready: true },
    ]);
    await waitFor('own ready', async () => h.watcher.ownReady(), 5000);
    assert.deepEqual(h.ownReady, [true]);

    // Other changes: a peer's readiness, the own zone; then a marker peer to know they were all seen.
    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: true, zone: 'z2' },
      { pod: 'mirra-a', ip: '10.0.0.2', ready: false },
    ]);
    setSlice(ns, 'mirra-x2', [{ pod: 'mirra-marker', ip: '10.0.0.9', ready: true }]);
    await waitFor('the marker', async () => peer(h, 'mirra-marker') !== undefined, 5000);
    assert.equal(h.watcher.ownZone(), 'z2');
    assert.deepEqual(h.ownReady, [true], 'no call without a change of the own readiness');

    setSlice(ns, 'mirra-x1', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: false }]);
    await waitFor('own endpoint gone', async () => !h.watcher.ownReady(), 5000);
    assert.deepEqual(h.ownReady, [true, false], 'an own endpoint that is gone is not ready');
    assert.equal(peer(h, SELF), undefined);
    assert.ok(!changedNames(h).includes(SELF), 'self never goes through onChange');
  } finally {
    await h.watcher.close();
  }
});

test('pods are not watched: no request for pods, and pod changes touch nothing', async () => {
  const ns = 'peers-nopods';
  createPod(ns, 'mirra-a', { 'mirra.dev/index': 'v=2;keys=1;owned=0;postings=0;members=1' });
  setSlice(ns, 'mirra-x1', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: true }]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && peer(h, 'mirra-a') !== undefined, 5000);
    const mark = h.changes.length;
    const pod = api.get('Pod', ns, 'mirra-a');
    assert.ok(pod);
    api.update({ ...pod, metadata: { ...pod.metadata, annotations: { 'mirra.dev/index': 'v=2;keys=2;owned=0;postings=0;members=1' } } });
    api.delete('Pod', ns, 'mirra-a');
    createPod(ns, 'mirra-b');
    setSlice(ns, 'mirra-x2', [{ pod: 'mirra-marker', ip: '10.0.0.9', ready: true }]);
    await waitFor('the marker', async () => peer(h, 'mirra-marker') !== undefined, 5000);
    assert.deepEqual(changedNames(h, mark), ['mirra-marker'], 'only the marker changed');
    assert.equal(peer(h, 'mirra-a')?.ready, true, 'an endpoint counts without its pod');
    assert.equal(peer(h, 'mirra-b'), undefined, 'a pod without an endpoint is no peer');

    const urls = requestsIn(ns);
    assert.ok(urls.some((url) => url.startsWith(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?`) && url.includes('watch=true')));
    assert.deepEqual(
      urls.filter((url) => url.includes('/pods')),
      [],
      'no list or watch of pods',
    );
    await waitFor('one open watch: the EndpointSlices', async () => api.openWatches() === 1, 2000);
  } finally {
    await h.watcher.close();
  }
});

test('the watch uses bookmarks, recovers from 410 by relisting, and close() leaves nothing open', async () => {
  const ns = 'peers-410';
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  setSlice(ns, 'mirra-x1', [
    { pod: 'mirra-keep', ip: '10.0.0.2', ready: true },
    { pod: 'mirra-gone', ip: '10.0.0.3', ready: true },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2 && api.openWatches() === 1, 5000);
    const watchUrls = requestsIn(ns).filter((url) => url.includes('watch=true'));
    assert.ok(watchUrls.length >= 1 && watchUrls.every((url) => url.includes('allowWatchBookmarks=true')));
    await sleep(400); // a bookmark moves the watch's resourceVersion
    const expiredBefore = api.expiredWatches();

    api.dropWatches();
    setSlice(ns, 'mirra-x1', [
      { pod: 'mirra-keep', ip: '10.0.0.2', ready: true },
      { pod: 'mirra-new', ip: '10.0.0.4', ready: true },
    ]);
    for (let i = 0; i < HISTORY_SIZE + 5; i++) setSlice('peers-noise', `noise-${i}`, [{ pod: `noise-${i}`, ip: '10.9.0.1', ready: true }]);

    await waitFor('the relist', async () => [...h.watcher.peers().keys()].sort().join() === 'mirra-keep,mirra-new', 10_000);
    assert.ok(api.expiredWatches() > expiredBefore, 'a watch was answered with 410');
    assert.ok(
      h.changes.some(([name, p]) => name === 'mirra-gone' && p === undefined),
      'the relist removed what is gone',
    );
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
  setSlice(ns, 'mirra-x1', [
    { pod: SELF, ip: '10.0.0.1', ready: true },
    { pod: 'mirra-a', ip: '10.0.0.2', ready: true },
    { pod: 'mirra-b', ip: '10.0.0.3', ready: true },
  ]);
  const h = start(ns);
  try {
    await waitFor('sync', async () => h.watcher.synced() && h.watcher.peers().size === 2, 5000);
    await api.stop();
    setSlice(ns, 'mirra-x1', [
      { pod: SELF, ip: '10.0.0.1', ready: false },
      { pod: 'mirra-a', ip: '10.0.0.2', ready: false },
    ]);
    await sleep(1500); // several failed reconnects
    assert.equal(h.watcher.peers().size, 2, 'the last known directory');
    assert.equal(peer(h, 'mirra-a')?.ready, true);
    assert.equal(h.watcher.ownReady(), true);

    await api.restart({ clearHistory: true });
    await waitFor('converged', async () => peer(h, 'mirra-b') === undefined && peer(h, 'mirra-a')?.ready === false && !h.watcher.ownReady(), 10_000);
    assert.deepEqual(h.ownReady, [true, false]);
  } finally {
    await h.watcher.close();
  }
  await waitFor('no open watches after close()', async () => api.openWatches() === 0, 2000);
});

test('the first list is retried through 500s; a bookmark moves the version a dropped watch resumes from', async () => {
  const ns = 'peers-bookmark';
  setSlice(ns, 'mirra-x1', [{ pod: 'mirra-a', ip: '10.0.0.2', ready: true }]);
  api.faults.failWith(500, 600);
  const h = start(ns);
  try {
    assert.equal(h.watcher.synced(), false);
    await waitFor('sync after the 500s', async () => h.watcher.synced() && api.openWatches() === 1, 5000);
    assert.equal(peer(h, 'mirra-a')?.ready, true);
    const watchRv = (): number[] =>
      api
        .requests()
        .filter((r) => r.url.startsWith(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?`) && r.url.includes('watch=true'))
        .map((r) => Number(new URL(r.url, api.url).searchParams.get('resourceVersion')));
    const first = watchRv().at(-1) ?? 0;
    setSlice('peers-elsewhere', 'other', []); // moves the cluster's version; not an event of this watch
    const moved = Number(api.get('EndpointSlice', 'peers-elsewhere', 'other')?.metadata['resourceVersion']);
    await sleep(700); // bookmarks every 300 ms
    api.dropWatches();
    await waitFor('the new watch', async () => watchRv().length >= 2 && api.openWatches() === 1, 5000);
    assert.ok(first < moved && (watchRv().at(-1) ?? 0) >= moved, `resumed from the bookmark's version (${watchRv().join(', ')}; moved to ${moved})`);
  } finally {
    api.faults.clear();
    await h.watcher.close();
  }
});
