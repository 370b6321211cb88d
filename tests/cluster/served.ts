// Waiting until a node's agent serves a blob (a HEAD answered 200): after a
// pull on another node, the agent finds the blob through its peers only once
// the holder's keys reached the shard owners, so tests and benches wait
// for that before they pull or load.
import type { Cluster, ClusterNode } from './cluster.ts';
import { waitFor } from '../support/process.ts';

export interface ServedBlob {
  /** The repository the upstream has it under, e.g. `faults/name`. */
  repository: string;
  digest: string;
}

/** The blob's URL on the node's agent, for the cluster's upstream (the `ns` containerd sends). */
export function blobUrlOn(cluster: Cluster, node: ClusterNode, blob: ServedBlob): string {
  return `${node.agent.url}/v2/${blob.repository}/blobs/${blob.digest}?ns=${encodeURIComponent(cluster.upstream.host)}`;
}

/** Resolves once every node's agent answers a HEAD of the blob with 200 (within 20 s). */
export async function waitUntilServed(cluster: Cluster, nodes: readonly ClusterNode[], blob: ServedBlob): Promise<void> {
  await waitFor(
    `${nodes.map((node) => node.name).join(', ')} to serve ${blob.digest}`,
    async () => {
      for (const node of nodes) {
        const res = await fetch(blobUrlOn(cluster, node, blob), { method: 'HEAD' });
        await res.body?.cancel();
        if (res.status !== 200) return false;
      }
      return true;
    },
    20_000,
    100,
  );
}
