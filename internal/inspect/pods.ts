// The agent pods as inspection sees them: name, node, readiness and the
// decoded content summary from their annotations.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { decodeSummary, type PeerSummary } from '../routing/decode.ts';
import { annotationBytes, isSummaryAnnotation, UPDATED_ANNOTATION } from '../routing/annotations.ts';

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

export async function listAgentPods(kubeConfig: KubeConfig, namespace: string, labelSelector: string): Promise<AgentPod[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedPod({ namespace, labelSelector });
  const pods: AgentPod[] = [];
  for (const pod of list.items) {
    const annotations = pod.metadata?.annotations ?? {};
    const own: Record<string, string> = {};
    for (const [key, value] of Object.entries(annotations)) if (isSummaryAnnotation(key)) own[key] = value;
    let summary: PeerSummary | undefined;
    let summaryError: string | undefined;
    try {
      summary = decodeSummary(own);
    } catch (err) {
      summaryError = err instanceof Error ? err.message : String(err);
    }
    pods.push({
      name: pod.metadata?.name ?? '',
      nodeName: pod.spec?.nodeName ?? '',
      podIP: pod.status?.podIP ?? '',
      ready: (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      summaryBytes: annotationBytes(own),
      summary,
      summaryError,
      updated: annotations[UPDATED_ANNOTATION],
    });
  }
  return pods.sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.name.localeCompare(b.name));
}
