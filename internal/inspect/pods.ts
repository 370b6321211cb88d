// The agent pods as inspection sees them: name, node, readiness and the
// status each agent writes on its own pod (internal/owners/status.ts: keys,
// owned shards, postings), read from the pods' annotations. Nothing routes by
// this status: it is what the agent last said about itself.
import type { KubeClient } from '../kube/client.ts';
import { parsePod, type PodView } from '../kube/objects.ts';
import { listResult } from '../kube/watch.ts';
import { parseStatus, UPDATED_ANNOTATION, type IndexStatus } from '../owners/status.ts';

export interface AgentPod {
  name: string;
  nodeName: string;
  podIP: string;
  /** The pod's Ready condition (membership goes by the endpoint's readiness instead). */
  ready: boolean;
  status: IndexStatus | undefined;
  /** Why there is no readable status, when there is none. */
  statusError: string | undefined;
  updated: string | undefined;
}

function agentPod(pod: PodView): AgentPod {
  const status = parseStatus(pod.annotations);
  return {
    name: pod.name,
    nodeName: pod.nodeName ?? '',
    podIP: pod.podIP ?? '',
    ready: pod.ready,
    status: typeof status === 'string' ? undefined : status,
    statusError: typeof status === 'string' ? status : undefined,
    updated: pod.annotations[UPDATED_ANNOTATION],
  };
}

/** The agents' pods (objects without a name are left out), by node and name. */
export async function listAgentPods(client: KubeClient, namespace: string, labelSelector: string, signal: AbortSignal): Promise<AgentPod[]> {
  const list = listResult(await client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector }, signal));
  return list.items
    .flatMap((item) => parsePod(item) ?? [])
    .map(agentPod)
    .sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.name.localeCompare(b.name));
}
