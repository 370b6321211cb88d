// Faults between peers on the 3-node harness with real containerd pulls (the
// reliability issue, part 1): a fault proxy (tests/cluster/fault-proxy.ts) in
// front of the agent that node-3 asks first refuses, resets, stalls, answers
// 5xx or corrupts bytes. With a healthy second holder the blob comes from it
// (no upstream blob GET); with nobody else, node-3's agent answers 404 before
// sending a byte and containerd goes upstream. The sick peer is penalised.
// Shared setup and checks: faults-kit.ts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import type { PeerFault } from '../cluster/fault-proxy.ts';
import type { GeneratedImage } from '../support/image.ts';
import { assertStored, MiB, PENALISED, peerRequestsFor, startFaultsHarness, upstreamGets, type FaultsHarness } from './faults-kit.ts';

describe('faults between peers, on three nodes', { timeout: 420_000 }, () => {
  let h: FaultsHarness;
  let cluster: Cluster;
  let n3: ClusterNode;
  const ref = (name: string): string => h.ref(name);
  const newImage = (name: string, layers?: number[]): Promise<GeneratedImage> => h.newImage(name, layers);
  const sickFirst = (image: GeneratedImage, name: string, alone: boolean): ReturnType<FaultsHarness['sickFirst']> => h.sickFirst(image, name, alone);

  before(async () => {
    h = await startFaultsHarness();
    ({ cluster, n3 } = h);
  });

  after(async () => {
    await h?.stop();
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
        assert.ok(
          lines.some((line) => line.msg === PENALISED && line.peer === sickPod),
          `${sick.name} was penalised by node-3`,
        );
        if (alone) {
          assert.ok(upstreamGets(cluster, [layers[0] as string]) >= 1, 'containerd fetched the big layer upstream');
        } else {
          assert.equal(upstreamGets(cluster, layers), 0, JSON.stringify(cluster.upstream.counts().requests));
          assert.ok((await peerRequestsFor(healthy as ClusterNode, [layers[0] as string])) >= 1, `${healthy?.name} served the big layer`);
        }
        // Leave node-3 without the image for no one: it is removed so later tests start clean.
        await n3.containerd.removeImage(ref(name));
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
      assert.ok(
        sick.faults.requests().some((r) => r.fault === 'corrupt'),
        'the fault was applied',
      );
      assert.ok(failures.length <= 1, `failed pulls: ${JSON.stringify(failures)}`);
      await assertStored(n3, image);
      const lines = (await n3.agent.logLines()).slice(mark);
      assert.ok(
        lines.some((line) => line.msg === PENALISED && line.peer === sick.podName),
        `${sick.name} was penalised by node-3`,
      );
      if (failures.length > 0) {
        // The failed pull left containerd an ingest with wrong bytes; the agent dropped it, so the retry started over.
        assert.ok(
          lines.some((line) => String(line.msg).startsWith("aborted containerd's ingest") && line.digest === image.layers[0]?.digest),
          'the poisoned ingest was aborted',
        );
      }
      await n3.containerd.removeImage(ref(name));
    });
  }
});
