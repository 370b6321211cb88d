import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfigError, readKubeconfig } from './kubeconfig.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-kubeconfig-'));
  await mkdir(join(dir, 'certs'));
  await writeFile(join(dir, 'certs', 'ca.pem'), 'CA FROM FILE');
  await writeFile(join(dir, 'certs', 'client.pem'), 'CERT FROM FILE');
  await writeFile(join(dir, 'certs', 'client.key'), 'KEY FROM FILE');
});

after(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function fails(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof KubeConfigError && pattern.test(err.message) && !err.message.includes('\n'));
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

test('YAML: the current context, data fields, a token and the namespace', async () => {
  const path = await file(
    'one.yaml',
    `apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: ${b64('CA DATA')}
    tls-server-name: kubernetes.default
users:
- name: admin
  user:
    token: abc
    client-certificate-data: ${b64('CERT DATA')}
    client-key-data: ${b64('KEY DATA')}
contexts:
- name: prod
  context: { cluster: prod, user: admin, namespace: mirra }
`,
  );
  const resolved = readKubeconfig([path]);
  assert.equal(resolved.context, 'prod');
  assert.equal(resolved.cluster.server, 'https://10.0.0.1:6443');
  assert.equal(resolved.cluster.ca?.toString(), 'CA DATA');
  assert.equal(resolved.cluster.tlsServerName, 'kubernetes.default');
  assert.equal(resolved.cluster.insecureSkipTlsVerify, false);
  assert.equal(resolved.user.token, 'abc');
  assert.equal(resolved.user.cert?.toString(), 'CERT DATA');
  assert.equal(resolved.user.key?.toString(), 'KEY DATA');
  assert.equal(resolved.namespace, 'mirra');
});

test('several files: the first to name an entry wins; paths are relative to their own file', async () => {
  const first = await file(
    'first.yaml',
    `current-context: dev
clusters: [{ name: dev, cluster: { server: 'https://first:6443', certificate-authority: certs/ca.pem } }]
`,
  );
  await mkdir(join(dir, 'other'), { recursive: true });
  await writeFile(join(dir, 'other', 'token'), 'tok\n');
  const second = await file(
    'other/second.yaml',
    `current-context: ignored
clusters: [{ name: dev, cluster: { server: 'https://second:6443' } }]
users: [{ name: me, user: { tokenFile: token, client-certificate: ../certs/client.pem, client-key: ../certs/client.key } }]
contexts: [{ name: dev, context: { cluster: dev, user: me } }]
`,
  );
  const resolved = readKubeconfig([first, second]);
  assert.equal(resolved.cluster.server, 'https://first:6443');
  assert.equal(resolved.cluster.ca?.toString(), 'CA FROM FILE');
  assert.equal(resolved.user.tokenFile, join(dir, 'other', 'token'));
  assert.equal(resolved.user.cert?.toString(), 'CERT FROM FILE');
  assert.equal(resolved.user.key?.toString(), 'KEY FROM FILE');
  assert.equal(resolved.namespace, undefined);
  const swapped = readKubeconfig([second, first], 'dev');
  assert.equal(swapped.cluster.server, 'https://second:6443');
  assert.equal(swapped.cluster.ca, undefined);
  assert.throws(() => readKubeconfig([second, first]), /context ignored is not defined/);
});

test('an exec plugin is read with its args and env; its command is kept as written', async () => {
  const path = await file(
    'exec.yaml',
    JSON.stringify({
      'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: 'https://h:443' } }],
      users: [
        {
          name: 'u',
          user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './plugin', args: ['get-token'], env: [{ name: 'A', value: '1' }] } },
        },
      ],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }),
  );
  const exec = readKubeconfig([path]).user.exec;
  assert.deepEqual(exec, { command: './plugin', args: ['get-token'], env: { A: '1' }, apiVersion: 'client.authentication.k8s.io/v1', dir });
});

test('what mirra cannot use is one line naming the field', async () => {
  const config = (cluster: object, user: object, extra = ''): Promise<string> =>
    file(
      'bad.json',
      JSON.stringify({
        'current-context': 'c',
        clusters: [{ name: 'c', cluster }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      }) + extra,
    );
  const server = { server: 'https://h:443' };
  fails(() => readKubeconfig([join(dir, 'missing')]), /cannot load .*missing/);
  const broken = await config(server, {}, '}');
  fails(() => readKubeconfig([broken]), /cannot load .*bad\.json: /);
  const cases: [object, object, RegExp][] = [
    [server, { 'auth-provider': { name: 'oidc' } }, /user u: auth-provider is not supported/],
    [server, { username: 'a', password: 'b' }, /user u: username is not supported/],
    [server, { exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1alpha1' } }, /exec: apiVersion must be one of/],
    [server, { exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1', interactiveMode: 'Always' } }, /interactiveMode Always/],
    [server, { 'client-certificate-data': b64('c') }, /a client certificate needs its key/],
    [server, { 'client-certificate': 'nope.pem', 'client-key': 'nope.key' }, /client-certificate nope\.pem: ENOENT/],
    [{ server: 'http://h:80' }, {}, /plain http server http:\/\/h:80 needs insecure-skip-tls-verify: true/],
    [{ ...server, 'proxy-url': 'http://proxy:3128' }, {}, /proxy-url is not supported/],
    [{}, {}, /cluster c has no server/],
    [{ server: 42 }, {}, /server must be a string/],
  ];
  for (const [cluster, user, pattern] of cases) {
    const path = await config(cluster, user);
    fails(() => readKubeconfig([path]), pattern);
  }
  const noContext = await file('nocontext.yaml', 'clusters: []\n');
  fails(() => readKubeconfig([noContext]), /no current cluster \(current-context is not set\)/);
  const dangling = await file('dangling.yaml', 'current-context: x\ncontexts: [{ name: x, context: { cluster: gone } }]\n');
  fails(() => readKubeconfig([dangling]), /names cluster "gone", which is not defined/);
  const notList = await file('notlist.yaml', 'clusters: { a: 1 }\n');
  fails(() => readKubeconfig([notList]), /clusters must be a list/);
  const scalar = await file('scalar.yaml', 'just text\n');
  fails(() => readKubeconfig([scalar]), /not a kubeconfig/);
});
