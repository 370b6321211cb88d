// The kubeconfig handed to client-node: kubectl's merge and paths, a token
// file read, an exec command resolved against its kubeconfig with
// KUBERNETES_EXEC_INFO, plain http without the skip flag, impersonation beyond
// the user as headers, and a context without a user. (The commands against
// the API stand-in: cmd/inspect-kubeconfig.test.ts.)
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { currentEntries, KubeConfigError } from '../kube/kubeconfig.ts';
import { clientNodeConfig } from './client-node-config.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-client-node-config-'));
  await mkdir(join(dir, 'kube', 'pki'), { recursive: true });
  await writeFile(join(dir, 'kube', 'token'), '  from-file\n');
  await writeFile(join(dir, 'kube', 'pki', 'ca.crt'), 'CA');
});

after(() => rm(dir, { recursive: true, force: true }));

async function configOf(name: string, doc: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'kube', name);
  await writeFile(path, JSON.stringify(doc));
  return path;
}

function doc(cluster: Record<string, unknown>, user: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    clusters: [{ name: 'c', cluster }],
    users: user === undefined ? [] : [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  };
}

test('a token file is read (trimmed) and wins over a token; files are read relative to the kubeconfig', async () => {
  const path = await configOf('a', doc({ server: 'https://10.0.0.1', 'certificate-authority': 'pki/ca.crt' }, { token: 'inline', tokenFile: 'token' }));
  const config = clientNodeConfig(currentEntries([path]));
  const [cluster] = config.options.clusters;
  const [user] = config.options.users;
  assert.equal(cluster?.caData, Buffer.from('CA').toString('base64'));
  assert.equal(cluster?.skipTLSVerify, false);
  assert.equal(user?.token, 'from-file');
  assert.equal(config.identity, 'context "x", user "u" (a token)');
  assert.deepEqual(config.options.contexts, [{ name: 'x', cluster: 'c', user: 'u' }]);
});

test('an exec command with a slash is resolved against the kubeconfig; the plugin gets KUBERNETES_EXEC_INFO', async () => {
  const exec = {
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    command: './bin/login',
    args: ['token'],
    env: [{ name: 'A', value: '1' }],
    provideClusterInfo: true,
  };
  const config = clientNodeConfig(currentEntries([await configOf('b', doc({ server: 'https://10.0.0.1' }, { exec }))]));
  const given: unknown = config.options.users[0]?.exec;
  assert.ok(given !== null && typeof given === 'object' && 'command' in given && 'env' in given && Array.isArray(given.env));
  assert.equal(given.command, join(dir, 'kube', 'bin', 'login'));
  const [a, info] = given.env as { name: string; value: string }[];
  assert.deepEqual(a, { name: 'A', value: '1' });
  assert.equal(info?.name, 'KUBERNETES_EXEC_INFO');
  assert.deepEqual(JSON.parse(info?.value ?? ''), {
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    kind: 'ExecCredential',
    spec: { interactive: false, cluster: { server: 'https://10.0.0.1', 'insecure-skip-tls-verify': false } },
  });
  const onPath = clientNodeConfig(currentEntries([await configOf('c', doc({ server: 'https://10.0.0.1' }, { exec: { command: 'aws' } }))]));
  assert.ok(onPath.identity.endsWith('(exec plugin aws)'));
});

test('plain http needs no skip flag; impersonation beyond the user becomes headers; a context without a user still gets one', async () => {
  const user = { token: 't', as: 'jane', 'as-groups': ['a', 'b'], 'as-uid': '42', 'as-user-extra': { scopes: ['view'] } };
  const config = clientNodeConfig(
    currentEntries([await configOf('d', doc({ server: 'http://127.0.0.1:8080', 'proxy-url': 'socks5://127.0.0.1:1080' }, user))]),
  );
  assert.equal(config.options.clusters[0]?.skipTLSVerify, true);
  assert.equal(config.options.clusters[0]?.proxyUrl, 'socks5://127.0.0.1:1080');
  assert.equal(config.options.users[0]?.impersonateUser, 'jane');
  assert.deepEqual(config.headers, { 'Impersonate-Group': ['a', 'b'], 'Impersonate-Uid': '42', 'Impersonate-Extra-scopes': ['view'] });

  const none = clientNodeConfig(currentEntries([await configOf('e', doc({ server: 'https://10.0.0.1' }, undefined))]));
  assert.deepEqual(none.options.users, [{ name: 'u' }]);
  assert.equal(none.options.contexts[0]?.user, 'u');
});

test('what cannot be used is one line naming the file and the field', async () => {
  const fails = async (name: string, user: Record<string, unknown>, pattern: RegExp): Promise<void> => {
    const path = await configOf(name, doc({ server: 'https://10.0.0.1' }, user));
    assert.throws(
      () => clientNodeConfig(currentEntries([path])),
      (err: unknown) => err instanceof KubeConfigError && pattern.test(err.message) && !err.message.includes('\n'),
    );
  };
  await fails('f', { tokenFile: 'missing' }, /kube\/f: user u: tokenFile .*missing cannot be read \(ENOENT/);
  await fails('g', { exec: { args: [] } }, /kube\/g: user u: exec needs a command$/);
  await fails('h', { 'client-certificate-data': 'QQ==' }, /a client certificate needs its key/);
});
