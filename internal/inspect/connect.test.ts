// Where the commands find the API, against the stand-in over TLS: the
// --kubeconfig list, ~/.kube/config when neither the flag nor KUBECONFIG says,
// and in a pod the service account (the agent's own client, no client-node).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { createTestPki, type TestPki } from '../../tests/support/pki.ts';
import { KubeConfigError } from '../kube/kubeconfig.ts';
import { connectToApi, type ApiConnection } from './connect.ts';

let dir: string;
let pki: TestPki;
let api: KubeApi;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-inspect-connect-'));
  pki = await createTestPki(dir);
  api = await startKubeApi({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }, auth: { tokens: () => ['home-token', 'sa-token'] } });
});

after(async () => {
  await api?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Lists the pods of `default` through the connection; resolves the identity the stand-in saw. */
async function whoLists(connection: ApiConnection): Promise<string | undefined> {
  try {
    await connection.client.get('/api/v1/namespaces/default/pods', {}, AbortSignal.timeout(5000));
    return api.requests().at(-1)?.user;
  } finally {
    connection.client.close();
  }
}

test('~/.kube/config when neither --kubeconfig nor KUBECONFIG says', async () => {
  const home = join(dir, 'home');
  await mkdir(join(home, '.kube'), { recursive: true });
  await api.writeKubeconfig(join(home, '.kube', 'config'), { token: 'home-token' });
  const connection = await connectToApi({ kubeconfig: '', context: '', env: { HOME: home } });
  assert.equal(connection.server, api.url);
  assert.equal(await whoLists(connection), 'token:home-tok');
  await assert.rejects(connectToApi({ kubeconfig: join(home, 'nope'), context: '', env: { HOME: home } }), (err: unknown) => {
    return err instanceof KubeConfigError && /^kubeconfig .*nope \(--kubeconfig or KUBECONFIG\) is not a readable file$/.test(err.message);
  });
});

test("in a pod: the service account's token and CA, with the agent's own client", async () => {
  const sa = join(dir, 'sa');
  await mkdir(sa);
  await writeFile(join(sa, 'token'), 'sa-token\n');
  await writeFile(join(sa, 'ca.crt'), pki.ca.cert);
  const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port), HOME: join(dir, 'no-home') };
  const connection = await connectToApi({ kubeconfig: '', context: '', env, serviceAccountDir: sa });
  assert.equal(connection.server, api.url);
  assert.equal(await whoLists(connection), 'token:sa-token');
  await assert.rejects(
    connectToApi({ kubeconfig: '', context: 'prod', env, serviceAccountDir: sa }),
    /--context prod needs a kubeconfig; in a pod the service account is used/,
  );
});
