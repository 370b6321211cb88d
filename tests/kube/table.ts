// Server-side printing: meta.k8s.io/v1 Table answers for kubectl's human
// output (`kubectl get`, `-o wide`, `--watch`), with the columns of the real
// server for the resources the stand-in serves.
import type { KubeObject } from './store.ts';
import type { ResourceDef } from './resources.ts';

interface Column {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

type Cell = string | number;

/** A column; by default a string without a format, priority 0 (shown without -o wide). */
function col(
  name: string,
  description: string,
  { priority = 0, type = 'string', format = '' }: Partial<Pick<Column, 'priority' | 'type' | 'format'>> = {},
): Column {
  return { name, type, format, description, priority };
}

const NAME = col('Name', 'Name must be unique within a namespace.', { format: 'name' });
const AGE = col('Age', 'CreationTimestamp is a timestamp representing the server time when this object was created.');

/** apimachinery's HumanDuration, as `kubectl get` prints AGE. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

function obj(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown, fallback = '<none>'): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}

/** A value in a cell: a string as it is, anything else as JSON. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function age(o: KubeObject): string {
  const timestamp = o.metadata['creationTimestamp'];
  const created = Date.parse(typeof timestamp === 'string' ? timestamp : '');
  return Number.isNaN(created) ? '<unknown>' : humanDuration(Date.now() - created);
}

function podCells(o: KubeObject): Cell[] {
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  const statuses = arr(status['containerStatuses']).map(obj);
  const ready = statuses.filter((c) => c['ready'] === true).length;
  const restarts = statuses.reduce((n, c) => n + (typeof c['restartCount'] === 'number' ? c['restartCount'] : 0), 0);
  let reason = str(status['reason'], str(status['phase'], 'Unknown'));
  for (const c of statuses) {
    const state = obj(c['state']);
    const waiting = obj(state['waiting'])['reason'];
    const terminated = obj(state['terminated'])['reason'];
    if (typeof waiting === 'string' && waiting !== '') reason = waiting;
    else if (typeof terminated === 'string' && terminated !== '') reason = terminated;
  }
  if (o.metadata['deletionTimestamp'] !== undefined) reason = 'Terminating';
  const gates = arr(spec['readinessGates']).length;
  return [
    String(o.metadata['name']),
    `${ready}/${arr(spec['containers']).length}`,
    reason,
    String(restarts),
    age(o),
    str(status['podIP']),
    str(spec['nodeName']),
    str(status['nominatedNodeName']),
    gates === 0 ? '<none>' : `0/${gates}`,
  ];
}

function serviceCells(o: KubeObject): Cell[] {
  const spec = obj(o['spec']);
  const ports = arr(spec['ports'])
    .map(obj)
    .map((p) => `${String(p['port'])}${p['nodePort'] !== undefined ? `:${text(p['nodePort'])}` : ''}/${str(p['protocol'], 'TCP')}`);
  const selector = Object.entries(obj(spec['selector'])).map(([k, v]) => `${k}=${String(v)}`);
  return [
    String(o.metadata['name']),
    str(spec['type'], 'ClusterIP'),
    str(spec['clusterIP']),
    arr(spec['externalIPs']).length > 0 ? arr(spec['externalIPs']).join(',') : '<none>',
    ports.length > 0 ? ports.join(',') : '<none>',
    age(o),
    selector.length > 0 ? selector.join(',') : '<none>',
  ];
}

function endpointSliceCells(o: KubeObject): Cell[] {
  const ports = arr(o['ports'])
    .map((p) => obj(p)['port'])
    .filter((p) => p !== undefined);
  const addresses = arr(o['endpoints']).flatMap((e) => arr(obj(e)['addresses']).map(String));
  let endpoints = addresses.slice(0, 3).join(',');
  if (addresses.length > 3) endpoints += ` + ${addresses.length - 3} more...`;
  return [
    String(o.metadata['name']),
    str(o['addressType'], ''),
    ports.length > 0 ? ports.map(String).join(',') : '<unset>',
    addresses.length > 0 ? endpoints : '<unset>',
    age(o),
  ];
}

const TABLES: Record<string, { columns: Column[]; cells: (o: KubeObject) => Cell[] }> = {
  Pod: {
    columns: [
      NAME,
      col('Ready', 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'The aggregate status of the containers in this pod.'),
      col('Restarts', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      AGE,
      col('IP', 'IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', { priority: 1 }),
      col('Node', 'NodeName is a request to schedule this pod onto a specific node.', { priority: 1 }),
      col('Nominated Node', 'nominatedNodeName is set when this pod preempts other pods on the node.', { priority: 1 }),
      col('Readiness Gates', 'If specified, all readiness gates will be evaluated for pod readiness.', { priority: 1 }),
    ],
    cells: podCells,
  },
  Service: {
    columns: [
      NAME,
      col('Type', 'type determines how the Service is exposed.'),
      col('Cluster-IP', 'clusterIP is the IP address of the service.'),
      col('External-IP', 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.'),
      col('Port(s)', 'The list of ports that are exposed by this service.'),
      AGE,
      col('Selector', 'Route service traffic to pods with label keys and values matching this selector.', { priority: 1 }),
    ],
    cells: serviceCells,
  },
  EndpointSlice: {
    columns: [
      NAME,
      col('AddressType', 'The IP protocol for this slice'),
      col('Ports', 'The ports contained in this slice'),
      col('Endpoints', 'First 3 endpoints of this slice'),
      AGE,
    ],
    cells: endpointSliceCells,
  },
  Namespace: {
    columns: [NAME, col('Status', 'The status of the namespace'), AGE],
    cells: (o) => [String(o.metadata['name']), str(obj(o['status'])['phase'], 'Active'), age(o)],
  },
  Lease: {
    columns: [NAME, col('Holder', 'holderIdentity contains the identity of the holder of a current lease.'), AGE],
    cells: (o) => [String(o.metadata['name']), str(obj(o['spec'])['holderIdentity'], ''), age(o)],
  },
};

/** The real server's default table, for kinds without printer columns of their own. */
const DEFAULT_TABLE = {
  columns: [NAME, col('Created At', 'CreationTimestamp is a timestamp representing the server time when this object was created.', { type: 'date' })],
  cells: (o: KubeObject): Cell[] => [String(o.metadata['name']), str(o.metadata['creationTimestamp'], '<unknown>')],
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

/** A Table of the objects; `resourceVersion` goes in its metadata. Bookmark-like objects (no name) give no rows. */
export function toTable(def: ResourceDef, objects: KubeObject[], resourceVersion: string, include: IncludeObject): Record<string, unknown> {
  const spec = TABLES[def.kind] ?? DEFAULT_TABLE;
  const rows = objects
    .filter((o) => typeof o.metadata['name'] === 'string')
    .map((o) => {
      const row: Record<string, unknown> = { cells: spec.cells(o) };
      if (include === 'Object') row['object'] = o;
      else if (include === 'Metadata') row['object'] = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
      return row;
    });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion }, columnDefinitions: spec.columns, rows };
}

/** Whether an Accept header asks for a meta.k8s.io/v1 Table (kubectl's human output). */
export function wantsTable(accept: string): boolean {
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io') && params.includes('v=v1');
  });
}
