// The membership of the peer-to-peer index as inspection sees it: the agents'
// endpoints in the headless Service's EndpointSlices (the same list the agents
// watch, internal/kube/peers.ts), and the ownership table computed from the
// ready ones exactly as every agent computes it (internal/owners/index-node.ts),
// so that `mirra shards` and `mirra locate` agree with the agents without
// asking them who owns what.
import type { KubeReader } from '../kube/client.ts';
import { betterEndpoint, parseSlice, SERVICE_NAME_LABEL, type EndpointView } from '../kube/objects.ts';
import { listResult } from '../kube/watch.ts';
import { agentOwnership, type OwnershipTable } from '../owners/ownership.ts';
import { KUBERNETES_NAME } from '../auth/peer-request.ts';
import type { Hasher } from '../routing/hash.ts';
import { createRendezvousRanking } from '../routing/rendezvous.ts';

/** Each agent's endpoint by pod name: a ready one when the pod has several (dual stack: one per family), as the agents choose. */
export type Endpoints = ReadonlyMap<string, EndpointView>;

/** A Service name (an RFC 1123 name, as the agents' --service-name); throws a one-line reason. */
export function parseServiceName(raw: string): string {
  if (!KUBERNETES_NAME.test(raw)) throw new Error('not a valid Kubernetes name');
  return raw;
}

/** The endpoints of the Service's EndpointSlices, by pod name (endpoints without a Pod target or address are left out). */
export async function listEndpoints(client: KubeReader, namespace: string, serviceName: string, signal: AbortSignal): Promise<Endpoints> {
  const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`;
  const list = listResult(await client.get(path, { labelSelector: `${SERVICE_NAME_LABEL}=${serviceName}` }, signal));
  const byPod = new Map<string, EndpointView>();
  for (const slice of list.items.flatMap((item) => parseSlice(item) ?? [])) {
    for (const endpoint of slice.endpoints) {
      if (betterEndpoint(byPod.get(endpoint.podName), endpoint)) byPod.set(endpoint.podName, endpoint);
    }
  }
  return byPod;
}

/** The members of the index: the pods with a ready endpoint, sorted. */
export function readyMembers(endpoints: Endpoints): string[] {
  return [...endpoints.values()]
    .filter((endpoint) => endpoint.ready)
    .map((endpoint) => endpoint.podName)
    .sort();
}

/** The ownership table of the ready members, as the agents compute it. */
export function ownershipOf(hasher: Hasher, endpoints: Endpoints): OwnershipTable {
  return agentOwnership(createRendezvousRanking(hasher), readyMembers(endpoints));
}
