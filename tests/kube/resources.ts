// The resources the stand-in serves and the parsing of REST paths into
// (resource, namespace, name, subresource).

export interface ResourceDef {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a status subresource: updates of the main resource keep the old status. */
  hasStatus: boolean;
}

export const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], hasStatus: true },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], hasStatus: true },
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], hasStatus: true },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    namespaced: true,
    shortNames: [],
    hasStatus: false,
  },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, shortNames: [], hasStatus: false },
  // Stored as given, with no controller behind them: what an install (helm template | kubectl create) creates.
  {
    group: '',
    version: 'v1',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
    hasStatus: false,
  },
  { group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], hasStatus: false },
  { group: '', version: 'v1', plural: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, shortNames: [], hasStatus: false },
  { group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], hasStatus: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', singular: 'role', kind: 'Role', namespaced: true, shortNames: [], hasStatus: false },
  {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    plural: 'rolebindings',
    singular: 'rolebinding',
    kind: 'RoleBinding',
    namespaced: true,
    shortNames: [],
    hasStatus: false,
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    kind: 'NetworkPolicy',
    namespaced: true,
    shortNames: ['netpol'],
    hasStatus: false,
  },
  // A CRD of the Prometheus Operator, as a cluster that has it installed serves it.
  {
    group: 'monitoring.coreos.com',
    version: 'v1',
    plural: 'servicemonitors',
    singular: 'servicemonitor',
    kind: 'ServiceMonitor',
    namespaced: true,
    shortNames: ['smon'],
    hasStatus: false,
  },
];

export function apiVersionOf(def: ResourceDef): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

/** The resource whose kind and apiVersion are given, e.g. ('Pod', 'v1'). */
export function resourceForKind(kind: string, apiVersion: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
}

export function resourceByPlural(group: string, version: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

export interface ResourcePath {
  def: ResourceDef;
  /** Empty for cluster-scoped resources and for lists across all namespaces. */
  namespace: string;
  name: string;
  subresource: string;
}

export type ParsedPath =
  | { type: 'resource'; path: ResourcePath }
  | { type: 'group-version'; group: string; version: string }
  | { type: 'unknown-resource'; group: string; version: string; plural: string }
  | { type: 'other' };

/** /api/v1/..., /apis/<group>/<version>/...: [namespaces/<ns>/]<plural>[/<name>[/<sub>]]. */
export function parsePath(pathname: string): ParsedPath {
  let parts: string[];
  try {
    parts = pathname
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
  } catch {
    return { type: 'other' }; // malformed percent-encoding: no such resource
  }
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) {
    group = '';
    version = parts[1] ?? '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1] ?? '';
    version = parts[2] ?? '';
    rest = parts.slice(3);
  } else {
    return { type: 'other' };
  }
  if (rest.length === 0) return { type: 'group-version', group, version };
  let namespace = '';
  // namespaces/<ns>/<plural>... is a namespaced path; namespaces[/<name>[/<sub>]] is the Namespace resource.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1] ?? '';
    rest = rest.slice(2);
  }
  const plural = rest[0] ?? '';
  const def = resourceByPlural(group, version, plural);
  if (def === undefined || rest.length > 3) return { type: 'unknown-resource', group, version, plural };
  if (!def.namespaced && namespace !== '') return { type: 'unknown-resource', group, version, plural };
  return { type: 'resource', path: { def, namespace, name: rest[1] ?? '', subresource: rest[2] ?? '' } };
}
