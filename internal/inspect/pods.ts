// The agent pods as inspection sees them: name, node, readiness and the
// status each agent writes on its own pod (internal/owners/status.ts: keys,
// owned shards, postings), read from the pods' annotations. Nothing routes by
// this status: it is what the agent last said about itself.
import type { KubeReader } from '../kube/client.ts';
import { parsePod, type PodView } from '../kube/objects.ts';
import { listResult } from '../kube/watch.ts';
import { FIRST_VERSION_STATUS, NO_STATUS_YET, parseStatus, STATUS_ANNOTATION, UPDATED_ANNOTATION, type IndexStatus } from '../owners/status.ts';

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
export async function listAgentPods(client: KubeReader, namespace: string, labelSelector: string, signal: AbortSignal): Promise<AgentPod[]> {
  const list = listResult(await client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector }, signal));
  return list.items
    .flatMap((item) => parsePod(item) ?? [])
    .map(agentPod)
    .sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.name.localeCompare(b.name));
}

/** The fix for a status that cannot be decoded. */
function statusFix(pod: AgentPod, namespace: string): string {
  if (pod.statusError === FIRST_VERSION_STATUS) return 'the agent runs the first version of mirra: upgrade the release, and the new agent writes its status';
  return `written by another version of mirra, or edited by hand: run the agents' version of mirra, or remove it (kubectl annotate pod ${pod.name} -n ${namespace} ${STATUS_ANNOTATION}-) and the agent writes it again at its next change`;
}

/** One line per agent whose status annotations cannot be decoded: which pod, why, and the fix (a pod without a status yet is new, not a fault). */
export function statusNotes(pods: readonly AgentPod[], namespace: string): string[] {
  return pods
    .filter((pod) => pod.statusError !== undefined && pod.statusError !== NO_STATUS_YET)
    .map(
      (pod) =>
        `pod ${pod.name}${pod.nodeName === '' ? '' : ` on ${pod.nodeName}`}: cannot decode its status: ${pod.statusError ?? ''}; ${statusFix(pod, namespace)}`,
    );
}
