// The peer-to-peer index on ten nodes, each a real containerd with its own
// agent: pulls find their holders through the shard owners; each pod shows
// the shards it owns; a pod replaced (one agent leaves, another joins) makes
// the holders send only the shards whose owners changed (tested before any
// owner restarts: a restarted owner is rightly sent all of its shards again);
// a first owner killed sends lookups to the second owner at once, and once
// restarted it is filled again within seconds; and with the API stand-in down
// for 30 s, lookups and peer pulls go on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentOwnership } from '../../internal/owners/ownership.ts';
import { OWNER_SHARDS } from '../../internal/owners/protocol.ts';
import { parseStatus } from '../../internal/owners/status.ts';
import { createHasher, type Hasher } from '../../internal/routing/hash.ts';
import { keyNumber, shardOfKey } from '../../internal/routing/owner-store.ts';
import { createRendezvousRanking } from '../../internal/routing/rendezvous.ts';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { askOwner, everyOwnerNames, holdersOf, ownersOf, readyMembers } from '../cluster/holders.ts';
import { blobUrlOn, waitUntilServed } from '../cluster/served.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';

const NODES = 10;
const KiB = 1024;

/** (owner, shard) pairs of a membership, as `owner/shard`. */
function ownershipPairs(hasher: Hasher, members: readonly string[]): Set<string> {
  const table = agentOwnership(createRendezvousRanking(hasher), members);
  const pairs = new Set<string>();
  for (let shard = 0; shard < OWNER_SHARDS; shard++) for (const owner of table.owners(shard)) pairs.add(`${owner}/${shard}`);
  return pairs;
}

function nodeOf(cluster: Cluster, pod: string): ClusterNode {
  const node = cluster.nodes.find((n) => n.podName === pod);
  assert.ok(node !== undefined, `a node runs ${pod}`);
  return node;
}

function upstreamBlobGets(cluster: Cluster, digests: readonly string[]): number {
  return cluster.upstream.counts().requests.filter((r) => r.kind === 'blob' && r.method === 'GET' && digests.some((d) => r.path.endsWith(d))).length;
}

describe('the peer-to-peer index on ten nodes', { timeout: 600_000 }, () => {
  let cluster: Cluster;
  let hasher: Hasher;
  let first: GeneratedImage;
  let second: GeneratedImage;
  const ref = (name: string): string => `${cluster.upstream.host}/owners/${name}:v1`;

  before(async () => {
    hasher = await createHasher();
    cluster = await startCluster({ nodes: NODES, agentArgs: ['--log-level', 'debug', '--status-interval', '1s'] });
    await cluster.waitReady(120_000);
    first = await generateImage({ dir: join(cluster.dir, 'img-first'), layers: [256 * KiB, 128 * KiB, 64 * KiB, 32 * KiB], seed: 'owners-first' });
    second = await generateImage({ dir: join(cluster.dir, 'img-second'), layers: [128 * KiB, 64 * KiB], seed: 'owners-second' });
    await cluster.upstream.push(first.layoutDir, 'owners/first', 'v1');
    await cluster.upstream.push(second.layoutDir, 'owners/second', 'v1');
  });

  after(async () => {
    await cluster?.stop();
  });

  test('a pull on node-1 is found through the owners, and node-5 pulls it from node-1 only', async () => {
    const [n1, , , , n5] = cluster.nodes as ClusterNode[];
    assert.ok(n1 !== undefined && n5 !== undefined);
    await n1.pull(ref('first'));
    const keys = [first.manifestDigest, first.configDigest, ...first.layers.map((l) => l.digest)];
    await waitFor(
      'the owners to name node-1 for every key',
      async () => {
        for (const key of keys) if (!(await holdersOf(cluster, hasher, key)).includes('node-1')) return false;
        return true;
      },
      10_000,
      100,
    );
    cluster.upstream.resetCounts();
    await n5.pull(ref('first'));
    assert.equal(
      upstreamBlobGets(
        cluster,
        first.layers.map((l) => l.digest),
      ),
      0,
      'no layer from the upstream',
    );
    // node-5's keys (the reference and the digests) reach both owners of every shard (the next tests read its pushes as changes that came after).
    await waitFor(
      'both owners of every key to name node-1 and node-5',
      async () => {
        for (const key of [ref('first'), ...keys]) if (!(await everyOwnerNames(cluster, hasher, key, ['node-1', 'node-5']))) return false;
        return true;
      },
      10_000,
      100,
    );
  });

  test('every pod shows its status: the shards it owns by the table the agents compute, and its keys', async () => {
    const table = agentOwnership(createRendezvousRanking(hasher), readyMembers(cluster));
    // Published at most once per --status-interval (1 s here), so a status written before node-1's pull may still show 0 keys.
    await waitFor(
      'every agent to publish its status, node-1 with the keys of the image it pulled',
      async () =>
        cluster.nodes.every((node, i) => {
          const pod = cluster.api.get('Pod', cluster.namespace, node.podName);
          const status = parseStatus((pod?.metadata['annotations'] ?? {}) as Record<string, string>);
          if (typeof status === 'string' || (i === 0 && status.keys === 0)) return false;
          return status.members === NODES && status.owned.join(',') === table.ownedBy(node.podName).join(',');
        }),
      15_000,
      200,
    );
    const n1 = cluster.api.get('Pod', cluster.namespace, cluster.nodes[0]!.podName);
    const status = parseStatus((n1?.metadata['annotations'] ?? {}) as Record<string, string>);
    assert.ok(typeof status !== 'string' && status.keys > 0, 'node-1 counts the keys of the image it pulled');
  });

  test('a pod replaced: the holders push only the shards whose owners changed', async () => {
    const node = cluster.nodes[6]!;
    const members = readyMembers(cluster);
    const before = ownershipPairs(hasher, members);
    const marks = await Promise.all(cluster.nodes.map(async (n) => (await n.agent.logLines()).length));
    const oldPod = node.podName;
    // The old pod leaves first (not ready, then gone), the new one joins after: the shards move twice.
    const between = ownershipPairs(
      hasher,
      members.filter((name) => name !== oldPod),
    );
    await node.replacePod();
    await cluster.waitReady();
    const newPod = node.podName;
    assert.notEqual(newPod, oldPod);
    const afterPairs = ownershipPairs(hasher, readyMembers(cluster));
    const moved = new Set([...between, ...afterPairs].filter((pair) => !before.has(pair)));
    assert.ok(moved.size > 0 && moved.size < afterPairs.size / 2, `${moved.size} of ${afterPairs.size} (owner, shard) pairs moved`);
    // Let the pushes happen, then read what every other holder sent.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const pushed = new Set<string>();
    for (const [i, n] of cluster.nodes.entries()) {
      if (n === node) continue;
      const pushes = (await n.agent.logLines()).slice(marks[i]).filter((line) => line.msg === 'pushing keys to a shard owner');
      for (const push of pushes) {
        const full = push.full as number[];
        for (const shard of full) {
          assert.ok(moved.has(`${String(push.owner)}/${shard}`), `${n.name} pushed shard ${shard} to ${String(push.owner)}, whose ownership did not change`);
          pushed.add(`${n.name}>${String(push.owner)}/${shard}`);
        }
        assert.deepEqual(push.delta, [], `${n.name} sent no delta: its keys did not change`);
      }
    }
    // Every moved shard with keys of the image on node-1 and node-5 went to its new owner from both.
    const imageShards = new Set(
      [first.manifestDigest, first.configDigest, ...first.layers.map((l) => l.digest)].map((key) => shardOfKey(keyNumber(hasher.hash(key)), OWNER_SHARDS)),
    );
    const expected = [...afterPairs].filter((pair) => !before.has(pair) && imageShards.has(Number(pair.split('/')[1])));
    for (const pair of expected) for (const holder of ['node-1', 'node-5']) assert.ok(pushed.has(`${holder}>${pair}`), `${holder} pushed ${pair}`);
    const direct = [...afterPairs].filter((pair) => !before.has(pair)).length;
    console.log(
      `# pod replaced: ${direct} of ${afterPairs.size} (owner, shard) pairs moved (${moved.size} counting the step without the old pod); ${pushed.size} pushed in full by the other holders (${expected.length} of them with the image's keys, from both holders)`,
    );
    // The index still finds node-1 for the image.
    assert.ok((await holdersOf(cluster, hasher, first.manifestDigest)).includes('node-1'));
  });

  test('the first owner killed: lookups go to the second owner at once; restarted, it is filled again within seconds', async () => {
    // A layer whose first owner holds nothing of it, asked for by a node that has not looked it up yet.
    const layer = first.layers.find((l) => !['node-1', 'node-5'].includes(nodeOf(cluster, ownersOf(cluster, hasher, l.digest)[0]!).name));
    assert.ok(layer !== undefined, 'a layer whose first owner is not a holder');
    const [firstOwner, secondOwner] = ownersOf(cluster, hasher, layer.digest);
    assert.ok(firstOwner !== undefined && secondOwner !== undefined);
    const victim = nodeOf(cluster, firstOwner);
    const asker = cluster.nodes.find((n) => !['node-1', 'node-5', victim.name, nodeOf(cluster, secondOwner).name].includes(n.name));
    assert.ok(asker !== undefined);
    await victim.kill();
    const started = Date.now();
    const res = await fetch(blobUrlOn(cluster, asker, { repository: 'owners/first', digest: layer.digest }), { method: 'HEAD' });
    await res.body?.cancel();
    const tookMs = Date.now() - started;
    assert.equal(res.status, 200, `${asker.name} finds the layer with its first owner ${victim.name} dead`);
    assert.ok(tookMs < 1000, `found in ${tookMs} ms`);
    const lines = await asker.agent.logLines();
    assert.ok(
      lines.some((line) => line.msg === 'shard owner did not answer a lookup' && line.owner === firstOwner),
      `${asker.name} asked the dead first owner, then the second`,
    );

    await victim.restartAgent();
    await cluster.waitReady();
    const back = Date.now();
    await waitFor(
      `${victim.name} to be filled again`,
      async () => (await askOwner(cluster, hasher, firstOwner, layer.digest))?.holders.includes(cluster.nodes[0]!.podName) === true,
      5_000,
      50,
    );
    console.log(`# first owner killed: the lookup took ${tookMs} ms; restarted: filled again ${Date.now() - back} ms after ready`);
  });

  test('the API stand-in down for 30 s: lookups and peer pulls go on', async () => {
    const n2 = cluster.nodes[1]!;
    const n9 = cluster.nodes[8]!;
    await n2.pull(ref('second'));
    await waitUntilServed(cluster, [n9], { repository: 'owners/second', digest: second.layers[0]!.digest });
    await cluster.api.stop();
    try {
      await new Promise((resolve) => setTimeout(resolve, 30_000));
      cluster.upstream.resetCounts();
      await n9.pull(ref('second'));
      assert.equal(
        upstreamBlobGets(
          cluster,
          second.layers.map((l) => l.digest),
        ),
        0,
        'node-9 pulled from node-2 with the API down',
      );
      await waitFor(
        'the owners to name node-9 too, with the API down',
        async () => (await holdersOf(cluster, hasher, second.layers[1]!.digest)).includes('node-9'),
        10_000,
        100,
      );
      assert.ok((await holdersOf(cluster, hasher, second.layers[1]!.digest)).includes('node-2'));
    } finally {
      await cluster.api.restart();
    }
  });
});
