// The Kubernetes API's side of discovery, from real objects (bench:apiload,
// bench:scale). Two kinds of write reach watchers:
//
// - an agent's status patch (internal/owners/status.ts): an update of its own
//   pod, sent as the whole pod to every watcher of that pod. No agent
//   watches pods; the watchers are the node's kubelet (field selector on
//   its node) and the control plane's pod informers (controller manager,
//   scheduler): POD_WATCHERS. At most one per agent per --status-interval.
// - a change of an agent's endpoint (ready, not ready, gone, new): an update
//   of one EndpointSlice of the headless Service (up to 100 endpoints each),
//   sent whole to every agent (the members' watch). kube-proxy does not
//   watch it: it leaves out headless Services' slices
//   (service.kubernetes.io/headless).
//
// The reference a run is compared with: a design in which every agent
// watches the agents' pods (the first version's), where each pod update
// goes to all N agents.
import { statusAnnotations, UPDATED_ANNOTATION, type IndexStatus } from '../../internal/owners/status.ts';
import { agentPod } from './pod-fixture.ts';

/** Watchers of one agent pod: its kubelet, the controller manager's and the scheduler's pod informers. */
export const POD_WATCHERS = 3;
/** Endpoints per EndpointSlice at most (the EndpointSlice controller's default, --max-endpoints-per-slice). */
export const ENDPOINTS_PER_SLICE = 100;
/** Slice updates when one agent restarts in a rolling update: the old pod's endpoint leaves, the new one is added not ready, then ready. */
export const SLICE_UPDATES_PER_RESTART = 3;

function eventBytes(object: unknown): number {
  return Buffer.byteLength(`${JSON.stringify({ type: 'MODIFIED', object })}\n`);
}

/** The watch event of an agent pod carrying this status. */
export function statusEventBytes(status: IndexStatus): number {
  return eventBytes(agentPod(0, { ...statusAnnotations(status), [UPDATED_ANNOTATION]: '2026-12-06T08:00:00.000Z' }));
}

function endpoint(i: number): Record<string, unknown> {
  const suffix = (i * 7919).toString(36).padStart(5, 'x').slice(-5);
  return {
    addresses: [`10.1.${Math.floor(i / 250)}.${(i % 250) + 2}`],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: `ip-10-0-${Math.floor(i / 250)}-${i % 250}.eu-west-1.compute.internal`,
    targetRef: { kind: 'Pod', name: `mirra-agent-${suffix}`, namespace: 'mirra-system', uid: `3f0c7a52-9d1e-4b7a-8c2f-${(100000000000 + i).toString(16)}` },
    zone: `eu-west-1${'abc'[i % 3]}`,
  };
}

/** The watch event of a full EndpointSlice of the agents' headless Service. */
export function sliceEventBytes(endpoints = ENDPOINTS_PER_SLICE): number {
  return eventBytes({
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name: 'mirra-agent-7x2kq',
      generateName: 'mirra-agent-',
      namespace: 'mirra-system',
      uid: '9a1c6e3b-5d2f-4c8e-b7a1-2f3e4d5c6b7a',
      resourceVersion: '184467321',
      generation: 412,
      creationTimestamp: '2025-06-01T08:00:00Z',
      labels: {
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        'kubernetes.io/service-name': 'mirra-agent',
        'service.kubernetes.io/headless': '',
        'app.kubernetes.io/name': 'mirra',
      },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-12-06T08:00:00Z' },
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Service', name: 'mirra-agent', uid: '5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c', controller: true, blockOwnerDeletion: true },
      ],
    },
    addressType: 'IPv4',
    endpoints: Array.from({ length: endpoints }, (_, i) => endpoint(i)),
    ports: [{ name: 'registry', protocol: 'TCP', port: 30020 }],
  });
}

export interface WaveEgress {
  /** Status patches: at most one per agent, each to POD_WATCHERS watchers. */
  statusBytes: number;
  /** The reference: the same pod updates sent to every agent (a pod-watching design). */
  podWatchBytes: number;
}

/** The API's watch egress of a rollout wave (every node pulls one new image within a minute): bytes. */
export function waveEgress(n: number, statusEvent: number): WaveEgress {
  return { statusBytes: n * POD_WATCHERS * statusEvent, podWatchBytes: n * n * statusEvent };
}

/** The API's watch egress when one agent restarts: its slice's updates sent to every agent (bytes). */
export function restartEgress(n: number, sliceEvent: number): number {
  return SLICE_UPDATES_PER_RESTART * n * sliceEvent;
}
