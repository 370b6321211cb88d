// The EndpointSlice controller's part for one Service: keeps one EndpointSlice
// (`<service>-<random5>`, labels kubernetes.io/service-name and managed-by) in
// step with the pods the Service selects. It reacts to every Pod or Service
// change in the namespace (through the stand-in's store, also for changes made
// with kubectl), recomputes the endpoints and writes only when they differ.
// Like the real controller: pods without an IP are left out, ready = the pod's
// Ready condition and not terminating, serving = Ready, nodeName from
// spec.nodeName, zone from the node's topology.kubernetes.io/zone (here: a
// lookup, since the stand-in serves no Nodes), targetRef to the pod; a
// deleted pod's endpoint is removed. Endpoints are sorted by node name.
import type { KubeApi } from '../kube/server.ts';
import type { KubeObject } from '../kube/store.ts';
import { endpointSliceObject, PORT_NAME, SERVICE_NAME_LABEL, type SliceEndpoint, type SlicePort } from './objects.ts';

export interface EndpointSliceControllerOptions {
  api: KubeApi;
  namespace: string;
  serviceName: string;
  /** The zone of a node (its topology.kubernetes.io/zone label), if any. */
  zoneOf(nodeName: string): string | undefined;
}

export interface EndpointSliceController {
  /** Name of the managed EndpointSlice. */
  readonly sliceName: string;
  /** Recomputes and writes now (normally it runs by itself on every change). */
  sync(): void;
  stop(): void;
}

function rec(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function matches(labels: Record<string, unknown>, selector: Record<string, unknown>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((key) => labels[key] === selector[key]);
}

function podReady(pod: KubeObject): boolean {
  return arr(rec(pod['status'])['conditions']).some((c) => rec(c)['type'] === 'Ready' && rec(c)['status'] === 'True');
}

function containerPort(pod: KubeObject, portName: string): number | undefined {
  for (const container of arr(rec(pod['spec'])['containers'])) {
    for (const port of arr(rec(container)['ports'])) {
      const p = rec(port);
      if (p['name'] === portName && typeof p['containerPort'] === 'number') return p['containerPort'];
    }
  }
  return undefined;
}

/** The endpoint of a selected pod with an IP. */
function podEndpoint(pod: KubeObject, podIP: string, options: EndpointSliceControllerOptions): SliceEndpoint {
  const rawNodeName = rec(pod['spec'])['nodeName'];
  const nodeName = typeof rawNodeName === 'string' ? rawNodeName : '';
  const terminating = pod.metadata['deletionTimestamp'] !== undefined;
  const ready = podReady(pod);
  const endpoint: SliceEndpoint = {
    addresses: [podIP],
    conditions: { ready: ready && !terminating, serving: ready, terminating },
    nodeName,
    targetRef: { kind: 'Pod', name: String(pod.metadata['name']), namespace: options.namespace, uid: String(pod.metadata['uid']) },
  };
  const zone = options.zoneOf(nodeName);
  if (zone !== undefined) endpoint.zone = zone;
  return endpoint;
}

export function startEndpointSliceController(options: EndpointSliceControllerOptions): EndpointSliceController {
  const { api, namespace, serviceName } = options;
  const service = api.get('Service', namespace, serviceName);
  if (service === undefined) throw new Error(`no Service ${namespace}/${serviceName}`);
  const serviceUid = String(service.metadata['uid']);
  const slice = api.create(endpointSliceObject(namespace, { name: serviceName, uid: serviceUid }));
  const sliceName = String(slice.metadata['name']);
  let scheduled = false;
  let stopped = false;

  function desired(): { endpoints: SliceEndpoint[]; ports: SlicePort[] } {
    const svc = api.get('Service', namespace, serviceName);
    if (svc === undefined) return { endpoints: [], ports: [] };
    const spec = rec(svc['spec']);
    const selector = rec(spec['selector']);
    const svcPort = rec(arr(spec['ports'])[0]);
    const portName = typeof svcPort['name'] === 'string' ? svcPort['name'] : PORT_NAME;
    const targetPort = svcPort['targetPort'];
    let port = typeof targetPort === 'number' ? targetPort : undefined;
    const endpoints: SliceEndpoint[] = [];
    for (const pod of api.list('Pod', namespace)) {
      const status = rec(pod['status']);
      if (!matches(rec(pod.metadata['labels']), selector)) continue;
      if (typeof status['podIP'] !== 'string' || status['podIP'] === '') continue;
      if (status['phase'] === 'Succeeded' || status['phase'] === 'Failed') continue;
      if (port === undefined && typeof targetPort === 'string') port = containerPort(pod, targetPort);
      endpoints.push(podEndpoint(pod, status['podIP'], options));
    }
    endpoints.sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.targetRef.name.localeCompare(b.targetRef.name));
    const fallback = typeof svcPort['port'] === 'number' ? svcPort['port'] : undefined;
    const resolved = port ?? fallback;
    return { endpoints, ports: resolved === undefined ? [] : [{ name: portName, port: resolved, protocol: 'TCP' }] };
  }

  function sync(): void {
    if (stopped) return;
    const want = desired();
    const current = api.get('EndpointSlice', namespace, sliceName);
    if (current === undefined) {
      // Someone deleted it: the controller recreates it (same name here, for simplicity).
      const fresh = endpointSliceObject(namespace, { name: serviceName, uid: serviceUid });
      api.create({ ...fresh, metadata: { ...rec(fresh['metadata']), name: sliceName }, ...want });
      return;
    }
    if (JSON.stringify(current['endpoints']) === JSON.stringify(want.endpoints) && JSON.stringify(current['ports']) === JSON.stringify(want.ports)) return;
    const annotations = {
      ...rec(current.metadata['annotations']),
      'endpoints.kubernetes.io/last-change-trigger-time': new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    api.update({ ...current, metadata: { ...current.metadata, annotations }, ...want });
  }

  const unsubscribe = api.store.subscribe((event) => {
    if (stopped || scheduled) return;
    const kind = event.def.kind;
    if (kind !== 'Pod' && kind !== 'Service' && kind !== 'EndpointSlice') return;
    if (event.object.metadata['namespace'] !== namespace) return;
    if (kind === 'EndpointSlice' && (event.type !== 'DELETED' || rec(event.object.metadata['labels'])[SERVICE_NAME_LABEL] !== serviceName)) return;
    // Listeners run inside the store's write: write our own change right after it.
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      try {
        sync();
      } catch (err) {
        process.stderr.write(`endpointslice controller: sync of ${namespace}/${sliceName} failed: ${String(err)}\n`);
      }
    });
  });
  sync();

  return {
    sliceName,
    sync,
    stop() {
      stopped = true;
      unsubscribe();
    },
  };
}
