// The metrics endpoint on the 2-node harness with real containerd: node-2
// pulls through its peer, and each agent's /metrics shows the peer traffic it
// caused (node-2: blobs from a peer; node-1: blobs served to a peer) and its
// part in the peer-to-peer index (keys held and pushed to their owners,
// shards owned, lookups).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseExposition, sumSamples, type Exposition } from '../support/exposition.ts';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { INDEX_FAMILIES } from '../support/index-metrics.ts';

const run = promisify(execFile);
const MIRRA = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));
const MiB = 1024 * 1024;

async function scrape(node: ClusterNode): Promise<Exposition> {
  const url = node.agent.metricsUrl;
  assert.ok(url !== undefined, `${node.name} serves metrics`);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return parseExposition(await res.text());
}

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

describe('metrics on two nodes', { timeout: 180_000 }, () => {
  let cluster: Cluster;
  let image: GeneratedImage;

  before(async () => {
    cluster = await startCluster({ nodes: 2, metrics: true });
    await cluster.waitReady();
    image = await generateImage({ dir: join(cluster.dir, 'img'), layers: [1 * MiB, 512 * 1024], seed: 'metrics-e2e' });
    await cluster.upstream.push(image.layoutDir, 'team/metered', 'v1');
  });

  after(async () => {
    await cluster?.stop();
  });

  test('each agent serves its own /metrics on the node IP, not on the registry port', async () => {
    for (const node of cluster.nodes) {
      assert.equal(node.agent.metricsUrl, `http://${node.ip}:${cluster.metricsPort}/metrics`);
      const parsed = await scrape(node);
      assert.ok(
        parsed.samples.some((s) => s.name === 'mirra_nodejs_eventloop_lag_p99_seconds'),
        'event-loop delay',
      );
      for (const family of INDEX_FAMILIES) assert.ok(parsed.types.has(family), `${node.name} declares ${family}`);
      for (const gone of ['mirra_annotation_bytes', 'mirra_summary_false_positive_ratio', 'mirra_summary_degraded_total']) {
        assert.ok(!parsed.types.has(gone), `${gone} went with the summary annotations`);
      }
      assert.equal(sumSamples(parsed, 'mirra_peers', { state: 'known' }), 1, 'the other agent');
      assert.equal(sumSamples(parsed, 'mirra_peers', { state: 'candidate' }), 0, 'known and ready only');
      await waitFor(`${node.name} to own shards`, async () => sumSamples(await scrape(node), 'mirra_index_owned_shards') > 0, 10_000, 100);
      const onRegistry = await fetch(`${node.url}/metrics`);
      assert.equal(onRegistry.status, 404);
      await onRegistry.body?.cancel();
    }
  });

  test('the peer hits of a pull through a peer show on both agents', async () => {
    const [n1, n2] = cluster.nodes;
    assert.ok(n1 && n2);
    const ref = `${cluster.upstream.host}/team/metered:v1`;
    await n1.pull(ref);
    await waitFor('node-1 to advertise the image', async () => (await locate(cluster, image.manifestDigest)).includes('node-1'), 10_000, 200);
    await waitFor('node-2 to see node-1 ready', async () => sumSamples(await scrape(n2), 'mirra_peers', { state: 'ready' }) === 1, 10_000, 100);

    const one = await scrape(n1);
    assert.ok(sumSamples(one, 'mirra_advertised_keys') >= image.layers.length + 3, 'layers, config, manifest and the reference');
    assert.ok(sumSamples(one, 'mirra_index_pushes_total', { result: 'ok' }) > 0, 'node-1 pushed its keys to their owners');
    // 2 agents, 2 owners a shard: node-1 owns every shard and keeps the postings of its own keys.
    await waitFor('node-1 to keep its postings', async () => sumSamples(await scrape(n1), 'mirra_index_postings') >= image.layers.length + 3, 10_000, 200);
    await waitFor('node-1 to publish its status', async () => sumSamples(await scrape(n1), 'mirra_publish_duration_seconds_count') >= 1, 10_000, 200);
    assert.ok(
      sumSamples(one, 'mirra_http_requests_total', { handler: 'blob', source: 'miss', from: 'client' }) >= image.layers.length,
      "node-1's own pull missed",
    );

    cluster.upstream.resetCounts();
    await n2.pull(ref);
    assert.equal(cluster.upstream.counts().blobGets, 0, 'no blob from the upstream');

    const layerBytes = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    const two = await scrape(n2);
    assert.ok(
      sumSamples(two, 'mirra_http_requests_total', { handler: 'blob', status: '200', source: 'peer', from: 'client' }) >= image.layers.length + 1,
      'layers and config from the peer',
    );
    assert.ok(sumSamples(two, 'mirra_http_requests_total', { handler: 'manifest', source: 'peer' }) >= 1);
    assert.equal(sumSamples(two, 'mirra_http_requests_total', { handler: 'blob', source: 'miss' }), 0);
    assert.ok(sumSamples(two, 'mirra_http_response_bytes_total', { handler: 'blob', source: 'peer' }) >= layerBytes);
    assert.ok(sumSamples(two, 'mirra_peer_lookups_total', { result: 'hit' }) >= image.layers.length + 2);
    assert.ok(sumSamples(two, 'mirra_resolve_total', { source: 'peer', result: 'found' }) >= 1, 'the tag resolved through the peer');
    assert.equal(sumSamples(two, 'mirra_peer_digest_mismatches_total'), 0);
    assert.ok(sumSamples(two, 'mirra_index_lookups_total') >= 1, 'node-2 asked the owners who holds the keys');

    // node-2 now holds the image too and pushes its keys to their owners.
    await waitFor('node-2 to push its keys', async () => sumSamples(await scrape(n2), 'mirra_index_pushes_total', { result: 'ok' }) > 0, 10_000, 200);
    const pushed = await scrape(n2);
    assert.ok(sumSamples(pushed, 'mirra_advertised_keys') > 0, 'node-2 holds keys');
    assert.ok(sumSamples(pushed, 'mirra_advertised_keys') >= image.layers.length + 3);

    const served = await scrape(n1);
    assert.ok(
      sumSamples(served, 'mirra_http_requests_total', { handler: 'blob', status: '200', source: 'local', from: 'peer' }) >= image.layers.length + 1,
      'blobs served to the peer',
    );
    assert.ok(sumSamples(served, 'mirra_http_response_bytes_total', { handler: 'blob', source: 'local', from: 'peer' }) >= layerBytes);
  });
});
