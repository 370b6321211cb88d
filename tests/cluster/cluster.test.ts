// The local cluster harness with real containerd, docker-registry, agents,
// the Kubernetes API stand-in and the real kubectl.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { generateImage } from '../support/image.ts';
import { runningProcesses, waitFor } from '../support/process.ts';
import { startCluster, type Cluster, type SliceEndpoint } from './cluster.ts';
import { parseSliceEndpoints } from './objects.ts';

const KUBECTL = '/usr/bin/kubectl';
const CLI = fileURLToPath(new URL('../../hack/cluster.ts', import.meta.url));

function rec(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

async function kubectl(cluster: Cluster, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(KUBECTL, ['--kubeconfig', cluster.kubeconfig, ...args], { timeout: 20_000 });
  return stdout;
}

async function kubectlJson(cluster: Cluster, args: string[]): Promise<Record<string, unknown>> {
  return rec(JSON.parse(await kubectl(cluster, [...args, '-o', 'json'])));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if (rec(err)['code'] === 'ESRCH') return false;
    throw err;
  }
}

function endpointOf(cluster: Cluster, nodeName: string): SliceEndpoint | undefined {
  return cluster.endpoints().find((endpoint) => endpoint.nodeName === nodeName);
}

/** Polls the EndpointSlice every 10 ms; resolves with the ms until `check` holds for the node's endpoint. */
async function msUntil(cluster: Cluster, nodeName: string, check: (endpoint: SliceEndpoint | undefined) => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await waitFor(`${nodeName}'s endpoint to change`, async () => check(endpointOf(cluster, nodeName)), timeoutMs, 10);
  return performance.now() - start;
}

function podCondition(pod: Record<string, unknown>, type: string): unknown {
  return rec(arr(rec(pod['status'])['conditions']).find((c) => rec(c)['type'] === type))['status'];
}

describe('local cluster of 3 nodes', () => {
  let cluster: Cluster;
  let sigintListeners = 0;
  before(async () => {
    sigintListeners = process.listenerCount('SIGINT');
    cluster = await startCluster({ nodes: 3, zones: ['zone-a', 'zone-b'] });
    await cluster.waitReady(30_000);
  });
  after(async () => {
    await cluster?.stop();
  });

  test('all three agents become ready: three ready endpoints in the EndpointSlice (API and kubectl)', async () => {
    const expected = cluster.nodes.map((node) => ({
      addresses: [node.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: node.name,
      targetRef: { kind: 'Pod', name: node.podName, namespace: 'mirra', uid: String(cluster.api.get('Pod', 'mirra', node.podName)?.metadata['uid']) },
      zone: node.zone,
    }));
    assert.deepEqual(
      cluster.nodes.map((node) => [node.name, node.ip, node.zone]),
      [
        ['node-1', '127.0.0.2', 'zone-a'],
        ['node-2', '127.0.0.3', 'zone-b'],
        ['node-3', '127.0.0.4', 'zone-a'],
      ],
    );
    assert.deepEqual(cluster.endpoints(), expected);

    const slices = arr((await kubectlJson(cluster, ['get', 'endpointslices', '-n', 'mirra']))['items']).map(rec);
    assert.equal(slices.length, 1);
    const slice = rec(slices[0]);
    const meta = rec(slice['metadata']);
    assert.equal(meta['name'], cluster.sliceName);
    assert.match(cluster.sliceName, /^mirra-[a-z0-9]{5}$/);
    assert.deepEqual(meta['labels'], { 'kubernetes.io/service-name': 'mirra', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' });
    assert.equal(slice['addressType'], 'IPv4');
    assert.deepEqual(slice['ports'], [{ name: 'registry', port: cluster.port, protocol: 'TCP' }]);
    assert.deepEqual(parseSliceEndpoints(slice), expected);

    const service = await kubectlJson(cluster, ['get', 'service', 'mirra', '-n', 'mirra']);
    assert.equal(rec(service['spec'])['clusterIP'], 'None');
    assert.deepEqual(rec(service['spec'])['selector'], { 'app.kubernetes.io/name': 'mirra' });

    const pods = arr((await kubectlJson(cluster, ['get', 'pods', '-n', 'mirra', '-l', cluster.labelSelector]))['items']).map(rec);
    assert.equal(pods.length, 3);
    for (const node of cluster.nodes) {
      const pod = pods.find((p) => rec(p['metadata'])['name'] === node.podName);
      assert.ok(pod, `kubectl lists ${node.podName}`);
      const podMeta = rec(pod['metadata']);
      assert.equal(rec(pod['spec'])['nodeName'], node.name);
      assert.equal(rec(pod['status'])['phase'], 'Running');
      assert.equal(rec(pod['status'])['podIP'], node.ip);
      assert.equal(podCondition(pod, 'Ready'), 'True');
      assert.equal(rec(podMeta['labels'])['app.kubernetes.io/instance'], 'mirra');
      assert.equal(rec(podMeta['labels'])['pod-template-generation'], '1');
      assert.match(String(rec(podMeta['labels'])['controller-revision-hash']), /^[a-z0-9]+$/);
      assert.deepEqual(
        arr(podMeta['ownerReferences']).map((o) => [rec(o)['kind'], rec(o)['name'], rec(o)['controller']]),
        [['DaemonSet', 'mirra', true]],
      );
      // The agent runs with the env a DaemonSet pod gets from the downward API.
      const environ = (await readFile(`/proc/${node.agent.process.pid}/environ`, 'utf8')).split('\0');
      for (const pair of [
        `POD_NAME=${node.podName}`,
        'POD_NAMESPACE=mirra',
        `NODE_NAME=${node.name}`,
        `POD_IP=${node.ip}`,
        `KUBECONFIG=${cluster.kubeconfig}`,
      ]) {
        assert.ok(environ.includes(pair), `${node.name}'s agent has ${pair}`);
      }
    }
    const wide = await kubectl(cluster, ['get', 'pods', '-n', 'mirra', '-l', cluster.labelSelector, '-o', 'wide']);
    assert.equal(wide.split('\n').filter((line) => /\s1\/1\s+Running\s/.test(line)).length, 3, wide);
  });

  test("a node's containerd asks its own agent first (hosts.toml), then falls back to upstream", async () => {
    const image = await generateImage({ dir: join(cluster.dir, 'image'), layers: [64 * 1024, 128 * 1024], seed: 'cluster-test' });
    await cluster.upstream.push(image.layoutDir, 'cluster/app', 'v1');
    cluster.upstream.resetCounts();
    const [node1, node2, node3] = cluster.nodes;
    assert.ok(node1 && node2 && node3);
    await node1.pull(`${cluster.upstream.host}/cluster/app:v1`);

    const asked = (await node1.agent.accessLines()).filter((line) => String(line.url).startsWith('/v2/cluster/app/'));
    const head = asked.find((line) => line.method === 'HEAD' && line.url === '/v2/cluster/app/manifests/v1');
    assert.ok(head, `node-1's agent saw the HEAD of the tag: ${JSON.stringify(asked)}`);
    assert.equal(head.status, 404);
    assert.equal(head.registry, cluster.upstream.host);
    for (const other of [node2, node3]) {
      const seen = (await other.agent.accessLines()).filter((line) => String(line.url).startsWith('/v2/cluster/app/'));
      assert.deepEqual(seen, [], `${other.name}'s agent saw nothing of node-1's pull`);
    }
    const counts = cluster.upstream.counts();
    assert.ok(counts.manifestGets >= 1 && counts.blobGets >= 3, `the upstream served the pull: ${JSON.stringify(counts)}`);
  });

  test('a killed node turns not ready within 2 s; the others stay ready', async (t) => {
    const node2 = cluster.nodes[1];
    assert.ok(node2);
    const killed = node2.kill();
    const ms = await msUntil(cluster, 'node-2', (e) => e?.conditions.ready === false, 5000);
    await killed;
    t.diagnostic(`killed node-2 not ready after ${ms.toFixed(0)} ms`);
    assert.ok(ms < 2000, `not ready after ${ms.toFixed(0)} ms`);
    assert.deepEqual(
      cluster.endpoints().map((e) => [e.nodeName, e.conditions.ready, e.conditions.serving]),
      [
        ['node-1', true, true],
        ['node-2', false, false],
        ['node-3', true, true],
      ],
    );
    const slice = rec(arr((await kubectlJson(cluster, ['get', 'endpointslices', '-n', 'mirra']))['items'])[0]);
    assert.deepEqual(
      parseSliceEndpoints(slice).map((e) => e.conditions.ready),
      [true, false, true],
    );
    const pod = await kubectlJson(cluster, ['get', 'pod', node2.podName, '-n', 'mirra']);
    assert.equal(podCondition(pod, 'Ready'), 'False');
    assert.equal(rec(rec(rec(arr(rec(pod['status'])['containerStatuses'])[0])['state'])['terminated'])['exitCode'], 137);
  });

  test('a paused agent turns not ready (its probe times out) and ready again when resumed', async (t) => {
    const node3 = cluster.nodes[2];
    assert.ok(node3);
    node3.pause();
    const ms = await msUntil(cluster, 'node-3', (e) => e?.conditions.ready === false, 5000);
    t.diagnostic(`paused node-3 not ready after ${ms.toFixed(0)} ms`);
    assert.ok(ms < 2000, `not ready after ${ms.toFixed(0)} ms`);
    assert.equal(node3.agent.process.isRunning(), true);
    node3.resume();
    await msUntil(cluster, 'node-3', (e) => e?.conditions.ready === true, 5000);
  });

  test('restartAgent keeps the pod (restartCount 1); replacePod makes a new pod and drops the old endpoint', async () => {
    const [node1, node2] = cluster.nodes;
    assert.ok(node1 && node2);
    const pod2 = node2.podName;
    await node2.restartAgent();
    await cluster.waitReady(15_000);
    assert.equal(node2.podName, pod2);
    const status = rec(cluster.api.get('Pod', 'mirra', pod2)?.['status']);
    const container = rec(arr(status['containerStatuses'])[0]);
    assert.equal(container['restartCount'], 1);
    assert.equal(rec(rec(container['lastState'])['terminated'])['exitCode'], 137);

    const oldPod = node1.podName;
    const seen: string[][] = [];
    const unsubscribe = cluster.api.store.subscribe((event) => {
      if (event.def.kind === 'EndpointSlice') seen.push(parseSliceEndpoints(event.object).map((e) => `${e.targetRef.name}:${e.conditions.ready}`));
    });
    try {
      await node1.replacePod();
      await cluster.waitReady(15_000);
    } finally {
      unsubscribe();
    }
    assert.notEqual(node1.podName, oldPod);
    assert.equal(cluster.api.get('Pod', 'mirra', oldPod), undefined);
    assert.ok(
      seen.some((names) => names.length === 2 && !names.some((n) => n.startsWith(`${oldPod}:`))),
      `the old endpoint was removed: ${JSON.stringify(seen)}`,
    );
    assert.deepEqual(
      cluster.endpoints().map((e) => e.targetRef.name),
      cluster.nodes.map((node) => node.podName),
    );
    const environ = (await readFile(`/proc/${node1.agent.process.pid}/environ`, 'utf8')).split('\0');
    assert.ok(environ.includes(`POD_NAME=${node1.podName}`));
  });

  test("stopping a node's containerd makes it not ready; starting it again makes it ready", async () => {
    const node3 = cluster.nodes[2];
    assert.ok(node3);
    await node3.stopContainerd();
    await msUntil(cluster, 'node-3', (e) => e?.conditions.ready === false, 10_000);
    await node3.startContainerd();
    await cluster.waitReady(20_000);
  });

  test('stop() leaves nothing it started running and removes its directory', async () => {
    const pids = cluster.pids();
    // docker-registry, 3 + 1 containerd, 3 + 2 agents (restartAgent, replacePod).
    assert.equal(pids.length, 1 + 4 + 5, JSON.stringify(pids));
    assert.ok(pids.some(alive));
    await cluster.stop();
    await cluster.stop(); // idempotent
    assert.deepEqual(pids.filter(alive), [], 'every pid it started is gone');
    await assert.rejects(readdir(cluster.dir), { code: 'ENOENT' });
    assert.equal(process.listenerCount('SIGINT'), sigintListeners, 'its signal handlers are removed');
  });
});

describe('cluster cleanup', () => {
  test('a cluster whose agents cannot start rejects and leaves nothing running', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'mirra-cluster-fail-'));
    try {
      const before = new Set(runningProcesses().map((child) => child.pid));
      await assert.rejects(startCluster({ nodes: 2, dir: parent, agentArgs: ['--no-such-flag'] }), /agent did not start/);
      assert.deepEqual(
        runningProcesses()
          .filter((child) => !before.has(child.pid))
          .map((child) => child.name),
        [],
      );
      assert.deepEqual(await readdir(parent), []);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  test('Ctrl-C on `node hack/cluster.ts` stops everything it started', async () => {
    const child = spawn(process.execPath, [CLI, '--nodes', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the cluster CLI to print its pids', async () => /^pids: [\d ]+$/m.test(output) || child.exitCode !== null, 40_000, 50);
      const pids = (/^pids: ([\d ]+)$/m.exec(output)?.[1] ?? '').split(' ').map(Number);
      const dir = /^ {2}dir +(\S+)$/m.exec(output)?.[1];
      assert.equal(pids.length, 3, output); // docker-registry, containerd, agent
      assert.ok(dir !== undefined, output);
      assert.ok(pids.every(alive));
      child.kill('SIGINT');
      assert.equal(await exited, 130, output);
      assert.deepEqual(pids.filter(alive), []);
      await assert.rejects(readdir(dir), { code: 'ENOENT' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
