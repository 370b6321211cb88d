// Peer-to-peer on the 3-node harness with real containerd: pulls served by
// peers, a peer killed mid-pull, deletion leaving the index, and an API outage.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCluster, type Cluster } from '../cluster/cluster.ts';
import { waitUntilServed } from '../cluster/served.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';

const run = promisify(execFile);
const MIRRA = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));
const MiB = 1024 * 1024;

async function locate(cluster: Cluster, key: string): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    [MIRRA, 'locate', key, '--kubeconfig', cluster.kubeconfig, '--namespace', cluster.namespace, '--output', 'json'],
    {
      env: { PATH: process.env.PATH },
    },
  );
  const parsed = JSON.parse(stdout) as { agents: Array<{ node: string }> };
  return parsed.agents.map((agent) => agent.node).sort();
}

async function peerLines(cluster: Cluster, nodeIndex: number): Promise<Array<Record<string, unknown>>> {
  const node = cluster.nodes[nodeIndex];
  assert.ok(node !== undefined);
  return (await node.agent.accessLines()).filter((line) => line.source === 'peer');
}

describe('peer-to-peer on three nodes', { timeout: 300_000 }, () => {
  let cluster: Cluster;
  let small: GeneratedImage;
  let big: GeneratedImage;
  let other: GeneratedImage;
  const ref = (name: string): string => `${cluster.upstream.host}/${name}`;

  before(async () => {
    cluster = await startCluster({ nodes: 3 });
    await cluster.waitReady();
    small = await generateImage({ dir: join(cluster.dir, 'img-small'), layers: [1 * MiB, 2 * MiB, 512 * 1024], seed: 'p2p-small' });
    big = await generateImage({ dir: join(cluster.dir, 'img-big'), layers: [100 * MiB, 100 * MiB], seed: 'p2p-big' });
    other = await generateImage({ dir: join(cluster.dir, 'img-other'), layers: [2 * MiB], seed: 'p2p-other' });
    await cluster.upstream.push(small.layoutDir, 'team/small', 'v1');
    await cluster.upstream.push(big.layoutDir, 'team/big', 'v1');
    await cluster.upstream.push(other.layoutDir, 'team/other', 'v1');
  });

  after(async () => {
    await cluster?.stop();
  });

  test('nodes 2 and 3 pull from node 1 and the upstream serves them no blob', async () => {
    const [n1, n2, n3] = cluster.nodes;
    assert.ok(n1 && n2 && n3);
    await n1.pull(ref('team/small:v1'));
    await waitFor('node-1 to advertise the image', async () => (await locate(cluster, small.manifestDigest)).includes('node-1'), 10_000, 200);

    cluster.upstream.resetCounts();
    await n2.pull(ref('team/small:v1'));
    await n3.pull(ref('team/small:v1'));
    const counts = cluster.upstream.counts();
    assert.equal(counts.blobGets, 0, JSON.stringify(counts.requests));

    for (const index of [1, 2]) {
      const lines = await peerLines(cluster, index);
      for (const layer of small.layers) {
        assert.ok(
          lines.some((line) => line.handler === 'blob' && String(line.url).includes(layer.digest) && (line.status === 200 || line.status === 206)),
          `node-${index + 1} got ${layer.digest} from a peer`,
        );
      }
    }
  });

  test('layers of 16 MiB or more are redirected: node 2 answers its containerd 307, node 1 sends the bytes, nothing from the upstream', async () => {
    const [n1, n2] = cluster.nodes;
    assert.ok(n1 && n2);
    await n1.pull(ref('team/big:v1'));
    for (const layer of big.layers) await waitUntilServed(cluster, [n2], { repository: 'team/big', digest: layer.digest });
    cluster.upstream.resetCounts();
    await n2.pull(ref('team/big:v1'));
    assert.equal(cluster.upstream.counts().blobGets, 0, JSON.stringify(cluster.upstream.counts().requests));
    const asked = await n2.agent.accessLines();
    const served = await n1.agent.accessLines();
    for (const layer of big.layers) {
      const mine = asked.filter((line) => line.handler === 'blob' && String(line.url).includes(layer.digest));
      assert.ok(
        mine.some((line) => line.status === 307),
        `node-2 redirected ${layer.digest}: ${JSON.stringify(mine)}`,
      );
      assert.ok(!mine.some((line) => Number(line.bytesSent ?? 0) > 0), 'node-2 moved none of its bytes');
      assert.ok(
        served.some((line) => line.fromPeer === true && String(line.url).includes(layer.digest) && line.status === 200 && line.bytesSent === layer.size),
        `node-1 sent ${layer.digest} whole to node-2's containerd`,
      );
    }
  });

  test('node 1 killed while node 3 pulls a 200 MiB image from it: the pull completes', async () => {
    const [n1, n2, n3] = cluster.nodes;
    assert.ok(n1 && n2 && n3);
    await n1.pull(ref('team/big:v1'));
    await n2.pull(ref('team/big:v1'));
    await waitFor(
      'nodes 1 and 2 to advertise the big image',
      async () => {
        const nodes = await locate(cluster, big.manifestDigest);
        return nodes.includes('node-1') && nodes.includes('node-2');
      },
      10_000,
      200,
    );

    const pulling = n3.pull(ref('team/big:v1'));
    // Kill node 1's agent as soon as it serves node 3 anything.
    await waitFor(
      'node 1 to serve node 3',
      async () => {
        const lines = await n1.agent.logLines();
        return lines.some((line) => typeof line.handler === 'string');
      },
      20_000,
      5,
    ).catch(() => undefined);
    await n1.kill();
    await pulling;
    // containerd verified every digest while pulling; check the image is complete.
    const content = await n3.containerd.ctr(['content', 'ls', '-q']);
    for (const layer of big.layers) assert.ok(content.includes(layer.digest), layer.digest);
    await n1.restartAgent();
    await cluster.waitReady();
  });

  test('an image deleted on node 1 leaves the index within 5 s', async () => {
    const [n1] = cluster.nodes;
    assert.ok(n1);
    await waitFor('node-1 to advertise again after its restart', async () => (await locate(cluster, small.manifestDigest)).includes('node-1'), 10_000, 200);
    await n1.containerd.removeImage(ref('team/small:v1'));
    const start = Date.now();
    await waitFor('node-1 to leave the index', async () => !(await locate(cluster, small.manifestDigest)).includes('node-1'), 5_000, 100);
    assert.ok(Date.now() - start < 5_000);
  });

  test('the API stand-in down for 30 s: peer pulls keep working, agents catch up after', async () => {
    const [n1, n2] = cluster.nodes;
    assert.ok(n1 && n2);
    await n1.pull(ref('team/other:v1'));
    await waitFor('node-1 to advertise the other image', async () => (await locate(cluster, other.manifestDigest)).includes('node-1'), 10_000, 200);

    await cluster.api.stop();
    const outageStart = Date.now();
    cluster.upstream.resetCounts();
    await n2.pull(ref('team/other:v1'));
    assert.equal(cluster.upstream.counts().blobGets, 0, 'served by node-1 on the last known index');
    const remaining = 30_000 - (Date.now() - outageStart);
    if (remaining > 0) await new Promise((resolve) => setTimeout(resolve, remaining));
    await cluster.api.restart();

    await waitFor(
      'node-2 to publish what it pulled during the outage',
      async () => (await locate(cluster, other.manifestDigest)).includes('node-2'),
      30_000,
      250,
    );
  });
});
