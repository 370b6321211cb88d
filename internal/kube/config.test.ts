import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { createKubeClient } from './client.ts';
import { loadKubeConfig } from './config.ts';
import { KubeConfigError } from './kubeconfig.ts';

let api: KubeApi;
let dir: string;
let kubeconfig: string;

before(async () => {
  api = await startKubeApi();
  dir = await mkdtemp(join(tmpdir(), 'mirra-kube-config-'));
  kubeconfig = await api.kubeconfigPath(dir);
});

after(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

function oneLineError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof KubeConfigError);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return true;
  });
}

test('the --kubeconfig flag comes first and works against the API', async () => {
  const loaded = loadKubeConfig({ kubeconfigPath: kubeconfig, env: { KUBECONFIG: '/nonexistent' } });
  assert.equal(loaded.source, 'flag');
  assert.equal(loaded.namespace, 'default');
  assert.equal(loaded.target.server, api.url);
  api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cfg', namespace: 'default' } });
  const client = createKubeClient(loaded.target);
  try {
    const pod = await client.get('/api/v1/namespaces/default/pods/cfg', {}, AbortSignal.timeout(5000));
    assert.deepEqual((pod as { metadata: { name: string } }).metadata.name, 'cfg');
    assert.equal(api.requests().at(-1)?.url, '/api/v1/namespaces/default/pods/cfg');
  } finally {
    client.close();
  }
});

test('--kubeconfig (which falls back to KUBECONFIG) may be a list of files too', () => {
  const loaded = loadKubeConfig({ kubeconfigPath: `${kubeconfig}${delimiter}${kubeconfig}`, env: {} });
  assert.equal(loaded.source, 'flag');
  assert.equal(loaded.target.server, api.url);
});

test('KUBECONFIG from the environment passed in (a list of files)', () => {
  const loaded = loadKubeConfig({ env: { KUBECONFIG: `${delimiter}${kubeconfig}` } });
  assert.equal(loaded.source, 'env');
  assert.equal(loaded.target.server, api.url);
  oneLineError(
    () => loadKubeConfig({ env: { KUBECONFIG: `${kubeconfig}${delimiter}${join(dir, 'missing')}` } }),
    /KUBECONFIG: .*missing is not a readable file/,
  );
});

test('in-cluster: the service account token, CA and namespace', async () => {
  const sa = join(dir, 'sa');
  await mkdir(sa, { recursive: true });
  await writeFile(join(sa, 'token'), 'sa-token'); // as the kubelet writes it: no newline
  await writeFile(join(sa, 'namespace'), 'mirra-system\n');
  const loaded = loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa });
  assert.equal(loaded.source, 'in-cluster');
  assert.equal(loaded.target.server, 'https://[fd00::1]:443');
  assert.equal(loaded.namespace, 'mirra-system');
  assert.equal(await loaded.target.credentials.authorization(), 'Bearer sa-token');
  assert.equal(loaded.target.insecureSkipTlsVerify, false);
  assert.equal(loaded.target.ca, undefined, 'no ca.crt mounted: the system CAs');
});

test('one clear error line when no source works', async () => {
  oneLineError(() => loadKubeConfig({ env: {} }), /no Kubernetes API configuration: --kubeconfig not given, KUBECONFIG not set, and not in a cluster/);
  oneLineError(() => loadKubeConfig({ kubeconfigPath: join(dir, 'nope'), env: {} }), /--kubeconfig: .*nope is not a readable file/);
  oneLineError(
    () => loadKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: join(dir, 'no-sa') }),
    /service account token .*no-sa\/token not found/,
  );
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'clusters: [ {\n');
  oneLineError(() => loadKubeConfig({ kubeconfigPath: bad, env: {} }), /cannot load .*bad\.yaml/);
  const http = join(dir, 'http.json');
  await writeFile(
    http,
    JSON.stringify({
      clusters: [{ name: 'c', cluster: { server: 'http://127.0.0.1:1' } }],
      users: [{ name: 'u', user: {} }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  oneLineError(() => loadKubeConfig({ kubeconfigPath: http, env: {} }), /plain http server .* needs insecure-skip-tls-verify/);
  const empty = join(dir, 'empty.json');
  await writeFile(empty, JSON.stringify({ clusters: [], users: [], contexts: [] }));
  oneLineError(() => loadKubeConfig({ kubeconfigPath: empty, env: {} }), /no current cluster/);
});
