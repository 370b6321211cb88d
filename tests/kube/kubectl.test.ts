// The real kubectl 1.32 (/usr/bin/kubectl) against the stand-in.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startProcess, waitFor } from '../support/process.ts';
import { startKubeApi, type KubeApi } from './server.ts';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);

let api: KubeApi;
let dir: string;
let kubeconfig: string;

before(async () => {
  api = await startKubeApi();
  dir = await mkdtemp(join(tmpdir(), 'kube-stand-in-kubectl-'));
  kubeconfig = await api.kubeconfigPath(dir);
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'mirra-a', namespace: 'default', labels: { app: 'mirra' }, annotations: { 'mirra.dev/header': 'v1' } },
    spec: { nodeName: 'node-a', containers: [{ name: 'agent', image: 'mirra:dev' }] },
    status: { phase: 'Running', podIP: '10.0.0.7', containerStatuses: [{ name: 'agent', ready: true, restartCount: 2 }] },
  });
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'other', namespace: 'default', labels: { app: 'other' } },
    spec: {
      nodeName: 'node-b',
      containers: [
        { name: 'c', image: 'x' },
        { name: 'd', image: 'y' },
      ],
    },
    status: { phase: 'Pending' },
  });
  api.create({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'mirra-x7k2p', namespace: 'default', labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: 'IPv4',
    ports: [{ name: 'registry', port: 5000, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.0.0.7'], conditions: { ready: true }, nodeName: 'node-a' }],
  });
});

after(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 15_000, maxBuffer: 8 << 20 });
  return stdout;
}

function rows(output: string): string[][] {
  return output
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/));
}

test('kubectl get pods: server-side table, -o wide, -l', async () => {
  const table = rows(await kubectl('get', 'pods'));
  assert.deepEqual(table[0], ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
  assert.deepEqual(table[1]?.slice(0, 4), ['mirra-a', '1/1', 'Running', '2']);
  assert.deepEqual(table[2]?.slice(0, 4), ['other', '0/2', 'Pending', '0']);
  const wide = rows(await kubectl('get', 'pods', '-o', 'wide', '-l', 'app=mirra'));
  assert.deepEqual(wide[0], ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NODE', 'NOMINATED NODE', 'READINESS GATES']);
  assert.equal(wide.length, 2);
  assert.deepEqual(wide[1]?.slice(5), ['10.0.0.7', 'node-a', '<none>', '<none>']);
  assert.equal((await kubectl('get', 'pods', '--field-selector', 'spec.nodeName=node-b', '-o', 'name')).trim(), 'pod/other');
});

test('kubectl get pods -o json and -o jsonpath', async () => {
  const list = JSON.parse(await kubectl('get', 'pods', '-o', 'json')) as { items: { metadata: { name: string; resourceVersion: string } }[] };
  assert.deepEqual(
    list.items.map((i) => i.metadata.name),
    ['mirra-a', 'other'],
  );
  const annotations = await kubectl('get', 'pods', '-l', 'app=mirra', '-o', 'jsonpath={.items[*].metadata.annotations}');
  assert.deepEqual(JSON.parse(annotations), { 'mirra.dev/header': 'v1' });
  const ip = await kubectl('get', 'pod', 'mirra-a', '-o', 'jsonpath={.status.podIP}');
  assert.equal(ip, '10.0.0.7');
});

test('kubectl annotate pod, and the 422 for annotations over 256 KiB', async () => {
  assert.match(await kubectl('annotate', 'pod', 'mirra-a', 'mirra.dev/shard-0=AAEC'), /pod\/mirra-a annotated/);
  assert.deepEqual(api.get('Pod', 'default', 'mirra-a')?.metadata['annotations'], { 'mirra.dev/header': 'v1', 'mirra.dev/shard-0': 'AAEC' });
  await kubectl('annotate', 'pod', 'mirra-a', 'mirra.dev/shard-0-');
  assert.deepEqual(api.get('Pod', 'default', 'mirra-a')?.metadata['annotations'], { 'mirra.dev/header': 'v1' });

  // 2 x 100 KB fits, a third one does not (each argument stays under the 128 KiB limit of execve).
  await kubectl('annotate', 'pod', 'other', `a=${'x'.repeat(100_000)}`, `b=${'x'.repeat(100_000)}`);
  await assert.rejects(kubectl('annotate', 'pod', 'other', `c=${'x'.repeat(100_000)}`), (err: Error & { stderr?: string }) => {
    assert.match(err.stderr ?? '', /The Pod "other" is invalid: metadata\.annotations: Too long: may not be more than 262144 bytes/);
    return true;
  });
});

test('kubectl get endpointslices, namespaces, and --raw', async () => {
  const slices = rows(await kubectl('get', 'endpointslices'));
  assert.deepEqual(slices[0], ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
  assert.deepEqual(slices[1]?.slice(0, 4), ['mirra-x7k2p', 'IPv4', '5000', '10.0.0.7']);
  const namespaces = rows(await kubectl('get', 'ns')).map((r) => r[0]);
  assert.deepEqual(namespaces, ['NAME', 'default', 'kube-node-lease', 'kube-public', 'kube-system']);
  const raw = JSON.parse(await kubectl('get', '--raw', '/api/v1/namespaces/default/pods/mirra-a')) as { kind: string; spec: { nodeName: string } };
  assert.equal(raw.kind, 'Pod');
  assert.equal(raw.spec.nodeName, 'node-a');
  await assert.rejects(kubectl('get', 'pod', 'nope'), (err: Error & { stderr?: string }) => {
    assert.match(err.stderr ?? '', /pods "nope" not found/);
    return true;
  });
});

test('kubectl get pods --watch prints the update as it happens', async () => {
  const logFile = join(dir, 'watch.log');
  const watch = startProcess({
    name: 'kubectl-watch',
    command: KUBECTL,
    args: ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), 'get', 'pods', '-l', 'app=mirra', '--watch'],
    logFile,
  });
  try {
    const lines = async (): Promise<string[]> => (await readFile(logFile, 'utf8')).trim().split('\n');
    await waitFor('the initial table', async () => (await lines()).some((l) => l.startsWith('mirra-a')));
    const pod = api.get('Pod', 'default', 'mirra-a');
    assert.ok(pod);
    api.update({ ...pod, status: { ...(pod['status'] as object), phase: 'Failed', containerStatuses: [] } });
    await waitFor('the watched update', async () => (await lines()).some((l) => /^mirra-a\s+0\/1\s+Failed/.test(l)));
    const output = await lines();
    assert.equal(output.filter((l) => l.startsWith('NAME')).length, 1, 'one header');
    assert.equal(watch.isRunning(), true);
  } finally {
    await watch.stop();
  }
});

test('kubectl delete pod', async () => {
  assert.match(await kubectl('delete', 'pod', 'other'), /pod "other" deleted/);
  assert.equal(api.get('Pod', 'default', 'other'), undefined);
});
