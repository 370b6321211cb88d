// The Helm chart, rendered by the real helm 3: lint, default values, a Spegel
// user's values file, every option on; the objects parse, reference only what
// exists, ask for the least RBAC, pass the agent flags the agent accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentFlags } from '../../internal/config/agent-flags.ts';
import { cleanupFlags, configureFlags } from '../../internal/config/configure-flags.ts';
import { parseFlags } from '../../internal/config/flags.ts';
import { CHART, container, field, find, helm, objs, renderChart, SPEGEL_VALUES, stringMap, strs, type Obj } from './helm.ts';
import { referenceProblems } from './references.ts';

function agentArgs(docs: Obj[], name = 'mirra'): string[] {
  return strs(container(field(find(docs, 'DaemonSet', name), 'spec', 'template', 'spec'), 'registry')['args']);
}

function configureArgs(docs: Obj[], name = 'mirra'): string[] {
  return strs(container(field(find(docs, 'DaemonSet', name), 'spec', 'template', 'spec'), 'configure', true)['args']);
}

function flagValue(args: string[], flag: string): string | undefined {
  const arg = args.find((a) => a.startsWith(`--${flag}=`));
  return arg?.slice(flag.length + 3);
}

test('helm lint passes with the default values and with a Spegel values file', async () => {
  for (const extra of [[], ['--values', SPEGEL_VALUES], ['--set', 'networkPolicy.enabled=true,serviceMonitor.enabled=true,grafanaDashboard.enabled=true']]) {
    const result = await helm(['lint', '--strict', CHART, ...extra]);
    assert.equal(result.code, 0, `helm lint ${extra.join(' ')}: ${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('default values: the objects of an install, consistent with each other', async () => {
  const { docs } = await renderChart();
  const kinds = docs.map((d) => `${String(d['kind'])}/${String(field(d, 'metadata', 'name'))}`).sort();
  assert.deepEqual(kinds, [
    'DaemonSet/mirra',
    'DaemonSet/mirra-cleanup',
    'Pod/mirra-cleanup-wait',
    'Role/mirra',
    'Role/mirra-cleanup',
    'RoleBinding/mirra',
    'RoleBinding/mirra-cleanup',
    'Secret/mirra-peer-auth',
    'Service/mirra',
    'ServiceAccount/mirra',
    'ServiceAccount/mirra-cleanup',
  ]);
  assert.deepEqual(referenceProblems(docs), []);
  for (const doc of docs) assert.equal(field(doc, 'metadata', 'namespace'), 'mirra', `${String(doc['kind'])} namespace`);
  assert.ok(!docs.some((d) => String(d['kind']).startsWith('Cluster')), 'no cluster-scoped RBAC');

  const ds = find(docs, 'DaemonSet', 'mirra');
  const pod = field(ds, 'spec', 'template', 'spec');
  const agent = container(pod, 'registry');
  const port = objs(agent['ports']).find((p) => p['name'] === 'registry');
  assert.deepEqual(port, { name: 'registry', containerPort: 5000, hostPort: 30020, protocol: 'TCP' });
  assert.equal(field(agent, 'readinessProbe', 'httpGet', 'path'), '/readyz');
  assert.equal(field(agent, 'livenessProbe', 'httpGet', 'path'), '/healthz');
  const fromFields = objs(agent['env']).filter((e) => e['valueFrom'] !== undefined);
  const env = Object.fromEntries(fromFields.map((e) => [String(e['name']), field(e, 'valueFrom', 'fieldRef', 'fieldPath')]));
  assert.deepEqual(env, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', NODE_NAME: 'spec.nodeName', POD_IP: 'status.podIP', NODE_IP: 'status.hostIP' });
  // V8 sized for the memory limit (npm run bench:load), and a grace period above the agent's own (--shutdown-grace).
  assert.equal(objs(agent['env']).find((e) => e['name'] === 'NODE_OPTIONS')?.['value'], '--max-semi-space-size=4 --max-old-space-size=128 --expose-gc');
  assert.equal(field(pod, 'terminationGracePeriodSeconds'), 30);
  const mounts = Object.fromEntries(objs(agent['volumeMounts']).map((m) => [String(m['mountPath']), m['readOnly'] === true]));
  assert.deepEqual(mounts, {
    '/run/containerd/containerd.sock': false,
    '/var/lib/containerd/io.containerd.content.v1.content': true,
    '/etc/containerd': true,
    '/etc/mirra/peer-auth': true,
  });
  const hostPaths = Object.fromEntries(objs(field(pod, 'volumes')).map((v) => [String(v['name']), field(v, 'hostPath', 'path')]));
  assert.equal(hostPaths['containerd-registry-config'], '/etc/containerd/certs.d');
  assert.equal(field(pod, 'priorityClassName'), 'system-node-critical');
  assert.equal(objs(field(pod, 'tolerations')).length, 3);
  assert.equal(field(ds, 'spec', 'updateStrategy', 'rollingUpdate', 'maxSurge'), 0);

  // The agent finds its peers in the headless Service's EndpointSlices: the Service selects exactly the agent pods.
  const args = agentArgs(docs);
  const podLabels = stringMap(field(ds, 'spec', 'template', 'metadata', 'labels'));
  const service = find(docs, 'Service', 'mirra');
  assert.deepEqual(stringMap(field(service, 'spec', 'selector')), podLabels);
  assert.equal(flagValue(args, 'service-name'), 'mirra');
  assert.equal(field(service, 'spec', 'clusterIP'), 'None');
  assert.equal(flagValue(args, 'registry-addr'), ':5000');
  assert.equal(flagValue(args, 'metrics-addr'), ':9090');
  assert.equal(flagValue(args, 'containerd-config-path'), '/etc/containerd/config.toml');

  // containerd on the node reaches its agent on the node IP and the hostPort.
  const configure = configureArgs(docs);
  assert.equal(configure[0], 'configure');
  assert.equal(flagValue(configure, 'mirror-targets'), 'http://$(NODE_IP):30020');
  assert.equal(flagValue(configure, 'containerd-registry-config-path'), '/etc/containerd/certs.d');
  assert.equal(flagValue(configure, 'mirrored-registries'), undefined, 'empty means all registries');
  const cleanup = container(field(find(docs, 'DaemonSet', 'mirra-cleanup'), 'spec', 'template', 'spec'), 'cleanup', true);
  assert.deepEqual(strs(cleanup['args']), ['cleanup', '--containerd-registry-config-path=/etc/containerd/certs.d']);
  assert.equal(field(find(docs, 'DaemonSet', 'mirra-cleanup'), 'metadata', 'annotations', 'helm.sh/hook'), 'post-delete');
});

test('the agent Role: exactly pods get/patch (its own status) and endpointslices get/list/watch (no pod watch)', async () => {
  const { docs } = await renderChart();
  const rules = objs(field(find(docs, 'Role', 'mirra'), 'rules')).map((r) => ({ apiGroups: strs(r['apiGroups']), resources: strs(r['resources']), verbs: strs(r['verbs']).sort() }));
  assert.deepEqual(rules, [
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'patch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
  ]);
  const binding = find(docs, 'RoleBinding', 'mirra');
  assert.deepEqual(objs(binding['subjects']), [{ kind: 'ServiceAccount', name: 'mirra', namespace: 'mirra' }]);
  const cleanupRules = objs(field(find(docs, 'Role', 'mirra-cleanup'), 'rules'));
  assert.deepEqual(cleanupRules, [{ apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['mirra-cleanup'], verbs: ['get'] }]);
});

test('the agent, configure and cleanup accept the flags the chart gives them', async () => {
  for (const valuesFiles of [[], [SPEGEL_VALUES]]) {
    const { docs } = await renderChart({ valuesFiles });
    const args = agentArgs(docs);
    assert.equal(args[0], 'registry');
    const env = { POD_NAME: 'mirra-abcde', POD_NAMESPACE: 'mirra', NODE_NAME: 'node-1' };
    const agent = parseFlags(agentFlags, args.slice(1), env);
    assert.deepEqual(agent.positionals, []);
    assert.equal(agent.values.serviceName, 'mirra');
    assert.equal(agent.values.registryAddr.port, 5000);
    assert.equal(agent.values.preflight, true);
    assert.equal(agent.values.shutdownGraceMs, 20_000);
    if (valuesFiles.length > 0) assert.deepEqual(agent.values.mirroredRegistries, ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);

    // The kubelet expands $(NODE_IP) from the container's env.
    const configure = configureArgs(docs).map((a) => a.replaceAll('$(NODE_IP)', '10.0.0.5'));
    assert.equal(configure[0], 'configure');
    const parsed = parseFlags(configureFlags, configure.slice(1), {});
    assert.deepEqual(parsed.positionals, []);
    assert.equal(parsed.values.mirrorTargets[0], `http://10.0.0.5:${valuesFiles.length > 0 ? 30021 : 30020}`);
    assert.equal(parsed.values.mirroredRegistries.length, valuesFiles.length > 0 ? 4 : 0);

    const cleanup = strs(container(field(find(docs, 'DaemonSet', 'mirra-cleanup'), 'spec', 'template', 'spec'), 'cleanup', true)['args']);
    assert.equal(cleanup[0], 'cleanup');
    assert.deepEqual(parseFlags(cleanupFlags, cleanup.slice(1), {}).positionals, []);
  }
});

test('a Spegel values file carries over', async () => {
  const { docs } = await renderChart({ valuesFiles: [SPEGEL_VALUES], namespace: 'kube-system' });
  assert.deepEqual(referenceProblems(docs), []);
  const args = agentArgs(docs);
  assert.equal(flagValue(args, 'containerd-sock'), '/run/k3s/containerd/containerd.sock');
  assert.equal(flagValue(args, 'containerd-content-path'), '/var/lib/rancher/k3s/agent/containerd/io.containerd.content.v1.content');
  assert.equal(flagValue(args, 'containerd-config-path'), '/var/lib/rancher/k3s/agent/etc/containerd/config.toml');
  assert.equal(flagValue(args, 'containerd-namespace'), 'k8s.io');
  assert.equal(flagValue(args, 'resolve-tags'), 'false');
  assert.equal(flagValue(args, 'log-level'), 'info');
  assert.equal(flagValue(args, 'metrics-addr'), ':9091');
  assert.equal(flagValue(args, 'mirrored-registries'), 'https://docker.io,https://ghcr.io,https://quay.io,https://registry.k8s.io');
  const configure = configureArgs(docs);
  assert.equal(flagValue(configure, 'containerd-registry-config-path'), '/var/lib/rancher/k3s/agent/etc/containerd/certs.d');
  assert.equal(flagValue(configure, 'mirror-targets'), 'http://$(NODE_IP):30021,https://mirror.internal.example.com');
  assert.equal(flagValue(configure, 'prepend-existing'), 'true');
  assert.equal(flagValue(configure, 'resolve-tags'), 'false');

  const ds = find(docs, 'DaemonSet', 'mirra');
  assert.equal(field(ds, 'metadata', 'annotations', 'owner'), 'platform-team');
  assert.equal(field(ds, 'spec', 'revisionHistoryLimit'), 5);
  assert.equal(field(ds, 'spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable'), 2);
  assert.equal(field(ds, 'spec', 'template', 'metadata', 'annotations', 'cluster-autoscaler.kubernetes.io/safe-to-evict'), 'true');
  assert.equal(field(ds, 'spec', 'template', 'metadata', 'labels', 'team'), 'platform');
  assert.deepEqual(field(ds, 'spec', 'template', 'spec', 'imagePullSecrets'), [{ name: 'registry-credentials' }]);
  assert.equal(objs(field(ds, 'spec', 'template', 'spec', 'tolerations')).length, 4);
  assert.equal(field(container(field(ds, 'spec', 'template', 'spec'), 'registry'), 'resources', 'requests', 'memory'), '256Mi');

  const monitor = find(docs, 'ServiceMonitor', 'mirra');
  assert.equal(field(monitor, 'metadata', 'labels', 'release'), 'kube-prometheus-stack');
  assert.equal(field(objs(field(monitor, 'spec', 'endpoints'))[0], 'interval'), '30s');
  const dashboard = find(docs, 'ConfigMap', 'mirra-dashboard');
  assert.equal(field(dashboard, 'metadata', 'labels', 'grafana_dashboard'), '1');
  assert.equal(field(dashboard, 'metadata', 'annotations', 'grafana_folder'), 'Infrastructure');
  const json: unknown = JSON.parse(String(field(dashboard, 'data', 'mirra.json')));
  assert.ok(objs(field(json, 'panels')).length > 0);
});

test('every option on: GrafanaOperator dashboard, NetworkPolicy, digest, no configure', async () => {
  const set = [
    'networkPolicy.enabled=true',
    'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring',
    'grafanaDashboard.enabled=true',
    'grafanaDashboard.mode=GrafanaOperator',
    'image.digest=sha256:' + 'a'.repeat(64),
    'mirra.containerdMirrorAdd=false',
    'livenessProbe.enabled=false',
    'fullnameOverride=p2p',
    'serviceAccount.name=agent',
  ];
  const { docs } = await renderChart({ set });
  assert.deepEqual(referenceProblems(docs), []);
  const ds = find(docs, 'DaemonSet', 'p2p');
  const pod = field(ds, 'spec', 'template', 'spec');
  assert.equal(field(pod, 'initContainers'), undefined);
  assert.equal(field(pod, 'serviceAccountName'), 'agent');
  assert.equal(container(pod, 'registry')['image'], `ghcr.io/example-org/mirra@sha256:${'a'.repeat(64)}`);
  assert.equal(container(pod, 'registry')['livenessProbe'], undefined);
  assert.ok(!docs.some((d) => d['kind'] === 'DaemonSet' && field(d, 'metadata', 'name') === 'p2p-cleanup'), 'no cleanup without configure');
  assert.equal(field(find(docs, 'GrafanaDashboard', 'p2p'), 'spec', 'resyncPeriod'), '10m');
  const policy = find(docs, 'NetworkPolicy', 'p2p');
  assert.deepEqual(strs(field(policy, 'spec', 'policyTypes')), ['Ingress']);
  assert.equal(objs(field(policy, 'spec', 'ingress')).length, 2);
});

test('peer auth: a random key in a Secret, mounted read-only, given to the agent; --local-only with NODE_IP', async () => {
  const first = await renderChart();
  const second = await renderChart();
  const keyOf = (docs: Obj[]): string => Buffer.from(String(field(find(docs, 'Secret', 'mirra-peer-auth'), 'data', 'peer-secret')), 'base64').toString();
  assert.match(keyOf(first.docs), /^[A-Za-z0-9]{48}$/);
  assert.notEqual(keyOf(first.docs), keyOf(second.docs), 'random per install (kept across upgrades by lookup)');
  const pod = field(find(first.docs, 'DaemonSet', 'mirra'), 'spec', 'template', 'spec');
  const volume = objs(field(pod, 'volumes')).find((v) => v['name'] === 'peer-auth');
  assert.deepEqual(field(volume, 'secret', 'secretName'), 'mirra-peer-auth');
  const args = agentArgs(first.docs);
  assert.equal(flagValue(args, 'peer-secret-file'), '/etc/mirra/peer-auth/peer-secret');
  assert.equal(flagValue(args, 'local-only'), 'true');
  const env = { POD_NAME: 'mirra-abcde', NODE_IP: '10.0.0.5' };
  const parsed = parseFlags(agentFlags, args.slice(1), env).values;
  assert.equal(parsed.localOnly, true);
  assert.equal(parsed.nodeIp, '10.0.0.5', 'the node IP comes from the NODE_IP env var');

  const existing = await renderChart({ set: ['peerAuth.existingSecret=mine', 'peerAuth.secretKey=key', 'mirra.localClients={10.244.0.1,fd00::/64}'] });
  assert.ok(!existing.docs.some((d) => d['kind'] === 'Secret'), 'no Secret of its own');
  const existingPod = field(find(existing.docs, 'DaemonSet', 'mirra'), 'spec', 'template', 'spec');
  assert.equal(field(objs(field(existingPod, 'volumes')).find((v) => v['name'] === 'peer-auth'), 'secret', 'secretName'), 'mine');
  assert.equal(flagValue(agentArgs(existing.docs), 'peer-secret-file'), '/etc/mirra/peer-auth/key');
  assert.deepEqual(parseFlags(agentFlags, agentArgs(existing.docs).slice(1), {}).values.localClients, ['10.244.0.1', 'fd00::/64']);
  assert.deepEqual(referenceProblems(existing.docs), []);

  const off = await renderChart({ set: ['peerAuth.enabled=false', 'mirra.localOnly=false'] });
  assert.ok(!off.docs.some((d) => d['kind'] === 'Secret'));
  assert.equal(flagValue(agentArgs(off.docs), 'peer-secret-file'), undefined);
  assert.equal(flagValue(agentArgs(off.docs), 'local-only'), 'false');
  assert.deepEqual(referenceProblems(off.docs), []);
});

test('bad values are a clear helm error', async () => {
  for (const [set, message] of [
    ['mirra.logLevel=verbose', /mirra.logLevel: "verbose" is not one of/],
    ['grafanaDashboard.enabled=true,grafanaDashboard.mode=Operator', /grafanaDashboard.mode: "Operator" is not Sidecar or GrafanaOperator/],
    ['peerAuth.secretKey=a/b', /peerAuth.secretKey: "a\/b" is not a valid Secret key/],
    ['peerAuth.enabled=false,mirra.verifyPullAccess={ghcr.io}', /mirra.verifyPullAccess needs peerAuth.enabled=true/],
  ] as const) {
    const result = await helm(['template', 'mirra', CHART, '--set', set]);
    assert.notEqual(result.code, 0, set);
    assert.match(result.stderr, message);
  }
});

test('private registries: mirra.verifyPullAccess becomes --verify-pull-access, which the agent accepts', async () => {
  const { docs } = await renderChart({ set: ['mirra.mirroredRegistries={docker.io,ghcr.io,quay.io}', 'mirra.verifyPullAccess={ghcr.io,quay.io}'] });
  assert.equal(flagValue(agentArgs(docs), 'verify-pull-access'), 'ghcr.io,quay.io');
  const none = await renderChart();
  assert.equal(flagValue(agentArgs(none.docs), 'verify-pull-access'), undefined, 'not given by default');
});
