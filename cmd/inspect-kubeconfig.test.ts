// `mirra shards` reads kubeconfigs as people have them on their laptops,
// against the Kubernetes API stand-in over TLS with authentication on: a
// bearer token, a token file, a client certificate, an exec plugin (relative
// to the kubeconfig's directory), an OIDC id-token, impersonation, a
// proxy-url, a KUBECONFIG list with the same names twice (the first wins),
// --context. @kubernetes/client-node authenticates (loaded by the command);
// the project's loader merges the files and fixes what client-node gets wrong.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { statusAnnotations, UPDATED_ANNOTATION } from '../internal/owners/status.ts';
import { startKubeApi, type KubeApi } from '../tests/kube/server.ts';
import { runMirra, type CliResult } from '../tests/support/cli.ts';
import { startConnectProxy } from '../tests/support/connect-proxy.ts';
import { createTestPki, type TestPki } from '../tests/support/pki.ts';

type Obj = Record<string, unknown>;

/** An OIDC id-token (unsigned: the stand-in only compares tokens) that expires in an hour, as client-node reads it. */
const ID_TOKEN = [{ alg: 'RS256', typ: 'JWT' }, { iss: 'https://issuer.example', sub: 'jane', exp: Math.floor(Date.now() / 1000) + 3600 }, 'sig']
  .map((part) => (typeof part === 'string' ? part : Buffer.from(JSON.stringify(part)).toString('base64url')))
  .join('.');
const TOKENS = ['plain-token', 'file-token', 'exec-token', 'relative-exec-token', ID_TOKEN];

let dir: string;
let pki: TestPki;
let api: KubeApi;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-inspect-kubeconfig-'));
  pki = await createTestPki(dir);
  api = await startKubeApi({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, clientCa: pki.ca.cert }, auth: { tokens: () => TOKENS } });
  const annotations = { ...statusAnnotations({ keys: 3, owned: [], postings: 0, members: 1 }), [UPDATED_ANNOTATION]: '2026-12-06T08:00:00.000Z' };
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'mirra-a', namespace: 'mirra', labels: { 'app.kubernetes.io/name': 'mirra' }, annotations },
    spec: { nodeName: 'node-1', containers: [{ name: 'registry', image: 'mirra' }] },
    status: { phase: 'Running', podIP: '127.0.0.2', conditions: [{ type: 'Ready', status: 'True' }] },
  });
  api.create({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'mirra-1', namespace: 'mirra', labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: 'IPv4',
    ports: [{ name: 'registry', port: 5000, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.2'], conditions: { ready: true }, nodeName: 'node-1', targetRef: { kind: 'Pod', name: 'mirra-a', namespace: 'mirra' } }],
  });
});

after(async () => {
  await api?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The stand-in's cluster, trusted through its CA. */
function cluster(extra: Obj = {}): Obj {
  return { server: api.url, 'certificate-authority-data': Buffer.from(pki.ca.cert).toString('base64'), ...extra };
}

interface ConfigSpec {
  user: Obj;
  cluster?: Obj;
  /** Entry names (default c, u, ctx). */
  names?: { cluster: string; user: string; context: string };
  current?: string;
}

function config(spec: ConfigSpec): Obj {
  const names = spec.names ?? { cluster: 'c', user: 'u', context: 'ctx' };
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: names.cluster, cluster: spec.cluster ?? cluster() }],
    users: [{ name: names.user, user: spec.user }],
    contexts: [{ name: names.context, context: { cluster: names.cluster, user: names.user, namespace: 'default' } }],
    'current-context': spec.current ?? names.context,
  };
}

/** Writes `text` at dir/<name> (directories made); returns the path. */
async function write(name: string, text: string, mode = 0o600): Promise<string> {
  const path = join(dir, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text, { mode });
  await chmod(path, mode);
  return path;
}

/** An exec credential plugin: a shell script printing an ExecCredential with `token`. */
function plugin(token: string): string {
  const credential = { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token } };
  return `#!/bin/sh\ncat <<'JSON'\n${JSON.stringify(credential)}\nJSON\n`;
}

function execUser(command: string): Obj {
  return { exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never' } };
}

/** The identity the stand-in saw on the last pods list. */
function lastPodsList(): { user: string | undefined; impersonate: { user: string; groups: string[] } | undefined } {
  const record = api
    .requests()
    .filter((r) => r.url.startsWith('/api/v1/namespaces/mirra/pods?'))
    .at(-1);
  assert.ok(record !== undefined, 'the pods were listed');
  return { user: record.user, impersonate: record.impersonate };
}

function assertShards(result: CliResult): void {
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '');
  const rows: unknown = JSON.parse(result.stdout);
  assert.ok(Array.isArray(rows) && rows.length === 1);
  assert.deepEqual((rows[0] as Obj)['pod'], 'mirra-a');
}

async function shardsWith(path: string, extra: string[] = []): Promise<CliResult> {
  return runMirra(['shards', '--kubeconfig', path, '--output', 'json', ...extra]);
}

test('a bearer token, a token file (relative to the kubeconfig, which client-node never reads) and a client certificate', async () => {
  assertShards(await shardsWith(await write('token/config', JSON.stringify(config({ user: { token: 'plain-token' } }))), []));
  assert.equal(lastPodsList().user, 'token:plain-to');

  await write('token-file/secrets/token', 'file-token\n');
  assertShards(await shardsWith(await write('token-file/config', JSON.stringify(config({ user: { tokenFile: 'secrets/token' } })))));
  assert.equal(lastPodsList().user, 'token:file-tok');

  await write('cert/pki/client.crt', pki.client.cert);
  await write('cert/pki/client.key', pki.client.key);
  const certUser = { 'client-certificate': 'pki/client.crt', 'client-key': 'pki/client.key' };
  assertShards(await shardsWith(await write('cert/config', JSON.stringify(config({ user: certUser })))));
  assert.equal(lastPodsList().user, 'cert:mirra-test');
});

test('an exec plugin, and a relative exec command resolved against the kubeconfig directory, not the working directory', async () => {
  const absolute = await write('exec/bin/get-token', plugin('exec-token'), 0o755);
  assertShards(await shardsWith(await write('exec/config', JSON.stringify(config({ user: execUser(absolute) })))));
  assert.equal(lastPodsList().user, 'token:exec-tok');

  await write('relative/kube/bin/get-token', plugin('relative-exec-token'), 0o755);
  const path = await write('relative/kube/config', JSON.stringify(config({ user: execUser('./bin/get-token') })));
  const elsewhere = join(dir, 'relative', 'elsewhere');
  await mkdir(elsewhere);
  assertShards(await runMirra(['shards', '--kubeconfig', path, '--output', 'json'], { cwd: elsewhere }));
  assert.equal(lastPodsList().user, 'token:relative');
});

test('a KUBECONFIG list with the same names twice: the first occurrence wins, as with kubectl', async () => {
  const first = await write('list/first', JSON.stringify(config({ user: { token: 'plain-token' } })));
  const second = config({ user: { token: 'wrong-token' }, cluster: { server: 'https://127.0.0.1:1' }, current: 'other' });
  (second['contexts'] as Obj[]).push({ name: 'other', context: { cluster: 'c', user: 'u' } });
  const secondPath = await write('list/second', JSON.stringify(second));
  const env = { PATH: process.env.PATH, KUBECONFIG: `${secondPath}${delimiter}${first}` };
  // The second file first: its cluster c (port 1), user u and current-context win; then the other way round.
  const wrong = await runMirra(['shards', '--output', 'json'], { env });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /^mirra shards: cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:1: [^\n]*\n$/);
  assertShards(await runMirra(['shards', '--output', 'json'], { env: { ...env, KUBECONFIG: `${first}${delimiter}${secondPath}` } }));
  assert.equal(lastPodsList().user, 'token:plain-to');
});

test('--context picks another context of the kubeconfig', async () => {
  const doc = config({ user: { token: 'wrong-token' } });
  (doc['users'] as Obj[]).push({ name: 'good', user: { token: 'plain-token' } });
  (doc['contexts'] as Obj[]).push({ name: 'good', context: { cluster: 'c', user: 'good' } });
  const path = await write('context/config', JSON.stringify(doc));
  assertShards(await shardsWith(path, ['--context', 'good']));
  assert.equal(lastPodsList().user, 'token:plain-to');
  const missing = await shardsWith(path, ['--context', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^mirra shards: [^\n]*context nope is not defined[^\n]*\n$/);
});

test('an OIDC auth-provider (its id-token), impersonation with groups, and a proxy-url', async () => {
  const oidc = { 'auth-provider': { name: 'oidc', config: { 'id-token': ID_TOKEN, 'idp-issuer-url': 'https://issuer.example', 'client-id': 'kubernetes' } } };
  assertShards(await shardsWith(await write('oidc/config', JSON.stringify(config({ user: oidc })))));
  assert.equal(lastPodsList().user, `token:${ID_TOKEN.slice(0, 8)}`);

  const impersonating = { token: 'plain-token', as: 'jane', 'as-groups': ['mirra-readers', 'developers'] };
  assertShards(await shardsWith(await write('as/config', JSON.stringify(config({ user: impersonating })))));
  assert.deepEqual(lastPodsList().impersonate, { user: 'jane', groups: ['mirra-readers', 'developers'] });

  const proxy = await startConnectProxy();
  try {
    const path = await write('proxy/config', JSON.stringify(config({ user: { token: 'plain-token' }, cluster: cluster({ 'proxy-url': proxy.url }) })));
    assertShards(await shardsWith(path));
    assert.ok(proxy.tunnels().includes(`127.0.0.1:${api.port}`), `tunnels: ${proxy.tunnels().join(', ')}`);
  } finally {
    await proxy.stop();
  }
});
