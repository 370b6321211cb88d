// The Kubernetes objects a real install of mirra has (Namespace, headless
// Service, the DaemonSet's pods, the Service's EndpointSlice), built the way
// the real controllers and the kubelet write them. Pure functions.
import { createHash, randomUUID } from 'node:crypto';

export const APP_NAME = 'mirra';
export const SERVICE_NAME = 'mirra';
export const DAEMONSET_NAME = 'mirra';
export const CONTAINER_NAME = 'registry';
export const PORT_NAME = 'registry';
export const READINESS_PATH = '/readyz';
export const LIVENESS_PATH = '/healthz';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const SLICE_CONTROLLER = 'endpointslice-controller.k8s.io';

/** The selector of the Service and the DaemonSet: `app.kubernetes.io/name=mirra`. */
export const SELECTOR = { 'app.kubernetes.io/name': APP_NAME };
export const LABEL_SELECTOR = `app.kubernetes.io/name=${APP_NAME}`;

/** What a pod needs to know about the DaemonSet that owns it. */
export interface DaemonSetRef {
  uid: string;
  /** The `controller-revision-hash` label of the current template. */
  revisionHash: string;
  templateGeneration: number;
}

export function newDaemonSetRef(templateKey: string): DaemonSetRef {
  const hash = createHash('sha256').update(templateKey).digest('hex');
  // The real hash is a fnv32a rendered as a "safe" string; 10 lowercase hex digits look the same.
  return { uid: randomUUID(), revisionHash: hash.slice(0, 10), templateGeneration: 1 };
}

export function namespaceObject(namespace: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { 'kubernetes.io/metadata.name': namespace } } };
}

export function serviceObject(namespace: string, port: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: SERVICE_NAME, namespace, labels: { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/instance': APP_NAME } },
    spec: {
      clusterIP: 'None',
      clusterIPs: ['None'],
      type: 'ClusterIP',
      selector: { ...SELECTOR },
      ports: [{ name: PORT_NAME, port, targetPort: PORT_NAME, protocol: 'TCP' }],
      publishNotReadyAddresses: false,
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      sessionAffinity: 'None',
    },
    status: { loadBalancer: {} },
  };
}

export interface PodSpecInput {
  namespace: string;
  nodeName: string;
  port: number;
  daemonSet: DaemonSetRef;
}

/** A DaemonSet pod as the DaemonSet controller creates it (generateName `mirra-`), before the kubelet has run it. */
export function podObject(input: PodSpecInput): Record<string, unknown> {
  const { namespace, nodeName, port, daemonSet } = input;
  const fieldEnv = (name: string, fieldPath: string): Record<string, unknown> => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${DAEMONSET_NAME}-`,
      namespace,
      labels: {
        'app.kubernetes.io/name': APP_NAME,
        'app.kubernetes.io/instance': APP_NAME,
        'controller-revision-hash': daemonSet.revisionHash,
        'pod-template-generation': String(daemonSet.templateGeneration),
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: DAEMONSET_NAME, uid: daemonSet.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName,
      serviceAccountName: APP_NAME,
      hostNetwork: true,
      dnsPolicy: 'ClusterFirstWithHostNet',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeName] }] }],
          },
        },
      },
      tolerations: [{ operator: 'Exists' }],
      containers: [
        {
          name: CONTAINER_NAME,
          image: 'mirra:dev',
          args: ['registry', `--registry-addr=:${port}`],
          env: [
            fieldEnv('POD_NAME', 'metadata.name'),
            fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
            fieldEnv('NODE_NAME', 'spec.nodeName'),
            fieldEnv('POD_IP', 'status.podIP'),
          ],
          ports: [{ name: PORT_NAME, containerPort: port, hostPort: port, protocol: 'TCP' }],
          readinessProbe: {
            httpGet: { path: READINESS_PATH, port: PORT_NAME, scheme: 'HTTP' },
            periodSeconds: 1,
            timeoutSeconds: 1,
            successThreshold: 1,
            failureThreshold: 1,
          },
          livenessProbe: { httpGet: { path: LIVENESS_PATH, port: PORT_NAME, scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 },
        },
      ],
    },
  };
}

export interface SliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  nodeName: string;
  zone?: string;
  targetRef: { kind: 'Pod'; name: string; namespace: string; uid: string };
}

export interface SlicePort {
  name: string;
  port: number;
  protocol: 'TCP';
}

export function endpointSliceObject(namespace: string, service: { name: string; uid: string }): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      generateName: `${service.name}-`,
      namespace,
      labels: { [SERVICE_NAME_LABEL]: service.name, [MANAGED_BY_LABEL]: SLICE_CONTROLLER },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service.name, uid: service.uid, controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    endpoints: [],
    ports: [],
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The endpoints of an EndpointSlice object (from the store, kubectl -o json or the API client), validated. */
/** A string field, or '' when it is missing or not a string. */
function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

export function parseSliceEndpoints(slice: unknown): SliceEndpoint[] {
  if (!isRecord(slice)) throw new Error('EndpointSlice: not an object');
  const raw = slice['endpoints'] ?? [];
  if (!Array.isArray(raw)) throw new Error('EndpointSlice: endpoints is not a list');
  return raw.map((item: unknown, i): SliceEndpoint => {
    const where = `EndpointSlice endpoints[${i}]`;
    if (!isRecord(item)) throw new Error(`${where}: not an object`);
    const addresses = item['addresses'];
    const conditions = item['conditions'];
    const targetRef = item['targetRef'];
    if (!Array.isArray(addresses) || !addresses.every((a): a is string => typeof a === 'string')) throw new Error(`${where}: bad addresses`);
    if (!isRecord(conditions)) throw new Error(`${where}: no conditions`);
    if (!isRecord(targetRef) || targetRef['kind'] !== 'Pod') throw new Error(`${where}: targetRef is not a Pod`);
    const endpoint: SliceEndpoint = {
      addresses,
      // A missing condition means unknown; the real controller always sets all three.
      conditions: { ready: conditions['ready'] === true, serving: conditions['serving'] === true, terminating: conditions['terminating'] === true },
      nodeName: str(item['nodeName']),
      targetRef: { kind: 'Pod', name: str(targetRef['name']), namespace: str(targetRef['namespace']), uid: str(targetRef['uid']) },
    };
    if (typeof item['zone'] === 'string') endpoint.zone = item['zone'];
    return endpoint;
  });
}
