// The faults e2e tests' shared setup (peer-faults.test.ts, agent-faults.test.ts):
// a 3-node harness with a fault proxy in front of every agent, images made
// per test, and what the tests read back (who holds what, what containerd
// stored, who served whom). Every pull must end with the right content
// (containerd checks every digest on commit; the blob files are hashed again
// here), and none may fail that would have succeeded upstream.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHasher, type Hasher } from '../../internal/routing/hash.ts';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { everyOwnerNames, holdersOf } from '../cluster/holders.ts';
import { waitUntilServed } from '../cluster/served.ts';
import type { FaultProxy } from '../cluster/fault-proxy.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';

export const MiB = 1024 * 1024;
const STALL_TIMEOUT = '1s';
export const PENALISED = 'peer penalised: it goes last for a while';

/** The nodes the index names as holders of the key, in the order `self`'s agent asks them (no zones here). */
export function claimants(cluster: Cluster, hasher: Hasher, key: string, self = '(nobody)'): Promise<string[]> {
  return holdersOf(cluster, hasher, key, self);
}

/** Whether the index names `node` as a holder of every key. */
export async function holdsAll(cluster: Cluster, hasher: Hasher, keys: readonly string[], node: string): Promise<boolean> {
  for (const key of keys) if (!(await claimants(cluster, hasher, key)).includes(node)) return false;
  return true;
}

/** Upstream GETs of these blobs since the last resetCounts(). */
export function upstreamGets(cluster: Cluster, digests: readonly string[]): number {
  return cluster.upstream.counts().requests.filter((r) => r.kind === 'blob' && r.method === 'GET' && digests.some((d) => r.path.endsWith(d))).length;
}

/** What containerd has under the digest, hashed again: the pull stored the right bytes. */
export async function assertStored(node: ClusterNode, image: GeneratedImage): Promise<void> {
  const listed = await node.containerd.ctr(['content', 'ls', '-q']);
  for (const digest of [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)]) {
    assert.ok(listed.includes(digest), `${node.name} has ${digest}`);
    const hex = digest.slice('sha256:'.length);
    const bytes = await readFile(join(node.containerd.contentDir, 'blobs', 'sha256', hex));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `${node.name}: ${digest} is intact`);
  }
}

/** Until the node's agent finds the blob through its peers (its index and directory are in step). */
export async function waitPeerServes(cluster: Cluster, node: ClusterNode, name: string, digest: string): Promise<void> {
  await waitUntilServed(cluster, [node], { repository: `faults/${name}`, digest });
}

export async function peerRequestsFor(node: ClusterNode, digests: readonly string[]): Promise<number> {
  const lines = await node.agent.accessLines();
  return lines.filter((line) => line.fromPeer === true && digests.some((d) => String(line.url).includes(d))).length;
}

export type SickNode = ClusterNode & { faults: FaultProxy };

export interface FaultsHarness {
  cluster: Cluster;
  hasher: Hasher;
  n1: ClusterNode;
  n2: ClusterNode;
  n3: ClusterNode;
  /** The upstream reference of faults/<name>:v1. */
  ref(name: string): string;
  /** A new image (by default 4 MiB + 2 MiB layers), in the upstream as faults/<name>:v1. */
  newImage(name: string, layers?: number[]): Promise<GeneratedImage>;
  /** Pulls on the nodes in turn and waits until each advertises the image. */
  holdOn(image: GeneratedImage, name: string, holders: ClusterNode[]): Promise<void>;
  /**
   * Puts the image on node-1 (and node-2 unless `alone`), restarts node-3's
   * agent (it forgets earlier penalties) and waits until it knows the holders;
   * `sick` is the holder node-3 asks first for the first layer, `healthy` the other.
   */
  sickFirst(image: GeneratedImage, name: string, alone: boolean): Promise<{ sick: SickNode; healthy: ClusterNode | undefined }>;
  stop(): Promise<void>;
}

export async function startFaultsHarness(): Promise<FaultsHarness> {
  // The faults hit the agent's streamed path (stall timeout, resume, digest check, drain): no redirects, which hand
  // the bytes, and these faults, to containerd itself (docs/ARCHITECTURE.md, Redirects).
  const cluster = await startCluster({ nodes: 3, faultProxy: true, agentArgs: ['--peer-stall-timeout', STALL_TIMEOUT, '--peer-redirect-min-size', 'off'] });
  await cluster.waitReady();
  const hasher = await createHasher();
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  let seq = 0;
  const ref = (name: string): string => `${cluster.upstream.host}/faults/${name}:v1`;
  const holdOn = async (image: GeneratedImage, name: string, holders: ClusterNode[]): Promise<void> => {
    for (const node of holders) {
      await node.pull(ref(name));
      await waitFor(
        `${node.name} to advertise ${name}`,
        () =>
          holdsAll(
            cluster,
            hasher,
            image.layers.map((l) => l.digest),
            node.name,
          ),
        10_000,
        100,
      );
    }
  };
  return {
    cluster,
    hasher,
    n1,
    n2,
    n3,
    ref,
    holdOn,
    async newImage(name, layers = [4 * MiB, 2 * MiB]) {
      const image = await generateImage({ dir: join(cluster.dir, `img-${name}`), layers, seed: `faults-${name}-${seq++}` });
      await cluster.upstream.push(image.layoutDir, `faults/${name}`, 'v1');
      return image;
    },
    async sickFirst(image, name, alone) {
      const first = image.layers[0]?.digest ?? '';
      await holdOn(image, name, alone ? [n1] : [n1, n2]);
      await n3.restartAgent();
      await cluster.waitReady();
      const expected = alone ? ['node-1'] : ['node-1', 'node-2'];
      // Both owners of every key of the image know the holders (node-3, restarted, owns shards too and is filled by
      // the others' pushes): a faulted peer that is one owner leaves the other to answer.
      const keys = [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
      await waitFor(
        'every owner to name the holders',
        async () => {
          for (const key of keys) if (!(await everyOwnerNames(cluster, hasher, key, expected))) return false;
          return true;
        },
        15_000,
        100,
      );
      await waitPeerServes(cluster, n3, name, first);
      const order = await claimants(cluster, hasher, first, 'node-3');
      const sick = cluster.nodes.find((node) => node.name === order[0]);
      assert.ok(sick?.faults !== undefined, `first choice ${order[0]}`);
      const healthy = alone ? undefined : cluster.nodes.find((node) => node.name === order[1]);
      return { sick: sick as SickNode, healthy };
    },
    stop: () => cluster.stop(),
  };
}
