// The rendered chart created with the real kubectl in the Kubernetes API
// stand-in, and the post-delete hook's wait script run against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startKubeApi, type KubeApi } from '../kube/server.ts';
import { CHART, field, nameOf, renderChart, run, SPEGEL_VALUES } from './helm.ts';

const KUBECTL = '/usr/bin/kubectl';

async function withApi(fn: (api: KubeApi, kubeconfig: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-deploy-'));
  const api = await startKubeApi();
  try {
    await fn(api, await api.kubeconfigPath(dir), dir);
  } finally {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

for (const [label, valuesFiles, namespace] of [
  ['default values', [], 'mirra'],
  ['a Spegel values file', [SPEGEL_VALUES], 'kube-system'],
] as const) {
  test(`kubectl creates every object of the chart (${label}) in the API stand-in`, async () => {
    const { text, docs } = await renderChart({ valuesFiles: [...valuesFiles], namespace, set: ['networkPolicy.enabled=true'] });
    await withApi(async (api, kubeconfig, dir) => {
      const manifest = join(dir, 'mirra.yaml');
      await writeFile(manifest, text);
      // --validate=false: the stand-in serves no OpenAPI document.
      const created = await run(KUBECTL, ['--kubeconfig', kubeconfig, 'create', '--validate=false', '-f', manifest]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal(created.stdout.trim().split('\n').length, docs.length, created.stdout);
      for (const doc of docs) {
        const stored = api.get(String(doc['kind']), namespace, nameOf(doc));
        assert.ok(stored !== undefined, `${String(doc['kind'])}/${nameOf(doc)} stored`);
        assert.deepEqual(stored['spec'] ?? stored['rules'] ?? null, doc['spec'] ?? doc['rules'] ?? null);
      }
      const listed = await run(KUBECTL, ['--kubeconfig', kubeconfig, '-n', namespace, 'get', 'daemonsets,serviceaccounts,roles,rolebindings', '-o', 'name']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /daemonset.apps\/mirra\n/);
      assert.match(listed.stdout, /role.rbac.authorization.k8s.io\/mirra\n/);
    });
  });
}

function runWait(env: Record<string, string>, script: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

test('the post-delete wait pod waits until every cleanup pod is ready, and gives up after its timeout', async () => {
  const { docs } = await renderChart();
  const waitPod = docs.find((d) => d['kind'] === 'Pod' && nameOf(d) === 'mirra-cleanup-wait');
  assert.ok(waitPod !== undefined);
  const c = (field(waitPod, 'spec', 'containers') as Record<string, unknown>[])[0];
  const script = String((c?.['args'] as unknown[])[0]);
  const podEnv = Object.fromEntries((c?.['env'] as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  assert.equal(podEnv['DAEMONSET'], 'mirra-cleanup');
  const cleanupDs = docs.find((d) => d['kind'] === 'DaemonSet' && nameOf(d) === 'mirra-cleanup');
  assert.ok(cleanupDs !== undefined);

  await withApi(async (api, _kubeconfig, dir) => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'stand-in-token\n');
    const env = { DAEMONSET: 'mirra-cleanup', NAMESPACE: 'mirra', MIRRA_KUBE_API: api.url, MIRRA_TOKEN_FILE: tokenFile };
    // Not there yet, then 1 of 3 ready: still waiting when the short timeout ends.
    const early = await runWait({ ...env, TIMEOUT_SECONDS: '1' }, script);
    assert.equal(early.code, 1, early.output);
    assert.match(early.output, /404/);

    api.create({ ...cleanupDs, status: { desiredNumberScheduled: 3, numberReady: 1, updatedNumberScheduled: 3, observedGeneration: 1 } });
    const waiting = runWait({ ...env, TIMEOUT_SECONDS: '20' }, script);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const current = api.get('DaemonSet', 'mirra', 'mirra-cleanup');
    assert.ok(current !== undefined);
    api.update({ ...current, status: { desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3, observedGeneration: 1 } });
    const done = await waiting;
    assert.equal(done.code, 0, done.output);
    assert.match(done.output, /1\/3 cleanup pods ready/);
    assert.match(done.output, /3\/3 cleanup pods ready/);
  });
});

test('the chart directory is what helm packages (no stray files)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-package-'));
  try {
    const packaged = await run('bash', ['hack/helm.sh', 'package', CHART, '--destination', dir]);
    assert.equal(packaged.code, 0, packaged.stderr);
    const listing = await run('tar', ['-tzf', join(dir, 'mirra-0.1.0.tgz')]);
    const files = listing.stdout.trim().split('\n').sort();
    assert.ok(files.includes('mirra/files/cleanup-wait.mjs'));
    assert.ok(files.includes('mirra/monitoring/grafana-dashboard.json'));
    assert.ok(files.every((f) => /^mirra\/(Chart\.yaml|values\.yaml|README\.md|\.helmignore|templates\/|files\/|monitoring\/)/.test(f)), files.join('\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
