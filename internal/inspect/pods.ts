// The agent pods as inspection sees them: name, node, readiness and the
// decoded content summary from their annotations.
import type { KubeClient } from '../kube/client.ts';
import { parsePod, type PodView } from '../kube/objects.ts';
import { listResult } from '../kube/watch.ts';
import { decodeSummary, type PeerSummary } from '../routing/decode.ts';
import { annotationBytes, UPDATED_ANNOTATION } from '../routing/annotations.ts';
import { errorMessage } from '../errors/message.ts';

export interface AgentPod {
  name: string;
  nodeName: string;
  podIP: string;
  ready: boolean;
  /** Bytes of the summary annotations (names and values). */
  summaryBytes: number;
  summary: PeerSummary | undefined;
  /** Why the summary could not be decoded, when it could not. */
  summaryError: string | undefined;
  updated: string | undefined;
}

function agentPod(pod: PodView): AgentPod {
  let summary: PeerSummary | undefined;
  let summaryError: string | undefined;
  try {
    summary = decodeSummary(pod.summary);
  } catch (err) {
    summaryError = errorMessage(err);
  }
  return {
    name: pod.name,
    nodeName: pod.nodeName ?? '',
    podIP: pod.podIP ?? '',
    ready: pod.ready,
    summaryBytes: annotationBytes(pod.summary),
    summary,
    summaryError,
    updated: pod.summary[UPDATED_ANNOTATION],
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
