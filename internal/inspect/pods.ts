// The agent pods as inspection sees them: name, node, readiness and the
// decoded content summary from their annotations.
import type { KubeClient } from '../kube/client.ts';
import { listResult } from '../kube/watch.ts';
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

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function agentPod(item: unknown): AgentPod {
  const metadata = obj(obj(item)['metadata']);
  const spec = obj(obj(item)['spec']);
  const status = obj(obj(item)['status']);
  const annotations = obj(metadata['annotations']);
  const own: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) if (isSummaryAnnotation(key) && typeof value === 'string') own[key] = value;
  let summary: PeerSummary | undefined;
  let summaryError: string | undefined;
  try {
    summary = decodeSummary(own);
  } catch (err) {
    summaryError = err instanceof Error ? err.message : String(err);
  }
  const conditions = Array.isArray(status['conditions']) ? status['conditions'] : [];
  const updated = annotations[UPDATED_ANNOTATION];
  return {
    name: str(metadata['name']),
    nodeName: str(spec['nodeName']),
    podIP: str(status['podIP']),
    ready: conditions.some((c) => obj(c)['type'] === 'Ready' && obj(c)['status'] === 'True'),
    summaryBytes: annotationBytes(own),
    summary,
    summaryError,
    updated: typeof updated === 'string' ? updated : undefined,
  };
}

export async function listAgentPods(client: KubeClient, namespace: string, labelSelector: string, signal: AbortSignal): Promise<AgentPod[]> {
  const list = listResult(await client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`, { labelSelector }, signal));
  return list.items.map(agentPod).sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.name.localeCompare(b.name));
}
