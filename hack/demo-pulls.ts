// The demo's pulls, one node after another, each as the kubelet makes it
// (containerd's CRI, registries from the node's hosts.toml: its own agent
// first), timed, with what the pull left behind (every agent's new access-log
// lines, the upstream's requests) turned into where each blob came from. And
// the wait between pulls until the owners of the image's keys name the nodes
// that hold it, as a later pull's agent will ask them.
import type { Cluster, ClusterNode } from '../tests/cluster/cluster.ts';
import { everyOwnerNames } from '../tests/cluster/holders.ts';
import type { Hasher } from '../internal/routing/hash.ts';
import { waitFor } from '../tests/support/process.ts';
import { accessRecord, accountBlob, everyByteAccounted, type AccessRecord, type BlobAccount, type ImageBlob } from './demo-accounting.ts';
import type { PullReport } from './demo-report.ts';

/** What the pulls share. */
export interface PullContext {
  cluster: Cluster;
  hasher: Hasher;
  /** The image reference the nodes pull. */
  ref: string;
  /** Its manifest, config and layers. */
  blobs: readonly ImageBlob[];
}

/** How long the access logs may take to show a finished pull's last bytes (pino writes them a little later). */
const SETTLE_MS = 3000;

async function accessLines(node: ClusterNode): Promise<AccessRecord[]> {
  return (await node.agent.logLines()).flatMap((line) => accessRecord(line) ?? []);
}

async function lineCounts(cluster: Cluster): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const node of cluster.nodes) counts.set(node.name, (await accessLines(node)).length);
  return counts;
}

function nodeOfPod(cluster: Cluster, pod: string): string | undefined {
  return cluster.nodes.find((node) => node.podName === pod)?.name;
}

/** Where the node's blobs came from, by the lines each agent wrote after `before` and the upstream's requests. */
async function accountSince(ctx: PullContext, node: ClusterNode, before: ReadonlyMap<string, number>): Promise<BlobAccount[]> {
  const lines = new Map<string, AccessRecord[]>();
  for (const other of ctx.cluster.nodes) lines.set(other.name, (await accessLines(other)).slice(before.get(other.name) ?? 0));
  const window = { node: node.name, lines, upstream: ctx.cluster.upstream.counts().requests, nodeOfPod: (pod: string) => nodeOfPod(ctx.cluster, pod) };
  return ctx.blobs.map((blob) => accountBlob(window, blob));
}

/** Pulls the image on the node, timed, and accounts for its bytes. */
export async function pullOn(ctx: PullContext, node: ClusterNode): Promise<PullReport> {
  const before = await lineCounts(ctx.cluster);
  ctx.cluster.upstream.resetCounts();
  const start = performance.now();
  await node.pull(ctx.ref);
  const ms = performance.now() - start;
  let accounts = await accountSince(ctx, node, before);
  await waitFor(
    `the access logs to show ${node.name}'s pull`,
    async () => {
      accounts = await accountSince(ctx, node, before);
      return everyByteAccounted(accounts);
    },
    SETTLE_MS,
    50,
  ).catch(() => undefined); // shown as not accounted for
  return { node: node.name, ms, accounts };
}

/**
 * Waits (up to 15 s) until both owners of every key of the image (its reference and digests) name exactly these nodes
 * as holders; resolves with the ms it took, or undefined when they did not in time (the next pull shows what then).
 */
export async function waitForHolders(ctx: PullContext, holders: readonly string[]): Promise<number | undefined> {
  const start = performance.now();
  const keys = [ctx.ref, ...ctx.blobs.map((blob) => blob.digest)];
  const named = async (): Promise<boolean> => {
    for (const key of keys) if (!(await everyOwnerNames(ctx.cluster, ctx.hasher, key, holders))) return false;
    return true;
  };
  return waitFor(`the owners of the image's keys to name ${holders.join(' and ')}`, named, 15_000, 50).then(
    () => performance.now() - start,
    () => undefined,
  );
}
