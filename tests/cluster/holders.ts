// Who the peer-to-peer index says holds a key, asked as an agent asks it: the
// ownership table computed from the ready endpoints (the same function the
// agents use), then a GET of the holders from the key's first owner, straight
// to its agent (past any fault proxy). Tests wait on it after a pull, instead
// of guessing how long the pushes take.
import { agentOwnership } from '../../internal/owners/ownership.ts';
import { HOLDERS_PATH, keyHex, OWNER_SHARDS, parseHoldersAnswer, type HoldersAnswer } from '../../internal/owners/protocol.ts';
import type { Hasher } from '../../internal/routing/hash.ts';
import { keyNumber, shardOfKey } from '../../internal/routing/owner-store.ts';
import { createRendezvousRanking } from '../../internal/routing/rendezvous.ts';
import type { Cluster, ClusterNode } from './cluster.ts';

/** The ready agents' pod names, as the EndpointSlice shows them. */
export function readyMembers(cluster: Cluster): string[] {
  return cluster.endpoints().flatMap((e) => (e.conditions.ready && e.targetRef !== undefined ? [e.targetRef.name] : []));
}

/** The owners of a key's shard, first owner first, by pod name. */
export function ownersOf(cluster: Cluster, hasher: Hasher, key: string): readonly string[] {
  const table = agentOwnership(createRendezvousRanking(hasher), readyMembers(cluster));
  return table.owners(shardOfKey(keyNumber(hasher.hash(key)), OWNER_SHARDS));
}

function nodeOfPod(cluster: Cluster, pod: string): ClusterNode | undefined {
  return cluster.nodes.find((node) => {
    try {
      return node.podName === pod;
    } catch {
      return false;
    }
  });
}

/** One owner's answer for a key, or undefined when it did not answer 200. */
export async function askOwner(cluster: Cluster, hasher: Hasher, owner: string, key: string): Promise<HoldersAnswer | undefined> {
  const node = nodeOfPod(cluster, owner);
  if (node === undefined) return undefined;
  const res = await fetch(`${node.agent.url}${HOLDERS_PATH}${keyHex(keyNumber(hasher.hash(key)))}`).catch(() => undefined);
  if (res?.status !== 200) {
    await res?.body?.cancel();
    return undefined;
  }
  return parseHoldersAnswer(await res.json());
}

/** The nodes the first owner names as holders of the key, in its order, without `selfNode`; [] when it does not answer. */
export async function holdersOf(cluster: Cluster, hasher: Hasher, key: string, selfNode = '(nobody)'): Promise<string[]> {
  const [first] = ownersOf(cluster, hasher, key);
  if (first === undefined) return [];
  const answer = await askOwner(cluster, hasher, first, key);
  return (answer?.holders ?? []).flatMap((pod) => {
    const node = nodeOfPod(cluster, pod);
    return node === undefined || node.name === selfNode ? [] : [node.name];
  });
}

/** Whether every owner of the key's shard names exactly these nodes as its holders (so that either owner can answer alone). */
export async function everyOwnerNames(cluster: Cluster, hasher: Hasher, key: string, nodes: readonly string[]): Promise<boolean> {
  const owners = ownersOf(cluster, hasher, key);
  if (owners.length === 0) return false;
  for (const owner of owners) {
    const answer = await askOwner(cluster, hasher, owner, key);
    const named = (answer?.holders ?? []).flatMap((pod) => nodeOfPod(cluster, pod)?.name ?? []);
    if (named.length !== nodes.length || !nodes.every((node) => named.includes(node))) return false;
  }
  return true;
}
