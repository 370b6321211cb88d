// The stand-in over https: server verification, bearer tokens (rotated),
// client certificates, RBAC decisions (auth.authorize), and the kubeconfig it
// writes for a TLS cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestPki, type TestCertificate, type TestPki } from '../support/pki.ts';
import { startKubeApi, type KubeApi, type KubeconfigUser } from './server.ts';

const PODS = '/api/v1/namespaces/default/pods';

let dir = '';
let pki: TestPki;
let plain: KubeApi; // https, no client certificates, no auth
let guarded: KubeApi; // https, client CA and auth
let tokens: string[] = ['first-token-abcdef'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-kube-tls-'));
  pki = await createTestPki(dir);
  const tls = { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert };
  plain = await startKubeApi({ tls });
  guarded = await startKubeApi({ tls: { ...tls, clientCa: pki.ca.cert }, auth: { tokens: () => tokens } });
});
after(async () => {
  await Promise.all([plain.stop(), guarded.stop()]);
  await rm(dir, { recursive: true, force: true });
});

interface Call {
  ca?: string;
  token?: string;
  client?: TestCertificate;
}

/** One GET on a fresh connection (agent: false), so no TLS session or client certificate carries over. */
function get(base: string, path: string, call: Call = {}): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = call.token === undefined ? {} : { Authorization: `Bearer ${call.token}` };
  const options = { agent: false as const, headers, ca: call.ca, cert: call.client?.cert, key: call.client?.key };
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: res.headers['content-type'] === 'application/json' ? (JSON.parse(text) as unknown) : text }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function lastUser(api: KubeApi): string | undefined {
  return api.requests().at(-1)?.user;
}

const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

test('https: verifies with the CA, fails the handshake without it, and survives restart', async () => {
  assert.match(plain.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await get(plain.url, PODS, { ca: pki.ca.cert })).status, 200);
  await assert.rejects(get(plain.url, PODS), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  await assert.rejects(get(plain.url, PODS, { ca: pki.otherCa.cert }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  assert.equal(lastUser(plain), undefined, 'without auth nobody is identified');

  await plain.stop();
  await plain.restart();
  assert.equal((await get(plain.url, PODS, { ca: pki.ca.cert })).status, 200);
});

test('auth: bearer tokens, checked on every request, health checks exempt', async () => {
  const ca = pki.ca.cert;
  const none = await get(guarded.url, PODS, { ca });
  assert.equal(none.status, 401);
  assert.deepEqual(none.body, UNAUTHORIZED);
  assert.equal((await get(guarded.url, PODS, { ca, token: 'wrong' })).status, 401);
  assert.equal((await get(guarded.url, '/readyz', { ca })).status, 200);

  assert.equal((await get(guarded.url, PODS, { ca, token: 'first-token-abcdef' })).status, 200);
  assert.equal(lastUser(guarded), 'token:first-to');

  tokens = ['second-token'];
  assert.equal((await get(guarded.url, PODS, { ca, token: 'first-token-abcdef' })).status, 401);
  assert.equal(lastUser(guarded), undefined);
  assert.equal((await get(guarded.url, PODS, { ca, token: 'second-token' })).status, 200);
});

test('auth: a client certificate from the client CA, not from another CA', async () => {
  const ca = pki.ca.cert;
  assert.equal((await get(guarded.url, PODS, { ca, client: pki.client })).status, 200);
  assert.equal(lastUser(guarded), 'cert:mirra-test');
  const other = await get(guarded.url, PODS, { ca, client: pki.otherClient });
  assert.equal(other.status, 401);
  assert.deepEqual(other.body, UNAUTHORIZED);
});

/** The written kubeconfig, read back as plain JSON. */
async function kubeconfig(api: KubeApi, user?: KubeconfigUser): Promise<{ cluster: unknown; user: unknown }> {
  const config = JSON.parse(await readFile(await api.kubeconfigPath(dir, user), 'utf8')) as unknown;
  const { clusters, users } = config as { clusters: { cluster: unknown }[]; users: { user: unknown }[] };
  return { cluster: clusters[0]?.cluster, user: users[0]?.user };
}

test('writeKubeconfig with tls: the CA as data, no skip-verify, and each kind of user', async () => {
  const base64 = (pem: string): string => Buffer.from(pem).toString('base64');
  const written = await kubeconfig(guarded);
  assert.deepEqual(written.cluster, { server: guarded.url, 'certificate-authority-data': base64(pki.ca.cert) });
  assert.deepEqual(written.user, { token: 'stand-in-token' });

  assert.deepEqual((await kubeconfig(guarded, { token: 't' })).user, { token: 't' });
  assert.deepEqual((await kubeconfig(guarded, { tokenFile: '/run/token' })).user, { tokenFile: '/run/token' });
  const files = await kubeconfig(guarded, { clientCertificate: pki.client.certPath, clientKey: pki.client.keyPath });
  assert.deepEqual(files.user, { 'client-certificate': pki.client.certPath, 'client-key': pki.client.keyPath });
  const data = await kubeconfig(guarded, { clientCertificateData: pki.client.cert, clientKeyData: pki.client.key });
  assert.deepEqual(data.user, { 'client-certificate-data': base64(pki.client.cert), 'client-key-data': base64(pki.client.key) });
});

test('authorize: a denied request is the real 403 Forbidden, with its attributes as RBAC names them; discovery stays open', async () => {
  const seen: string[] = [];
  const rbac = await startKubeApi({
    tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
    auth: {
      tokens: () => ['reader-token'],
      authorize: (a) => {
        seen.push(`${a.user} ${a.verb} ${a.group}/${a.resource}/${a.subresource} ${a.namespace}/${a.name}`);
        return a.verb === 'get' && a.subresource === '';
      },
    },
  });
  try {
    const call = { ca: pki.ca.cert, token: 'reader-token' };
    rbac.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' } });
    assert.equal((await get(rbac.url, `${PODS}/p`, call)).status, 200);
    assert.deepEqual((await get(rbac.url, PODS, call)).body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods is forbidden: User "token:reader-t" cannot list resource "pods" in API group "" in the namespace "default"',
      reason: 'Forbidden',
      details: { kind: 'pods' },
      code: 403,
    });
    const slices = await get(rbac.url, '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=true', call);
    assert.match(
      JSON.stringify(slices.body),
      /endpointslices.discovery.k8s.io is forbidden: User \\"token:reader-t\\" cannot watch resource \\"endpointslices\\" in API group \\"discovery.k8s.io\\"/,
    );
    const proxy = await get(rbac.url, `${PODS}/p:8080/proxy/metrics`, call);
    assert.equal(proxy.status, 403);
    assert.match(
      JSON.stringify(proxy.body),
      /pods \\"p\\" is forbidden: User \\"token:reader-t\\" cannot get resource \\"pods\/proxy\\" in API group \\"\\" in the namespace \\"default\\"/,
    );
    assert.equal((await get(rbac.url, '/api/v1', call)).status, 200);
    assert.deepEqual(seen, [
      'token:reader-t get /pods/ default/p',
      'token:reader-t list /pods/ default/',
      'token:reader-t watch discovery.k8s.io/endpointslices/ default/',
      'token:reader-t get /pods/proxy default/p',
    ]);
  } finally {
    await rbac.stop();
  }
});
