// Peer auth on the 2-node harness (every agent has the cluster's shared secret,
// as the chart sets it up): node 2 pulls through node 1 with signed requests;
// an unsigned, replayed, wrongly keyed or re-targeted peer request to an agent
// gets 401; the agents log that auth is on.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parsePeerKeys } from '../../internal/auth/secret.ts';
import { createPeerSigner } from '../../internal/auth/sign.ts';
import { PEER_REQUEST_HEADER } from '../../internal/auth/peer-request.ts';
import { startCluster, type Cluster } from '../cluster/cluster.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';

async function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  return res.status;
}

describe('peer auth on two nodes', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let image: GeneratedImage;

  before(async () => {
    cluster = await startCluster({ nodes: 2 });
    await cluster.waitReady();
    image = await generateImage({ dir: join(cluster.dir, 'img'), layers: [1024 * 1024, 300 * 1024], seed: 'peer-auth' });
    await cluster.upstream.push(image.layoutDir, 'team/auth', 'v1');
  });

  after(async () => {
    await cluster?.stop();
  });

  test('node 2 pulls from node 1 with signed requests; the upstream serves no blob', async () => {
    const [n1, n2] = cluster.nodes;
    assert.ok(n1 && n2);
    for (const node of [n1, n2]) {
      const started = (await node.agent.logLines()).find((line) => line.msg === 'registry listening');
      assert.equal(started?.peerAuth, 'on', node.name);
      assert.ok(Array.isArray(started?.localClients), `${node.name} is --local-only`);
    }
    const ref = `${cluster.upstream.host}/team/auth:v1`;
    await n1.pull(ref);
    // Node 1 is in node 2's index once a HEAD through node 2 finds the layer (on a peer, with a signed request).
    const first = image.layers[0];
    assert.ok(first !== undefined);
    const headers = { method: 'HEAD' };
    await waitFor(
      'node 2 to find the layer on node 1',
      async () => {
        const res = await fetch(`${n2.url}/v2/team/auth/blobs/${first.digest}?ns=${cluster.upstream.host}`, headers);
        await res.arrayBuffer();
        return res.status === 200;
      },
      10_000,
      200,
    );

    cluster.upstream.resetCounts();
    await n2.pull(ref);
    assert.equal(cluster.upstream.counts().blobGets, 0, JSON.stringify(cluster.upstream.counts().requests));
    const served = (await n1.agent.accessLines()).filter((line) => line.fromPeer === true);
    for (const layer of image.layers) {
      assert.ok(
        served.some((line) => String(line.url).includes(layer.digest) && line.status === 200),
        `node 1 served ${layer.digest} to a peer`,
      );
    }
    assert.ok(!served.some((line) => line.status === 401), 'no signed request was refused');
  });

  test('unsigned, replayed, wrongly keyed and re-targeted peer requests get 401', async () => {
    const [n1] = cluster.nodes;
    assert.ok(n1 && cluster.peerSecretFile !== undefined);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    const path = `/v2/team/auth/blobs/${layer.digest}?ns=${cluster.upstream.host}`;
    assert.equal(await status(`${n1.url}${path}`, { [PEER_REQUEST_HEADER]: '1' }), 401, 'unsigned');

    const keys = parsePeerKeys(await readFile(cluster.peerSecretFile, 'utf8'));
    const sign = createPeerSigner({ key: keys.signing, self: 'a-test-peer' });
    const headers = sign({ method: 'GET', path, audience: n1.podName });
    assert.equal(await status(`${n1.url}${path}`, headers), 200, 'signed');
    assert.equal(await status(`${n1.url}${path}`, headers), 401, 'replayed');
    assert.equal(await status(`${n1.url}${path}`, sign({ method: 'GET', path, audience: 'mirra-another' })), 401, 'for another agent');
    const wrong = createPeerSigner({ key: Buffer.from('not-the-cluster-secret-0123456789'), self: 'a-test-peer' });
    assert.equal(await status(`${n1.url}${path}`, wrong({ method: 'GET', path, audience: n1.podName })), 401, 'wrong key');
  });
});
