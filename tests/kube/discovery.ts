// Legacy (unaggregated) discovery documents: /api, /api/v1, /apis,
// /apis/<group>, /apis/<group>/<version>, and /version. kubectl 1.32 asks for
// aggregated discovery first and falls back to these when the answer is plain
// application/json.
import { RESOURCES, type ResourceDef } from './resources.ts';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function groupVersion(def: { group: string; version: string }): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

function apiGroup(group: string): Record<string, unknown> | undefined {
  const defs = RESOURCES.filter((r) => r.group === group);
  const first = defs[0];
  if (group === '' || first === undefined) return undefined;
  const versions = [...new Set(defs.map((d) => d.version))].map((version) => ({ groupVersion: `${group}/${version}`, version }));
  return { name: group, versions, preferredVersion: { groupVersion: `${group}/${first.version}`, version: first.version } };
}

function resourceEntries(def: ResourceDef): Record<string, unknown>[] {
  const main: Record<string, unknown> = {
    name: def.plural,
    singularName: def.singular,
    namespaced: def.namespaced,
    kind: def.kind,
    verbs: def.kind === 'Namespace' ? VERBS.filter((v) => v !== 'deletecollection') : VERBS,
  };
  if (def.shortNames.length > 0) main['shortNames'] = def.shortNames;
  if (def.kind === 'Pod' || def.kind === 'Service') main['categories'] = ['all'];
  const entries = [main];
  if (def.hasStatus)
    entries.push({ name: `${def.plural}/status`, singularName: '', namespaced: def.namespaced, kind: def.kind, verbs: ['get', 'patch', 'update'] });
  return entries;
}

/** The discovery or version document for a path, or undefined when the path is not one. */
export function discoveryDocument(pathname: string, serverAddress: string): unknown {
  const path = pathname.replace(/\/+$/, '');
  if (path === '/api') {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
  }
  if (path === '/apis') {
    const groups = [...new Set(RESOURCES.map((r) => r.group))].map(apiGroup).filter((g) => g !== undefined);
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }
  if (path === '/version') {
    return {
      major: '1',
      minor: '32',
      gitVersion: 'v1.32.0',
      gitCommit: 'mirra-kube-stand-in',
      gitTreeState: 'clean',
      buildDate: '2024-12-11T00:00:00Z',
      goVersion: 'go1.23.3',
      compiler: 'gc',
      platform: 'linux/amd64',
    };
  }
  const group = /^\/apis\/([^/]+)$/.exec(path);
  if (group !== null) {
    const doc = apiGroup(group[1] ?? '');
    return doc === undefined ? undefined : { kind: 'APIGroup', apiVersion: 'v1', ...doc };
  }
  const gv = /^\/api\/(v1)$/.exec(path) ?? /^\/apis\/([^/]+\/[^/]+)$/.exec(path);
  if (gv !== null) {
    const defs = RESOURCES.filter((r) => groupVersion(r) === gv[1]);
    if (defs.length === 0) return undefined;
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv[1], resources: defs.flatMap(resourceEntries) };
  }
  return undefined;
}
