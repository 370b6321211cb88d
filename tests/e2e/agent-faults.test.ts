// Faults around the agent on the 3-node harness with real containerd pulls
// (the reliability issue, part 2): SIGTERM mid-stream, containerd down and
// back, API errors (429, 500) with dropped watches, and the agent killed and
// restarted. Shared setup and checks: faults-kit.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Hasher } from '../../internal/routing/hash.ts';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import type { GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { assertStored, claimants, holdsAll, MiB, peerRequestsFor, startFaultsHarness, upstreamGets, waitPeerServes, type FaultsHarness } from './faults-kit.ts';

describe('faults around the agent, on three nodes', { timeout: 420_000 }, () => {
  let h: FaultsHarness;
  let cluster: Cluster;
  let hasher: Hasher;
  let n1: ClusterNode;
  let n2: ClusterNode;
  let n3: ClusterNode;
  const ref = (name: string): string => h.ref(name);
  const newImage = (name: string, layers?: number[]): Promise<GeneratedImage> => h.newImage(name, layers);
  const holdOn = (image: GeneratedImage, name: string, holders: ClusterNode[]): Promise<void> => h.holdOn(image, name, holders);
  const sickFirst = (image: GeneratedImage, name: string, alone: boolean): ReturnType<FaultsHarness['sickFirst']> => h.sickFirst(image, name, alone);

  before(async () => {
    h = await startFaultsHarness();
    ({ cluster, hasher, n1, n2, n3 } = h);
  });

  after(async () => {
    await h?.stop();
  });

  test("SIGTERM to node-3's agent while it streams a blob to containerd: that stream finishes, the rest goes upstream, the agent exits 0", async () => {
    const name = 'sigterm';
    const image = await newImage(name, [24 * MiB, 2 * MiB, 2 * MiB]);
    const big = image.layers[0]?.digest ?? '';
    const { sick } = await sickFirst(image, name, false);
    // The peer asked first stalls after 4 MiB: node-3's stream of the big layer is surely running when the signal comes.
    await sick.faults.set({ kind: 'stall', afterBytes: 4 * MiB });
    const agent = n3.agent;
    const mark = (await agent.logLines()).length;
    const stalled = (): boolean => sick.faults.requests().some((r) => r.fault === 'stall' && r.url.includes(big) && r.bytes === 4 * MiB);
    try {
      // A hedge can let the other holder answer first (a slow first answer on a busy machine): then the
      // stream never touched the stalling peer; the pull is undone and started again (at most 3 times).
      for (let attempt = 1; ; attempt++) {
        sick.faults.resetRequests();
        let settled = false;
        const pulling = n3.pull(ref(name)).finally(() => (settled = true));
        await waitFor('the stream from the stalled peer, or the end of the pull', async () => stalled() || settled, 20_000, 5);
        if (stalled()) {
          agent.process.kill('SIGTERM');
          assert.equal(await agent.process.exited, 0, 'exit code');
          await pulling;
          break;
        }
        await pulling;
        assert.ok(attempt < 3, 'the stalling peer was never the one streaming the big layer');
        await n3.containerd.removeImage(ref(name));
      }
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
    await n3.containerd.removeImage(ref(name));
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
    assert.ok((await claimants(cluster, hasher, before.manifestDigest)).includes('node-1'));
    await waitPeerServes(cluster, n3, 'ctd-back', after.layers[0]?.digest ?? '');
    cluster.upstream.resetCounts();
    await n3.pull(ref('ctd-back'));
    await assertStored(n3, after);
    assert.equal(
      upstreamGets(
        cluster,
        after.layers.map((l) => l.digest),
      ),
      0,
      'node-3 got it from node-1',
    );
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
    assert.equal(
      upstreamGets(
        cluster,
        known.layers.map((l) => l.digest),
      ),
      0,
      'node-3 got it from node-2 on the last known index',
    );
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 6_000 - (Date.now() - faultStart))));
    cluster.api.faults.failWith(500, 5_000);
    cluster.api.dropWatches();
    cluster.upstream.resetCounts();
    await n1.pull(ref('api-known'));
    assert.equal(
      upstreamGets(
        cluster,
        known.layers.map((l) => l.digest),
      ),
      0,
      'node-1 got it from a peer during the 500s',
    );
    await new Promise((resolve) => setTimeout(resolve, 5_000));

    await waitFor(
      'node-1 to publish what it pulled during the outage',
      () =>
        holdsAll(
          cluster,
          hasher,
          during.layers.map((l) => l.digest),
          'node-1',
        ),
      30_000,
      200,
    );
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
    assert.equal(
      upstreamGets(
        cluster,
        during.layers.map((l) => l.digest),
      ),
      0,
      'node-2 got it from node-1',
    );
  });

  test('agent killed and restarted: its keys are pushed to their owners again and peers use it again', async () => {
    const image = await newImage('restart');
    await holdOn(image, 'restart', [n1]);
    await n1.kill();
    await waitFor('node-1 to be not ready', async () => cluster.endpoints().some((e) => e.nodeName === 'node-1' && !e.conditions.ready), 5_000, 50);
    await n1.restartAgent();
    await cluster.waitReady();
    await waitFor(
      'the index to name node-1 again',
      () =>
        holdsAll(
          cluster,
          hasher,
          image.layers.map((l) => l.digest),
          'node-1',
        ),
      10_000,
      100,
    );
    await waitPeerServes(cluster, n3, 'restart', image.layers[0]?.digest ?? '');
    cluster.upstream.resetCounts();
    await n3.pull(ref('restart'));
    await assertStored(n3, image);
    assert.equal(
      upstreamGets(
        cluster,
        image.layers.map((l) => l.digest),
      ),
      0,
      'node-3 got it from node-1',
    );
    assert.ok((await peerRequestsFor(n1, [image.layers[0]?.digest ?? ''])) >= 1);
  });
});
