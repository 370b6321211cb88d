// Faults on the 3-node harness with real containerd pulls (the reliability
// issue, parts 1 and 2). Every pull must end with the right content
// (containerd checks every digest on commit; the blob files are hashed again
// here), and none may fail that would have succeeded upstream.
//
// 1. Between peers: a fault proxy (tests/cluster/fault-proxy.ts) in front of
//    the agent that node-3 asks first refuses, resets, stalls, answers 5xx or
//    corrupts bytes. With a healthy second holder the blob comes from it (no
//    upstream blob GET); with nobody else, node-3's agent answers 404 before
//    sending a byte and containerd goes upstream. The sick peer is penalised.
// 2. Around the agent: containerd down and back, API errors (429, 500) with
//    dropped watches, and the agent killed and restarted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createHasher, type Hasher } from '../../internal/routing/hash.ts';
import { HEADER_ANNOTATION, parseHeader } from '../../internal/routing/annotations.ts';
import { createPeerIndex } from '../../internal/routing/peer-index.ts';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import type { PeerFault } from '../cluster/fault-proxy.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';

const MiB = 1024 * 1024;
const STALL_TIMEOUT = '1s';
const PENALISED = 'peer penalised: it goes last for a while';

interface PodInfo {
  name: string;
  node: string;
  annotations: Record<string, string>;
}

function pods(cluster: Cluster): PodInfo[] {
  return cluster.api.list('Pod', cluster.namespace).map((pod) => {
    const spec = (pod['spec'] ?? {}) as Record<string, unknown>;
    return {
      name: String(pod.metadata['name']),
      node: String(spec['nodeName']),
      annotations: (pod.metadata['annotations'] ?? {}) as Record<string, string>,
    };
  });
}

/** The nodes whose published summary claims the key, in the order `self`'s agent asks them (no zones here). */
function claimants(cluster: Cluster, hasher: Hasher, key: string, self = '(nobody)'): string[] {
  const index = createPeerIndex({ self, hasher });
  const all = pods(cluster);
  for (const pod of all) index.upsertPeer(pod.name, { ready: true, annotations: pod.annotations });
  return index.lookup(key).map((name) => all.find((pod) => pod.name === name)?.node ?? name);
}

function generation(cluster: Cluster, node: ClusterNode): number | undefined {
  const header = pods(cluster).find((pod) => pod.node === node.name)?.annotations[HEADER_ANNOTATION];
  return header === undefined ? undefined : parseHeader(header).generation;
}

/** Upstream GETs of these blobs since the last resetCounts(). */
function upstreamGets(cluster: Cluster, digests: readonly string[]): number {
  return cluster.upstream.counts().requests.filter((r) => r.kind === 'blob' && r.method === 'GET' && digests.some((d) => r.path.endsWith(d))).length;
}

/** What containerd has under the digest, hashed again: the pull stored the right bytes. */
async function assertStored(node: ClusterNode, image: GeneratedImage): Promise<void> {
  const listed = await node.containerd.ctr(['content', 'ls', '-q']);
  for (const digest of [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)]) {
    assert.ok(listed.includes(digest), `${node.name} has ${digest}`);
    const hex = digest.slice('sha256:'.length);
    const bytes = await readFile(join(node.containerd.contentDir, 'blobs', 'sha256', hex));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `${node.name}: ${digest} is intact`);
  }
}

/** Until the node's agent finds the blob through its peers (its index and directory are in step). */
async function waitPeerServes(cluster: Cluster, node: ClusterNode, name: string, digest: string): Promise<void> {
  const url = `${node.agent.url}/v2/faults/${name}/blobs/${digest}?ns=${encodeURIComponent(cluster.upstream.host)}`;
  await waitFor(`${node.name} to find ${digest} on a peer`, async () => {
    const res = await fetch(url, { method: 'HEAD' });
    await res.body?.cancel();
    return res.status === 200;
  }, 15_000, 100);
}

async function peerRequestsFor(node: ClusterNode, digests: readonly string[]): Promise<number> {
  const lines = await node.agent.accessLines();
  return lines.filter((line) => line.fromPeer === true && digests.some((d) => String(line.url).includes(d))).length;
}

describe('faults on three nodes', { timeout: 420_000 }, () => {
  let cluster: Cluster;
  let hasher: Hasher;
  let n1: ClusterNode;
  let n2: ClusterNode;
  let n3: ClusterNode;
  let seq = 0;
  const ref = (name: string): string => `${cluster.upstream.host}/faults/${name}:v1`;

  /** A new image (by default 4 MiB + 2 MiB layers), in the upstream as faults/<name>:v1. */
  const newImage = async (name: string, layers = [4 * MiB, 2 * MiB]): Promise<GeneratedImage> => {
    const image = await generateImage({ dir: join(cluster.dir, `img-${name}`), layers, seed: `faults-${name}-${seq++}` });
    await cluster.upstream.push(image.layoutDir, `faults/${name}`, 'v1');
    return image;
  };

  /** Pulls on the nodes in turn and waits until each advertises the image. */
  const holdOn = async (image: GeneratedImage, name: string, holders: ClusterNode[]): Promise<void> => {
    for (const node of holders) {
      await node.pull(ref(name));
      await waitFor(`${node.name} to advertise ${name}`, async () => image.layers.every((l) => claimants(cluster, hasher, l.digest).includes(node.name)), 10_000, 100);
    }
  };

  /**
   * Puts the image on node-1 (and node-2 unless `alone`), restarts node-3's
   * agent (it forgets earlier penalties) and waits until it knows the holders;
   * `sick` is the holder node-3 asks first for the first layer, `healthy` the other.
   */
  const sickFirst = async (image: GeneratedImage, name: string, alone: boolean): Promise<{ sick: ClusterNode & { faults: NonNullable<ClusterNode['faults']> }; healthy: ClusterNode | undefined }> => {
    const first = image.layers[0]?.digest ?? '';
    await holdOn(image, name, alone ? [n1] : [n1, n2]);
    const mark = (await n3.agent.logLines()).length;
    await n3.restartAgent();
    await cluster.waitReady();
    const holders = pods(cluster).filter((pod) => pod.node !== 'node-3' && (alone ? pod.node === 'node-1' : true));
    await waitFor('node-3 to know the holders', async () => {
      const lines = (await n3.agent.logLines()).slice(mark);
      return holders.every((pod) => lines.some((line) => line.msg === 'peer summary updated' && line.peer === pod.name && line.status === 'ok'));
    }, 15_000, 100);
    await waitPeerServes(cluster, n3, name, first);
    const order = claimants(cluster, hasher, first, n3.podName);
    const sick = cluster.nodes.find((node) => node.name === order[0]);
    assert.ok(sick?.faults !== undefined, `first choice ${order[0]}`);
    const healthy = alone ? undefined : cluster.nodes.find((node) => node.name === order[1]);
    return { sick: sick as ClusterNode & { faults: NonNullable<ClusterNode['faults']> }, healthy };
  };

  before(async () => {
    cluster = await startCluster({ nodes: 3, faultProxy: true, agentArgs: ['--publish-debounce', '300ms', '--peer-stall-timeout', STALL_TIMEOUT] });
    await cluster.waitReady();
    hasher = await createHasher();
    [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  });

  after(async () => {
    await cluster?.stop();
  });

  const peerFaults: Array<{ title: string; fault: PeerFault; faultedRequests: boolean }> = [
    { title: 'refuses connections', fault: { kind: 'refuse' }, faultedRequests: false },
    { title: 'resets mid-stream', fault: { kind: 'reset', afterBytes: 1 * MiB }, faultedRequests: true },
    { title: 'stalls mid-stream', fault: { kind: 'stall', afterBytes: 1 * MiB }, faultedRequests: true },
    { title: 'answers 503', fault: { kind: 'status', status: 503 }, faultedRequests: true },
    { title: 'answers 500', fault: { kind: 'status', status: 500 }, faultedRequests: true },
    { title: 'sends bytes that do not match the digest', fault: { kind: 'corrupt', atByte: 1 * MiB + 7 }, faultedRequests: true },
  ];

  for (const [i, { title, fault, faultedRequests }] of peerFaults.entries()) {
    for (const alone of [false, true]) {
      const name = `${fault.kind}-${i}-${alone ? 'alone' : 'pair'}`;
      test(`the peer asked first ${title}; ${alone ? 'nobody else has it: containerd goes upstream' : 'the other holder serves it'}`, async () => {
        const image = await newImage(name);
        const layers = image.layers.map((l) => l.digest);
        const { sick, healthy } = await sickFirst(image, name, alone);
        const sickPod = sick.podName;

        await sick.faults.set(fault);
        sick.faults.resetRequests();
        cluster.upstream.resetCounts();
        // Only what node-3's agent logs from here on counts (its log file spans its restarts).
        const mark = (await n3.agent.logLines()).length;
        try {
          await n3.pull(ref(name));
        } finally {
          await sick.faults.set({ kind: 'none' });
        }
        await assertStored(n3, image);

        if (faultedRequests) {
          const hit = sick.faults.requests().filter((r) => r.fault !== 'none');
          assert.ok(hit.length > 0, `the fault was applied: ${JSON.stringify(sick.faults.requests())}`);
        }
        const lines = (await n3.agent.logLines()).slice(mark);
        assert.ok(lines.some((line) => line.msg === PENALISED && line.peer === sickPod), `${sick.name} was penalised by node-3`);
        if (alone) {
          assert.ok(upstreamGets(cluster, [layers[0] as string]) >= 1, 'containerd fetched the big layer upstream');
        } else {
          assert.equal(upstreamGets(cluster, layers), 0, JSON.stringify(cluster.upstream.counts().requests));
          assert.ok((await peerRequestsFor(healthy as ClusterNode, [layers[0] as string])) >= 1, `${healthy?.name} served the big layer`);
        }
        // Leave node-3 without the image for no one: it is removed so later tests start clean.
        await n3.containerd.ctr(['images', 'rm', '--sync', ref(name)]);
      });
    }
  }

  // Blobs above the hold-back (32 MiB) are streamed with only their last chunk
  // held: a wrong byte is found when the body is over, after the rest went out.
  // containerd must then never store wrong bytes, and a pull may fail once at
  // most: the next one (the kubelet retries) gets the right content. Without
  // the agent's abort of the poisoned ingest, every retry failed the same way
  // (containerd resumed from the wrong bytes it kept).
  for (const alone of [false, true]) {
    test(`the peer asked first corrupts a 40 MiB layer (streamed, not held back); ${alone ? 'nobody else has it' : 'another holder has it'}: nothing wrong is stored, at most one pull fails`, async () => {
      const name = `corrupt-big-${alone ? 'alone' : 'pair'}`;
      const image = await newImage(name, [40 * MiB, 2 * MiB]);
      const { sick } = await sickFirst(image, name, alone);
      await sick.faults.set({ kind: 'corrupt', atByte: 1 * MiB + 7 });
      sick.faults.resetRequests();
      const mark = (await n3.agent.logLines()).length;
      const failures: string[] = [];
      try {
        for (let attempt = 0; attempt < 3; attempt++) {
          try {
            await n3.pull(ref(name));
            break;
          } catch (err) {
            failures.push(err instanceof Error ? err.message.split('\n').slice(-2).join(' ') : String(err));
          }
        }
      } finally {
        await sick.faults.set({ kind: 'none' });
      }
      process.stdout.write(`# corrupt 40 MiB layer (${alone ? 'alone' : 'pair'}): ${failures.length} failed pull(s) ${JSON.stringify(failures)}\n`);
      assert.ok(sick.faults.requests().some((r) => r.fault === 'corrupt'), 'the fault was applied');
      assert.ok(failures.length <= 1, `failed pulls: ${JSON.stringify(failures)}`);
      await assertStored(n3, image);
      const lines = (await n3.agent.logLines()).slice(mark);
      assert.ok(lines.some((line) => line.msg === PENALISED && line.peer === sick.podName), `${sick.name} was penalised by node-3`);
      if (failures.length > 0) {
        // The failed pull left containerd an ingest with wrong bytes; the agent dropped it, so the retry started over.
        assert.ok(lines.some((line) => String(line.msg).startsWith("aborted containerd's ingest") && line.digest === image.layers[0]?.digest), 'the poisoned ingest was aborted');
      }
      await n3.containerd.ctr(['images', 'rm', '--sync', ref(name)]);
    });
  }

  test("SIGTERM to node-3's agent while it streams a blob to containerd: that stream finishes, the rest goes upstream, the agent exits 0", async () => {
    const name = 'sigterm';
    const image = await newImage(name, [24 * MiB, 2 * MiB, 2 * MiB]);
    const big = image.layers[0]?.digest ?? '';
    const { sick } = await sickFirst(image, name, false);
    // The peer asked first stalls after 4 MiB: node-3's stream of the big layer is surely running when the signal comes.
    await sick.faults.set({ kind: 'stall', afterBytes: 4 * MiB });
    sick.faults.resetRequests();
    const agent = n3.agent;
    const mark = (await agent.logLines()).length;
    const pulling = n3.pull(ref(name));
    try {
      await waitFor('the stream from the stalled peer', async () => sick.faults.requests().some((r) => r.fault === 'stall' && r.url.includes(big) && r.bytes === 4 * MiB), 20_000, 5);
      agent.process.kill('SIGTERM');
      assert.equal(await agent.process.exited, 0, 'exit code');
      await pulling;
    } finally {
      await sick.faults.set({ kind: 'none' });
    }
    await assertStored(n3, image);
    const lines = (await agent.logLines()).slice(mark);
    const closed = lines.find((line) => line.msg === 'registry server closed');
    assert.equal(closed?.ending, 'drained', JSON.stringify(closed));
    assert.ok(Number(closed?.connectionsAtStart) >= 1, 'a connection was running when the drain began');
    assert.ok(
      lines.some((line) => line.handler === 'blob' && String(line.url).includes(big) && line.status === 200 && line.source === 'peer'),
      'the running stream of the big layer finished, from the other peer',
    );
    await n3.restartAgent();
    await cluster.waitReady();
    await n3.containerd.ctr(['images', 'rm', '--sync', ref(name)]);
  });

  test('containerd down on node-1: not ready within seconds, peers skip it; back: ready, resynced', async () => {
    const before = await newImage('ctd-down');
    const beforeLayers = before.layers.map((l) => l.digest);
    await holdOn(before, 'ctd-down', [n1]);

    await n1.stopContainerd();
    const stoppedAt = Date.now();
    await waitFor('node-1 to be not ready', async () => cluster.endpoints().some((e) => e.nodeName === 'node-1' && !e.conditions.ready), 5_000, 50);
    const notReadyMs = Date.now() - stoppedAt;
    // node-2's watcher has seen it too once its request does not reach node-1.
    await new Promise((resolve) => setTimeout(resolve, 500));
    n1.faults?.resetRequests();
    const servedBefore = await peerRequestsFor(n1, beforeLayers);
    cluster.upstream.resetCounts();
    await n2.pull(ref('ctd-down'));
    await assertStored(n2, before);
    assert.equal(n1.faults?.requests().length, 0, 'no peer request reached node-1');
    assert.equal(await peerRequestsFor(n1, beforeLayers), servedBefore);
    assert.equal(upstreamGets(cluster, beforeLayers), beforeLayers.length, 'node-2 went upstream');

    await n1.startContainerd();
    const startedAt = Date.now();
    await waitFor('node-1 to be ready again', async () => cluster.endpoints().some((e) => e.nodeName === 'node-1' && e.conditions.ready), 15_000, 50);
    const readyAgainMs = Date.now() - startedAt;
    // Resynced: its event stream is back (a new pull is published) and what it had is still advertised.
    const after = await newImage('ctd-back');
    await holdOn(after, 'ctd-back', [n1]);
    assert.ok(claimants(cluster, hasher, before.manifestDigest).includes('node-1'));
    await waitPeerServes(cluster, n3, 'ctd-back', after.layers[0]?.digest ?? '');
    cluster.upstream.resetCounts();
    await n3.pull(ref('ctd-back'));
    await assertStored(n3, after);
    assert.equal(upstreamGets(cluster, after.layers.map((l) => l.digest)), 0, 'node-3 got it from node-1');
    process.stdout.write(`# containerd down: not ready after ${notReadyMs} ms; back: ready after ${readyAgainMs} ms\n`);
  });

  test('API server answering 429, then 500, with watches dropped: peer pulls keep working, publishes land after', async () => {
    const known = await newImage('api-known');
    await holdOn(known, 'api-known', [n2]);
    await waitPeerServes(cluster, n3, 'api-known', known.layers[0]?.digest ?? '');
    const during = await newImage('api-during');
    const requestsBefore = cluster.api.requests().length;

    cluster.api.faults.failWith(429, 6_000);
    cluster.api.dropWatches();
    const faultStart = Date.now();
    cluster.upstream.resetCounts();
    await n3.pull(ref('api-known'));
    await n1.pull(ref('api-during'));
    assert.equal(upstreamGets(cluster, known.layers.map((l) => l.digest)), 0, 'node-3 got it from node-2 on the last known index');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 6_000 - (Date.now() - faultStart))));
    cluster.api.faults.failWith(500, 5_000);
    cluster.api.dropWatches();
    cluster.upstream.resetCounts();
    await n1.pull(ref('api-known'));
    assert.equal(upstreamGets(cluster, known.layers.map((l) => l.digest)), 0, 'node-1 got it from a peer during the 500s');
    await new Promise((resolve) => setTimeout(resolve, 5_000));

    await waitFor('node-1 to publish what it pulled during the outage', async () => during.layers.every((l) => claimants(cluster, hasher, l.digest).includes('node-1')), 30_000, 200);
    const answered = cluster.api.requests().slice(requestsBefore);
    const rejected = answered.filter((r) => r.status === 429 || r.status === 500);
    assert.ok(rejected.length > 0, 'the agents met the faults');
    // Backoff: three agents over 11 s of faults, not a tight loop.
    assert.ok(rejected.length < 150, `${rejected.length} requests rejected: the agents back off`);
    // node-2's watcher relisted: it now asks node-1 (its new content) instead of the upstream.
    await waitPeerServes(cluster, n2, 'api-during', during.layers[0]?.digest ?? '');
    cluster.upstream.resetCounts();
    await n2.pull(ref('api-during'));
    await assertStored(n2, during);
    assert.equal(upstreamGets(cluster, during.layers.map((l) => l.digest)), 0, 'node-2 got it from node-1');
  });

  test('agent killed and restarted: its annotations are republished and peers use it again', async () => {
    const image = await newImage('restart');
    await holdOn(image, 'restart', [n1]);
    const before = generation(cluster, n1);
    assert.ok(before !== undefined);
    await n1.kill();
    await waitFor('node-1 to be not ready', async () => cluster.endpoints().some((e) => e.nodeName === 'node-1' && !e.conditions.ready), 5_000, 50);
    await n1.restartAgent();
    await cluster.waitReady();
    await waitFor('node-1 to republish', async () => (generation(cluster, n1) ?? 0) > before, 10_000, 100);
    assert.ok(image.layers.every((l) => claimants(cluster, hasher, l.digest).includes('node-1')), 'the same keys are advertised');
    await waitPeerServes(cluster, n3, 'restart', image.layers[0]?.digest ?? '');
    cluster.upstream.resetCounts();
    await n3.pull(ref('restart'));
    await assertStored(n3, image);
    assert.equal(upstreamGets(cluster, image.layers.map((l) => l.digest)), 0, 'node-3 got it from node-1');
    assert.ok((await peerRequestsFor(n1, [image.layers[0]?.digest ?? ''])) >= 1);
  });
});
