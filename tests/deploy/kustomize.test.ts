// deploy/kustomize: the rendered base is the chart's current output, the plain
// overlay builds offline with `kubectl kustomize`, and the helmCharts example
// builds with kustomize's Helm support (the chart from this checkout instead
// of the OCI registry, which is not reachable here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { container, field, find, helmBinary, isObj, objs, parseManifests, ROOT, run, strs } from './helm.ts';
import { referenceProblems } from './references.ts';

const KUSTOMIZE = join(ROOT, 'deploy', 'kustomize');

test('base/mirra.yaml is the chart rendered now (rerun deploy/kustomize/render-base.sh if not)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-base-'));
  try {
    const fresh = join(dir, 'mirra.yaml');
    const rendered = await run('bash', [join(KUSTOMIZE, 'render-base.sh'), fresh]);
    assert.equal(rendered.code, 0, rendered.stderr);
    assert.equal(await readFile(join(KUSTOMIZE, 'base', 'mirra.yaml'), 'utf8'), await readFile(fresh, 'utf8'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('kubectl kustomize builds the plain overlay offline', async () => {
  const built = await run('/usr/bin/kubectl', ['kustomize', join(KUSTOMIZE, 'overlays', 'plain')]);
  assert.equal(built.code, 0, built.stderr);
  const docs = parseManifests(built.stdout);
  assert.deepEqual(referenceProblems(docs), []);
  assert.ok(docs.some((d) => d['kind'] === 'Namespace' && field(d, 'metadata', 'name') === 'mirra'));
  assert.ok(!docs.some((d) => field(d, 'metadata', 'annotations', 'helm.sh/hook') !== undefined), 'no Helm hooks in a plain install');
  const pod = field(find(docs, 'DaemonSet', 'mirra'), 'spec', 'template', 'spec');
  const agent = container(pod, 'registry');
  assert.equal(agent['image'], 'ghcr.io/example-org/mirra:0.1.0');
  assert.equal(field(agent, 'resources', 'limits', 'memory'), '512Mi');
  assert.ok(strs(agent['args']).includes('--mirrored-registries=docker.io,ghcr.io,quay.io,registry.k8s.io'));
  assert.ok(strs(container(pod, 'configure', true)['args']).includes('--mirrored-registries=docker.io,ghcr.io,quay.io,registry.k8s.io'));
});

test('the helmCharts example builds with kustomize --enable-helm', async () => {
  const example = load(await readFile(join(KUSTOMIZE, 'helm', 'kustomization.yaml'), 'utf8'));
  assert.ok(isObj(example));
  const chart = objs(example['helmCharts'])[0];
  assert.ok(chart !== undefined);
  for (const key of ['name', 'repo', 'releaseName', 'namespace', 'valuesFile']) assert.ok(typeof chart[key] === 'string', `helmCharts[0].${key}`);
  assert.match(String(chart['repo']), /^oci:\/\//);

  const dir = await mkdtemp(join(tmpdir(), 'mirra-kustomize-helm-'));
  try {
    // The same entry with the chart from this checkout: no repo, chartHome = deploy/charts.
    const { repo: _repo, version: _version, ...local } = chart;
    const kustomization = { ...example, helmCharts: [local], helmGlobals: { chartHome: join(ROOT, 'deploy', 'charts') } };
    await writeFile(join(dir, 'kustomization.yaml'), JSON.stringify(kustomization));
    await copyFile(join(KUSTOMIZE, 'helm', String(chart['valuesFile'])), join(dir, String(chart['valuesFile'])));
    const built = await run('/usr/bin/kubectl', ['kustomize', '--enable-helm', '--helm-command', await helmBinary(), dir]);
    assert.equal(built.code, 0, built.stderr);
    const docs = parseManifests(built.stdout);
    assert.deepEqual(referenceProblems(docs), []);
    assert.ok(docs.some((d) => d['kind'] === 'ServiceMonitor'), 'values.yaml turns the ServiceMonitor on');
    assert.ok(docs.some((d) => d['kind'] === 'ConfigMap' && field(d, 'metadata', 'labels', 'grafana_dashboard') === '1'));
    assert.ok(docs.every((d) => field(d, 'metadata', 'namespace') === 'mirra'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
