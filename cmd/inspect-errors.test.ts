// Every failure of `mirra shards` and `mirra locate` is one line on stderr
// naming the fix, exit 1, never a stack trace: no kubeconfig and no cluster,
// no agents where it looked, RBAC that forbids a call (which verb on which
// resource), an agent whose status cannot be decoded (a note, which pod and
// why: the rest of the table stands), credentials that cannot be had or are
// refused, and an API server out of reach. Against the Kubernetes API
// stand-in over TLS, with authentication and authorization on.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { statusAnnotations, UPDATED_ANNOTATION } from '../internal/owners/status.ts';
import type { RequestAttributes } from '../tests/kube/authz.ts';
import { startKubeApi, type KubeApi } from '../tests/kube/server.ts';
import { runMirra, type CliResult } from '../tests/support/cli.ts';
import { createTestPki, type TestPki } from '../tests/support/pki.ts';

const SHA = `sha256:${'1'.padStart(64, '0')}`;

let dir: string;
let pki: TestPki;
let api: KubeApi;
/** What each token's user may not do: `verb resource` (resource with its subresource). */
const denied = new Map<string, string[]>([
  ['token:no-pods-', ['list pods']],
  ['token:no-slice', ['list endpointslices']],
  ['token:no-proxy', ['get pods/proxy']],
]);

function authorize(attributes: RequestAttributes): boolean {
  const resource = attributes.subresource === '' ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  return !(denied.get(attributes.user) ?? []).includes(`${attributes.verb} ${resource}`);
}

function pod(name: string, annotations: Record<string, string>): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'mirra', labels: { 'app.kubernetes.io/name': 'mirra' }, annotations },
    spec: { nodeName: `node-${name}`, containers: [{ name: 'registry', image: 'mirra', ports: [{ containerPort: 1 }] }] },
    status: { phase: 'Running', podIP: '127.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-inspect-errors-'));
  pki = await createTestPki(dir);
  const tokens = ['reader-token', 'no-pods-token', 'no-slices-token', 'no-proxy-token'];
  api = await startKubeApi({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }, auth: { tokens: () => tokens, authorize } });
  const good = { ...statusAnnotations({ keys: 1, owned: [], postings: 0, members: 1 }), [UPDATED_ANNOTATION]: '2026-12-06T08:00:00.000Z' };
  api.create(pod('a', good));
  api.create(pod('b', { 'mirra.dev/index': 'v=9;keys=lots' }));
  api.create({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'mirra-1', namespace: 'mirra', labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: 'IPv4',
    ports: [{ name: 'registry', port: 1, protocol: 'TCP' }],
    endpoints: ['a', 'b'].map((name) => ({
      addresses: ['127.0.0.1'],
      conditions: { ready: true },
      nodeName: `node-${name}`,
      targetRef: { kind: 'Pod', name, namespace: 'mirra' },
    })),
  });
});

after(async () => {
  await api?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** A kubeconfig for the stand-in with `user`, in its own file. */
async function kubeconfig(name: string, user: Record<string, unknown>, server = api.url): Promise<string> {
  const path = join(dir, `${name}.kubeconfig`);
  const config = {
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': Buffer.from(pki.ca.cert).toString('base64') } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
  };
  await writeFile(path, JSON.stringify(config));
  return path;
}

/** Exit 1, nothing on stdout, one line on stderr matching `pattern`, no stack trace. */
function oneLine(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
  assert.match(result.stderr, pattern);
}

test('no kubeconfig and not in a pod: says where it looked and what to pass', async () => {
  const home = join(dir, 'home');
  await mkdir(home);
  for (const args of [['shards'], ['locate', SHA]]) {
    const result = await runMirra(args, { env: { PATH: process.env.PATH, HOME: home } });
    const where = `${home}/.kube/config`.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    oneLine(result, new RegExp(`^mirra ${args[0]}: no kubeconfig: .*no ${where}, and not in a pod .*: pass --kubeconfig <file> or set KUBECONFIG\\n$`));
  }
});

test('no agents where it looked: names the namespace, the selector and the service', async () => {
  const path = await kubeconfig('reader', { token: 'reader-token' });
  oneLine(
    await runMirra(['shards', '--kubeconfig', path, '--namespace', 'elsewhere']),
    /^mirra shards: no mirra agents in namespace elsewhere: no pod matches --selector app\.kubernetes\.io\/name=mirra and service mirra has no EndpointSlices \(is mirra installed in elsewhere\? pass --namespace, .*\)\n$/,
  );
  oneLine(
    await runMirra(['locate', SHA, '--kubeconfig', path, '--service-name', 'other']),
    /^mirra locate: no mirra agents in namespace mirra: service other has no EndpointSlices \(label kubernetes\.io\/service-name=other\) .*--service-name.*\n$/,
  );
});

test('forbidden by RBAC: names the verb and the resource that are missing, and how to check', async () => {
  oneLine(
    await runMirra(['shards', '--kubeconfig', await kubeconfig('no-pods', { token: 'no-pods-token' })]),
    /^mirra shards: cannot list pods in namespace mirra: forbidden \(needs list on pods; grant it with a Role and RoleBinding in mirra, or use a kubeconfig user that has it; check: kubectl auth can-i list pods -n mirra; the API server said: pods is forbidden: User "token:no-pods-" cannot list resource "pods" in API group "" in the namespace "mirra"\)\n$/,
  );
  oneLine(
    await runMirra(['locate', SHA, '--kubeconfig', await kubeconfig('no-slices', { token: 'no-slices-token' })]),
    /^mirra locate: cannot list endpointslices\.discovery\.k8s\.io in namespace mirra: forbidden \(needs list on endpointslices\.discovery\.k8s\.io; .*check: kubectl auth can-i list endpointslices\.discovery\.k8s\.io -n mirra; .*\)\n$/,
  );
  oneLine(
    await runMirra(['locate', SHA, '--kubeconfig', await kubeconfig('no-proxy', { token: 'no-proxy-token' })]),
    /^mirra locate: cannot get pods\/proxy in namespace mirra: forbidden \(needs get on pods\/proxy; .*check: kubectl auth can-i get pods --subresource=proxy -n mirra; the API server said: pods "[ab]" is forbidden: .*\)\n$/,
  );
});

test('an agent whose status cannot be decoded: the table stands, a note names the pod, why and the fix', async () => {
  const result = await runMirra(['shards', '--kubeconfig', await kubeconfig('reader', { token: 'reader-token' })]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^node-a\s+a\s+true\s+1\s/m);
  assert.match(result.stdout, /^node-b\s+b\s+true\s+-\s.*unreadable status/m);
  assert.equal(
    result.stderr,
    'mirra shards: pod b on node-b: cannot decode its status: unreadable status "v=9;keys=lots" (not the v=2 format); written by another version of mirra, or edited by hand: ' +
      "run the agents' version of mirra, or remove it (kubectl annotate pod b -n mirra mirra.dev/index-) and the agent writes it again at its next change\n",
  );
});

test('credentials that cannot be had (a failing exec plugin, a missing token file) or are refused (401)', async () => {
  const script = join(dir, 'expired-login');
  await writeFile(script, '#!/bin/sh\necho "error: the refresh token expired" >&2\necho "  run: cloud login" >&2\nexit 1\n');
  await chmod(script, 0o755);
  const exec = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: script } };
  oneLine(
    await runMirra(['shards', '--kubeconfig', await kubeconfig('exec-fails', exec)]),
    /^mirra shards: cannot list pods in namespace mirra: cannot get the credentials of context "ctx", user "u" \(exec plugin [^)]*expired-login\): error: the refresh token expired \(log in again, or fix the kubeconfig's user\)\n$/,
  );
  oneLine(
    await runMirra(['shards', '--kubeconfig', await kubeconfig('token-file-missing', { tokenFile: 'no-such-token' })]),
    /^mirra shards: .*token-file-missing\.kubeconfig: user u: tokenFile .*no-such-token cannot be read \(ENOENT[^\n]*\): fix the path, or log in again to write it\n$/,
  );
  oneLine(
    await runMirra(['shards', '--kubeconfig', await kubeconfig('refused', { token: 'stale-token' })]),
    /^mirra shards: cannot list pods in namespace mirra: the API server at https:\/\/127\.0\.0\.1:\d+ refused the credentials \(HTTP 401: log in again or renew the kubeconfig user's token\)\n$/,
  );
});

test('the API server out of reach: not listening, or a certificate that does not verify', async () => {
  const gone = await startKubeApi();
  const server = gone.url.replace('http:', 'https:');
  await gone.stop();
  const down = await kubeconfig('down', { token: 'reader-token' }, server);
  for (const args of [['shards'], ['locate', SHA]]) {
    oneLine(
      await runMirra([...args, '--kubeconfig', down]),
      new RegExp(
        `^mirra ${args[0]}: cannot reach the Kubernetes API at ${server}: connect ECONNREFUSED [^ ]+ \\(is the cluster up and reachable from here, .*\\)\\n$`,
      ),
    );
  }
  const path = join(dir, 'other-ca.kubeconfig');
  const config = {
    clusters: [{ name: 'c', cluster: { server: api.url, 'certificate-authority-data': Buffer.from(pki.otherCa.cert).toString('base64') } }],
    users: [{ name: 'u', user: { token: 'reader-token' } }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
  };
  await writeFile(path, JSON.stringify(config));
  oneLine(
    await runMirra(['shards', '--kubeconfig', path]),
    /^mirra shards: cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+: .*\(UNABLE_TO_VERIFY_LEAF_SIGNATURE: the server's certificate does not verify against the kubeconfig's certificate-authority: .*\)\n$/,
  );
});
