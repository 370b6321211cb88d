// Cold rollouts on the 3-node harness with real containerd, pulling through
// the CRI as the kubelet does: nodes that start pulling a new image at about
// the same moment make one upstream GET per blob between them (the digest's
// coordinator names one fetcher; the others stream from its ingest as it
// grows), and a fetcher that fails mid-layer (its agent killed, its containerd
// stopped) leaves the others to complete with correct content.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { assertStored } from './faults-kit.ts';

const MiB = 1024 * 1024;
/** The upstream's bandwidth, shared by all connections: a layer takes seconds, so nodes meet mid-layer. */
const UPSTREAM_BYTES_PER_SEC = 20 * 1000 * 1000;

/** Upstream blob GETs per digest since the last reset. */
function blobGetsByDigest(cluster: Cluster): Map<string, number> {
  const gets = new Map<string, number>();
  for (const r of cluster.upstream.counts().requests) {
    if (r.kind !== 'blob' || r.method !== 'GET') continue;
    const digest = r.path.slice(r.path.lastIndexOf('/') + 1);
    gets.set(digest, (gets.get(digest) ?? 0) + 1);
  }
  return gets;
}

/** Body bytes the upstream sent for a digest so far. */
function upstreamBytes(cluster: Cluster, digest: string): number {
  return cluster.upstream
    .counts()
    .requests.filter((r) => r.kind === 'blob' && r.path.endsWith(digest))
    .reduce((sum, r) => sum + r.bytes, 0);
}

/** containerd's blob GETs on a node's agent answered from another node's fetch in progress. */
async function followedGets(node: ClusterNode): Promise<Array<Record<string, unknown>>> {
  return (await node.agent.accessLines()).filter((line) => line.source === 'peer-fetch');
}

describe('cold rollouts: one upstream fetch per blob', { timeout: 600_000 }, () => {
  let cluster: Cluster;
  let seq = 0;
  const ref = (name: string): string => `${cluster.upstream.host}/cold/${name}:v1`;
  const newImage = async (name: string, layers: number[]): Promise<GeneratedImage> => {
    const image = await generateImage({ dir: join(cluster.dir, `img-${name}`), layers, seed: `cold-${name}-${seq++}` });
    await cluster.upstream.push(image.layoutDir, `cold/${name}`, 'v1');
    return image;
  };
  const pullAt = (node: ClusterNode, name: string, delayMs: number): Promise<string> => sleep(delayMs).then(() => node.pull(ref(name)));

  before(async () => {
    cluster = await startCluster({ nodes: 3, upstreamBandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC });
    await cluster.waitReady();
  });

  after(async () => {
    await cluster?.stop();
  });

  test('three nodes start within 100 ms: the upstream sees one GET per blob, every image is correct', async () => {
    const image = await newImage('together', [24 * MiB, 16 * MiB, 8 * MiB, 2 * MiB]);
    cluster.upstream.resetCounts();
    await Promise.all(cluster.nodes.map((node, i) => pullAt(node, 'together', i * 50)));
    const gets = blobGetsByDigest(cluster);
    for (const blob of [image.configDigest, ...image.layers.map((layer) => layer.digest)]) {
      assert.equal(gets.get(blob), 1, `${blob}: ${JSON.stringify([...gets])}`);
    }
    for (const node of cluster.nodes) await assertStored(node, image);
    const followed = (await Promise.all(cluster.nodes.map(followedGets))).flat();
    assert.ok(followed.length >= 2 * image.layers.length, `blob GETs answered from a fetch in progress: ${followed.length}`);
  });

  test('starts spread over 2 s: still one upstream GET per blob', async () => {
    const image = await newImage('spread', [48 * MiB, 8 * MiB, 1 * MiB]);
    cluster.upstream.resetCounts();
    await Promise.all(cluster.nodes.map((node, i) => pullAt(node, 'spread', i * 1000)));
    const gets = blobGetsByDigest(cluster);
    for (const blob of [image.configDigest, ...image.layers.map((layer) => layer.digest)]) {
      assert.equal(gets.get(blob), 1, `${blob}: ${JSON.stringify([...gets])}`);
    }
    for (const node of cluster.nodes) await assertStored(node, image);
  });

  /** Node 1 starts a one-layer image alone, the others follow once its layer is a third in; then `fault` hits node 1. */
  const failingFetcher = async (name: string, fault: (fetcher: ClusterNode) => Promise<void>): Promise<void> => {
    const [n1, n2, n3] = cluster.nodes;
    assert.ok(n1 && n2 && n3);
    const image = await newImage(name, [96 * MiB]);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    cluster.upstream.resetCounts();
    const first = n1.pull(ref(name)).catch((err: unknown) => err);
    await waitFor('node 1 to be fetching the layer', async () => upstreamBytes(cluster, layer.digest) > 8 * MiB, 30_000, 20);
    const others = [n2.pull(ref(name)), n3.pull(ref(name))];
    await waitFor('node 1 a third in', async () => upstreamBytes(cluster, layer.digest) > layer.size / 3, 30_000, 20);
    const fetcher = n1.podName;
    await fault(n1);
    await Promise.all(others);
    await assertStored(n2, image);
    await assertStored(n3, image);
    await first;
    // Both were streaming node 1's fetch when it failed (their first answers were cut short), and resumed elsewhere.
    for (const node of [n2, n3]) {
      const lines = await followedGets(node);
      const cut: Array<Record<string, unknown>> = lines.filter(
        (line) => line.peer === fetcher && String(line.url).endsWith(layer.digest) && line.aborted === true,
      );
      assert.equal(cut.length, 1, `${node.name} streamed the layer from node 1's fetch until the fault`);
    }
  };

  test("the fetching node's agent killed mid-layer: the others complete with correct content", async () => {
    await failingFetcher('agent-killed', (fetcher) => fetcher.kill());
    const [n1] = cluster.nodes;
    assert.ok(n1);
    await n1.restartAgent();
    await cluster.waitReady();
  });

  test("the fetching node's containerd stopped mid-layer: the others complete with correct content", async () => {
    await failingFetcher('containerd-stopped', (fetcher) => fetcher.stopContainerd());
    const [n1] = cluster.nodes;
    assert.ok(n1);
    await n1.startContainerd();
    await cluster.waitReady();
  });
});
