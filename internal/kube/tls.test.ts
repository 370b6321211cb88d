// The API client over TLS with each kind of kubeconfig user, against the
// stand-in serving https with authentication on (certificates from openssl).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type TestPki } from '../../tests/support/pki.ts';
import { startKubeApi, type KubeApi, type KubeconfigUser } from '../../tests/kube/server.ts';
import { createKubeClient, KubeApiError } from './client.ts';
import { loadKubeConfig } from './config.ts';

let dir: string;
let pki: TestPki;
let api: KubeApi;
let tokens = ['first-token'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-kube-tls-'));
  pki = await createTestPki(dir);
  api = await startKubeApi({
    tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, clientCa: pki.ca.cert },
    auth: { tokens: () => tokens },
  });
  api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' } });
});

after(async () => {
  await api.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Reads pod p through a kubeconfig for `user`; resolves the identity the stand-in saw. */
async function readAs(user: KubeconfigUser, edit?: (config: Record<string, unknown>) => void): Promise<string | undefined> {
  const path = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  await api.writeKubeconfig(path, user);
  if (edit !== undefined) {
    const config: unknown = JSON.parse(await readFile(path, 'utf8'));
    assert.ok(config !== null && typeof config === 'object');
    edit(config as Record<string, unknown>);
    await writeFile(path, JSON.stringify(config));
  }
  const client = createKubeClient(loadKubeConfig({ kubeconfigPath: path, env: {} }).target);
  try {
    const pod = await client.get('/api/v1/namespaces/default/pods/p', {}, AbortSignal.timeout(5000));
    assert.equal((pod as { metadata: { name: string } }).metadata.name, 'p');
    return api.requests().at(-1)?.user;
  } finally {
    client.close();
  }
}

const cluster = (config: Record<string, unknown>): Record<string, unknown> => {
  const clusters = config['clusters'] as { cluster: Record<string, unknown> }[];
  assert.ok(clusters[0] !== undefined);
  return clusters[0].cluster;
};

test('a token, a client certificate (files or data) over https with the kubeconfig CA', async () => {
  assert.equal(await readAs({ token: 'first-token' }), 'token:first-to');
  assert.equal(await readAs({ clientCertificate: pki.client.certPath, clientKey: pki.client.keyPath }), 'cert:mirra-test');
  assert.equal(await readAs({ clientCertificateData: pki.client.cert, clientKeyData: pki.client.key }), 'cert:mirra-test');
});

test('the server certificate is checked: another CA fails, insecure-skip-tls-verify and tls-server-name work', async () => {
  const otherCa = Buffer.from(pki.otherCa.cert).toString('base64');
  await assert.rejects(
    readAs({ token: 'first-token' }, (c) => (cluster(c)['certificate-authority-data'] = otherCa)),
    /unable to verify|self.signed|UNABLE_TO_VERIFY/i,
  );
  const skip = (c: Record<string, unknown>): void => {
    delete cluster(c)['certificate-authority-data'];
    cluster(c)['insecure-skip-tls-verify'] = true;
  };
  assert.equal(await readAs({ token: 'first-token' }, skip), 'token:first-to');
  const byName = (c: Record<string, unknown>): void => {
    cluster(c)['server'] = String(cluster(c)['server']).replace('127.0.0.1', 'localhost');
    cluster(c)['tls-server-name'] = 'localhost';
  };
  assert.equal(await readAs({ token: 'first-token' }, byName), 'token:first-to');
  const wrongName = (c: Record<string, unknown>): void => void (cluster(c)['tls-server-name'] = 'kubernetes.default');
  await assert.rejects(readAs({ token: 'first-token' }, wrongName), /kubernetes\.default/);
});

test('a wrong token or a certificate of another CA gets 401', async () => {
  await assert.rejects(
    readAs({ token: 'wrong' }),
    (err: unknown) => err instanceof KubeApiError && err.status === 401 && err.message === 'HTTP 401: Unauthorized',
  );
  await assert.rejects(
    readAs({ clientCertificate: pki.otherClient.certPath, clientKey: pki.otherClient.keyPath }),
    (err: unknown) => err instanceof KubeApiError && err.status === 401,
  );
});

test('a rotated token file is read again after a 401; an exec plugin supplies the token', async () => {
  const tokenPath = join(dir, 'token');
  await writeFile(tokenPath, 'first-token');
  const path = join(dir, 'kubeconfig-file');
  await api.writeKubeconfig(path, { tokenFile: tokenPath });
  const client = createKubeClient(loadKubeConfig({ kubeconfigPath: path, env: {} }).target);
  const read = (): Promise<unknown> => client.get('/api/v1/namespaces/default/pods/p', {}, AbortSignal.timeout(5000));
  try {
    await read();
    tokens = ['second-token'];
    await writeFile(tokenPath, 'second-token');
    await assert.rejects(read(), (err: unknown) => err instanceof KubeApiError && err.status === 401);
    await read(); // the 401 dropped the cached token: the file is read again
    assert.equal(api.requests().at(-1)?.user, 'token:second-t');
  } finally {
    client.close();
    tokens = ['first-token'];
  }
  const plugin = join(dir, 'plugin.sh');
  await writeFile(plugin, '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"first-token"}}\'\n');
  await chmod(plugin, 0o755);
  const exec = (c: Record<string, unknown>): void => {
    const users = c['users'] as { user: Record<string, unknown> }[];
    assert.ok(users[0] !== undefined);
    users[0].user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin } };
  };
  assert.equal(await readAs({ token: 'unused' }, exec), 'token:first-to');
});
