// Checks that rendered objects reference only things that exist: volumes,
// named ports, env vars in $(VAR) args, service accounts, roles, selectors.
// Returns the problems found (empty: consistent).
import { field, isObj, nameOf, objs, stringMap, strs, type Obj } from './helm.ts';

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

interface PodTemplate {
  owner: string;
  namespace: string;
  labels: Record<string, string>;
  spec: Obj;
}

function podTemplates(docs: Obj[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const doc of docs) {
    const owner = `${String(doc['kind'])}/${nameOf(doc)}`;
    const rawNamespace = field(doc, 'metadata', 'namespace');
    const namespace = typeof rawNamespace === 'string' ? rawNamespace : '';
    if (doc['kind'] === 'Pod' && isObj(doc['spec'])) out.push({ owner, namespace, labels: stringMap(field(doc, 'metadata', 'labels')), spec: doc['spec'] });
    const template = field(doc, 'spec', 'template');
    if (['DaemonSet', 'Deployment', 'StatefulSet', 'Job'].includes(String(doc['kind'])) && isObj(template) && isObj(template['spec'])) {
      out.push({ owner, namespace, labels: stringMap(field(template, 'metadata', 'labels')), spec: template['spec'] });
    }
  }
  return out;
}

function containerProblems(pod: PodTemplate, c: Obj, volumes: Set<string>, mounted: Set<string>): string[] {
  const problems: string[] = [];
  const where = `${pod.owner} container ${String(c['name'])}`;
  const ports = new Set(objs(c['ports']).map((p) => (typeof p['name'] === 'string' ? p['name'] : '')));
  for (const m of objs(c['volumeMounts'])) {
    const name = String(m['name']);
    mounted.add(name);
    if (!volumes.has(name)) problems.push(`${where}: volumeMount ${name} names no volume`);
  }
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const port = field(c, probe, 'httpGet', 'port') ?? field(c, probe, 'tcpSocket', 'port');
    if (typeof port === 'string' && !ports.has(port)) problems.push(`${where}: ${probe} port ${port} is not a container port`);
  }
  const env = new Set(objs(c['env']).map((e) => String(e['name'])));
  for (const arg of [...strs(c['command']), ...strs(c['args'])]) {
    for (const ref of arg.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
      if (!env.has(ref[1] ?? '')) problems.push(`${where}: argument ${arg} uses $(${ref[1]}) but the container has no such env var`);
    }
  }
  if (typeof c['image'] !== 'string' || c['image'] === '') problems.push(`${where}: no image`);
  return problems;
}

function podProblems(pod: PodTemplate, docs: Obj[]): string[] {
  const problems: string[] = [];
  const volumes = new Set(objs(pod.spec['volumes']).map((v) => String(v['name'])));
  const mounted = new Set<string>();
  for (const c of [...objs(pod.spec['initContainers']), ...objs(pod.spec['containers'])]) problems.push(...containerProblems(pod, c, volumes, mounted));
  for (const v of volumes) if (!mounted.has(v)) problems.push(`${pod.owner}: volume ${v} is mounted by no container`);
  const sa = pod.spec['serviceAccountName'];
  if (typeof sa === 'string' && !docs.some((d) => d['kind'] === 'ServiceAccount' && nameOf(d) === sa && field(d, 'metadata', 'namespace') === pod.namespace)) {
    problems.push(`${pod.owner}: serviceAccountName ${sa} is not rendered in ${pod.namespace}`);
  }
  return problems;
}

function selectorProblems(docs: Obj[], pods: PodTemplate[]): string[] {
  const problems: string[] = [];
  for (const doc of docs) {
    const id = `${String(doc['kind'])}/${nameOf(doc)}`;
    if (doc['kind'] === 'DaemonSet') {
      const selector = stringMap(field(doc, 'spec', 'selector', 'matchLabels'));
      if (!matches(selector, stringMap(field(doc, 'spec', 'template', 'metadata', 'labels')))) problems.push(`${id}: selector does not match its pod template`);
    }
    if (doc['kind'] === 'Service') {
      const selected = pods.filter((p) => matches(stringMap(field(doc, 'spec', 'selector')), p.labels));
      if (selected.length === 0) problems.push(`${id}: selector matches no pods`);
      for (const port of objs(field(doc, 'spec', 'ports'))) {
        const target = port['targetPort'];
        const named = (p: PodTemplate): boolean => objs(p.spec['containers']).some((c) => objs(c['ports']).some((cp) => cp['name'] === target));
        if (typeof target === 'string' && !selected.every(named)) problems.push(`${id}: targetPort ${target} is not a port of the selected pods`);
      }
    }
    if (doc['kind'] === 'RoleBinding') {
      const role = String(field(doc, 'roleRef', 'name'));
      if (!docs.some((d) => d['kind'] === field(doc, 'roleRef', 'kind') && nameOf(d) === role)) problems.push(`${id}: roleRef ${role} is not rendered`);
      for (const s of objs(field(doc, 'subjects'))) {
        if (!docs.some((d) => d['kind'] === s['kind'] && nameOf(d) === s['name'] && field(d, 'metadata', 'namespace') === s['namespace'])) {
          problems.push(`${id}: subject ${String(s['kind'])}/${String(s['name'])} is not rendered`);
        }
      }
    }
    if (doc['kind'] === 'ServiceMonitor') {
      const services = docs.filter((d) => d['kind'] === 'Service' && matches(stringMap(field(doc, 'spec', 'selector', 'matchLabels')), stringMap(field(d, 'metadata', 'labels'))));
      if (services.length === 0) problems.push(`${id}: selector matches no Service`);
      for (const e of objs(field(doc, 'spec', 'endpoints'))) {
        if (!services.every((s) => objs(field(s, 'spec', 'ports')).some((p) => p['name'] === e['port']))) problems.push(`${id}: endpoint port ${String(e['port'])} is not a Service port`);
      }
    }
    if (doc['kind'] === 'NetworkPolicy') {
      const selected = pods.filter((p) => matches(stringMap(field(doc, 'spec', 'podSelector', 'matchLabels')), p.labels));
      if (selected.length === 0) problems.push(`${id}: podSelector matches no pods`);
      for (const rule of objs(field(doc, 'spec', 'ingress'))) {
        for (const port of objs(rule['ports'])) {
          const named = (p: PodTemplate): boolean => objs(p.spec['containers']).some((c) => objs(c['ports']).some((cp) => cp['name'] === port['port']));
          if (typeof port['port'] === 'string' && !selected.every(named)) problems.push(`${id}: port ${port['port']} is not a port of the selected pods`);
        }
      }
    }
  }
  return problems;
}

export function referenceProblems(docs: Obj[]): string[] {
  const pods = podTemplates(docs);
  return [...pods.flatMap((p) => podProblems(p, docs)), ...selectorProblems(docs, pods)];
}
