// What containerd 2.x does on the wire that 1.x did not, through its CRI
// plugin (the transfer service, as the kubelet pulls on 2.1+), on the 3-node
// harness with a fault proxy in front of every agent:
// - chunked layer fetch (transfer service's concurrent_layer_fetch_buffer):
//   open-ended `Range: bytes=<off>-` requests abandoned after each chunk;
// - only an unexpected EOF mid-body is resumed (with a Range, through the
//   mirror first): a connection reset would fail the whole pull;
// - no response-header timeout: a mirror that never answers hangs the pull;
// - a blob labelled with Content-Encoding is decoded.
// Runs on containerd 2.1 only (MIRRA_CONTAINERD unset or 2.1).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { waitUntilServed } from '../cluster/served.ts';
import type { FaultProxy } from '../cluster/fault-proxy.ts';
import { containerdRelease } from '../support/containerd-release.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { join } from 'node:path';
import { assertStored } from './faults-kit.ts';

const MiB = 1024 * 1024;
/** containerd's chunk on node-2 (the transfer service's concurrent_layer_fetch_buffer). */
const CHUNK_BYTES = 16 * MiB;
/** How long an agent waits for a peer's response headers (the peer source's requestTimeoutMs default). */
const PEER_REQUEST_TIMEOUT_MS = 3000;

const onTwoX = containerdRelease().series === '2.1';

/** Body bytes node-x's agent sent to peers for the digest (its access log). */
async function bytesServedToPeers(node: ClusterNode, digest: string): Promise<number> {
  const lines = await node.agent.accessLines();
  return lines.filter((line) => line.fromPeer === true && String(line.url).includes(digest)).reduce((sum, line) => sum + Number(line.bytesSent ?? 0), 0);
}

/** The access-log lines of containerd's (not a peer's) blob GETs of the digest on the node's agent. */
async function clientGets(node: ClusterNode, digest: string): Promise<Array<Record<string, unknown>>> {
  const lines = await node.agent.accessLines();
  return lines.filter((line) => line.fromPeer !== true && line.method === 'GET' && String(line.url).includes(digest));
}

function upstreamBlobBytes(cluster: Cluster, digest: string): number {
  return cluster.upstream
    .counts()
    .requests.filter((r) => r.kind === 'blob' && r.method === 'GET' && r.path.endsWith(digest))
    .reduce((sum, r) => sum + r.bytes, 0);
}

function faultsOf(node: ClusterNode): FaultProxy {
  assert.ok(node.faults !== undefined, `${node.name} has a fault proxy`);
  return node.faults;
}

describe('containerd 2.1 through its CRI (transfer service)', { skip: onTwoX ? false : 'MIRRA_CONTAINERD is not 2.1', timeout: 600_000 }, () => {
  let cluster: Cluster;
  let seq = 0;
  const ref = (name: string): string => `${cluster.upstream.host}/ctd2/${name}:v1`;

  const newImage = async (name: string, layers: number[]): Promise<GeneratedImage> => {
    const image = await generateImage({ dir: join(cluster.dir, `img-${name}`), layers, seed: `ctd2-${name}-${seq++}` });
    await cluster.upstream.push(image.layoutDir, `ctd2/${name}`, 'v1');
    return image;
  };

  /** node-1 pulls from the upstream, and `puller`'s agent then finds every layer on node-1. */
  const onNodeOne = async (image: GeneratedImage, name: string, puller: ClusterNode): Promise<void> => {
    const [n1] = cluster.nodes;
    assert.ok(n1 !== undefined);
    await n1.pull(ref(name));
    for (const layer of image.layers) await waitUntilServed(cluster, [puller], { repository: `ctd2/${name}`, digest: layer.digest });
    cluster.upstream.resetCounts();
  };

  before(async () => {
    cluster = await startCluster({
      nodes: 3,
      faultProxy: true,
      // What containerd 2.1 does with the agent's streamed answers (cut bodies, ranges, encodings): no redirects.
      agentArgs: ['--peer-redirect-min-size', 'off'],

      // node-2 fetches layers in chunks, as a node with concurrent_layer_fetch_buffer set does.
      pullSettings: (index) => (index === 2 ? { chunkBytes: CHUNK_BYTES, maxConcurrentDownloads: 3 } : undefined),
    });
    await cluster.waitReady();
  });

  after(async () => {
    await cluster?.stop();
  });

  test('chunked fetch of a 256 MiB layer that only a peer has: pulled, peer bytes within 1.1x the layer, nothing upstream', async () => {
    const [, n2] = cluster.nodes;
    assert.ok(n2 !== undefined);
    const image = await newImage('chunked', [256 * MiB, 1 * MiB]);
    await onNodeOne(image, 'chunked', n2);
    const [n1] = cluster.nodes;
    assert.ok(n1 !== undefined);
    const servedBefore = await Promise.all(image.layers.map((layer) => bytesServedToPeers(n1, layer.digest)));

    await n2.pull(ref('chunked'));
    await assertStored(n2, image);
    const big = image.layers[0];
    assert.ok(big !== undefined);
    const peerBytes = (await bytesServedToPeers(n1, big.digest)) - (servedBefore[0] ?? 0);
    const ratio = peerBytes / big.size;
    assert.ok(ratio >= 1 && ratio <= 1.1, `bytes read from the peer / layer size = ${ratio.toFixed(3)} (${peerBytes} of ${big.size})`);
    for (const layer of image.layers) assert.equal(upstreamBlobBytes(cluster, layer.digest), 0, `upstream served none of ${layer.digest}`);
    // containerd was in chunked mode and asked with a Range; the agent's whole answer made it read on sequentially.
    const log = await readFile(n2.containerd.logFile, 'utf8');
    assert.match(log, /remote host ignored content range, forcing parallelism to 1/);
  });

  test('a peer cut mid-blob: containerd sees an unexpected EOF, resumes through the agent with a Range, and the pull completes', async () => {
    const [n1, , n3] = cluster.nodes;
    assert.ok(n1 !== undefined && n3 !== undefined);
    const image = await newImage('cut', [64 * MiB]);
    await onNodeOne(image, 'cut', n3);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    // node-1 is the only holder: its first blob answer is cut with a TCP reset, later ones pass.
    await faultsOf(n1).set({ kind: 'reset', afterBytes: 8 * MiB, times: 1 });
    try {
      await n3.pull(ref('cut'));
    } finally {
      await faultsOf(n1).set({ kind: 'none' });
    }
    await assertStored(n3, image);
    const gets = await clientGets(n3, layer.digest);
    assert.ok(gets.length >= 2, `containerd came back to the agent after the cut: ${JSON.stringify(gets.map((g) => [g.status, g.bytesSent]))}`);
    const first = gets[0];
    assert.ok(first !== undefined && Number(first.bytesSent) < layer.size, 'the first answer ended short');
    assert.equal(upstreamBlobBytes(cluster, layer.digest), 0, 'the rest came through the agent, not from the upstream');
    const log = await readFile(n3.containerd.logFile, 'utf8');
    assert.doesNotMatch(log, /connection reset by peer/);
  });

  test('a peer that accepts and never answers: the agent gives up within its bound, containerd pulls from the upstream', async () => {
    const [n1, , n3] = cluster.nodes;
    assert.ok(n1 !== undefined && n3 !== undefined);
    const image = await newImage('hang', [4 * MiB]);
    await onNodeOne(image, 'hang', n3);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    await faultsOf(n1).set({ kind: 'hang' });
    try {
      await n3.pull(ref('hang'));
    } finally {
      await faultsOf(n1).set({ kind: 'none' });
    }
    await assertStored(n3, image);
    const gets = await clientGets(n3, layer.digest);
    assert.ok(gets.length >= 1);
    for (const get of gets) {
      assert.equal(get.status, 404, 'no peer answered: not here');
      // The peer request timeout plus the hedge to nobody, never an open-ended wait.
      assert.ok(Number(get.latencyMs) < PEER_REQUEST_TIMEOUT_MS + 1500, `held containerd ${String(get.latencyMs)} ms`);
    }
    assert.ok(upstreamBlobBytes(cluster, layer.digest) >= layer.size, 'the upstream served the layer');
    assert.ok(
      faultsOf(n1)
        .requests()
        .some((r) => r.fault === 'hang' && r.url.includes(layer.digest)),
      'the hanging peer was asked',
    );
  });

  test('a peer that labels a layer with Content-Encoding: gzip: the agent sends the bytes unlabelled and containerd stores them as they are', async () => {
    const [n1, , n3] = cluster.nodes;
    assert.ok(n1 !== undefined && n3 !== undefined);
    const image = await newImage('label', [3 * MiB, 40 * MiB]);
    await onNodeOne(image, 'label', n3);
    await faultsOf(n1).set({ kind: 'encoding', value: 'gzip' });
    try {
      await n3.pull(ref('label'));
    } finally {
      await faultsOf(n1).set({ kind: 'none' });
    }
    await assertStored(n3, image);
    for (const layer of image.layers) {
      assert.equal(upstreamBlobBytes(cluster, layer.digest), 0, `${layer.digest} came from the peer`);
      assert.ok(
        faultsOf(n1)
          .requests()
          .some((r) => r.fault === 'encoding' && r.url.includes(layer.digest)),
        'the peer labelled it',
      );
    }
    const url = `${n3.agent.url}/v2/ctd2/label/blobs/${image.layers[0]?.digest ?? ''}?ns=${encodeURIComponent(cluster.upstream.host)}`;
    const res = await fetch(url);
    await res.arrayBuffer();
    assert.equal(res.headers.get('content-encoding'), null);
  });
});
