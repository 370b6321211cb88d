// `mirra shards` and `mirra locate` against the Kubernetes API stand-in, with
// pods whose annotations the real encoder wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeSummary } from '../internal/routing/encode.ts';
import { createHasher } from '../internal/routing/hash.ts';
import { startKubeApi, type KubeApi } from '../tests/kube/server.ts';

const MIRRA = fileURLToPath(new URL('./mirra.ts', import.meta.url));
const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

function mirra(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MIRRA, ...args], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
let api: KubeApi;
let kubeconfig: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-inspect-'));
  api = await startKubeApi();
  kubeconfig = await api.kubeconfigPath(dir);
  const hasher = await createHasher();
  const nodes = [
    { node: 'node-1', keys: ['docker.io/library/nginx:1.27', digest(1), digest(2)] },
    { node: 'node-2', keys: [digest(2), digest(3)] },
  ];
  for (const [i, { node, keys }] of nodes.entries()) {
    const { annotations } = encodeSummary(keys, { hasher, generation: 1_700_000_000_000 + i });
    api.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `mirra-${node}`,
        namespace: 'mirra',
        labels: { 'app.kubernetes.io/name': 'mirra' },
        annotations: { ...annotations, 'mirra.dev/updated': '2026-11-23T12:00:00Z' },
      },
      spec: { nodeName: node, containers: [{ name: 'registry', image: 'mirra' }] },
      status: { phase: 'Running', podIP: `127.0.0.${i + 2}`, conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'other', namespace: 'mirra', labels: { app: 'other' } },
    spec: { nodeName: 'node-1', containers: [{ name: 'x', image: 'x' }] },
  });
});

after(async () => {
  await api?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

test('mirra shards lists every agent with its summary', async () => {
  const { code, stdout, stderr } = await mirra(['shards', '--kubeconfig', kubeconfig]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /NODE\s+POD\s+READY\s+KEYS\s+SHARDS\s+BYTES/);
  assert.equal(lines.length, 3);
  assert.match(lines[1] ?? '', /^node-1\s+mirra-node-1\s+true\s+3\s+8\s+\d+/);
  assert.match(lines[2] ?? '', /^node-2\s+mirra-node-2\s+true\s+2\s+8\s+\d+/);
  assert.match(stdout, /2026-11-23T12:00:00Z/);

  const json = await mirra(['shards', '--kubeconfig', kubeconfig, '--output', 'json']);
  const rows: unknown = JSON.parse(json.stdout);
  assert.ok(Array.isArray(rows));
  assert.equal(rows.length, 2);
});

test('mirra locate names the agents that claim a digest or a reference', async () => {
  const both = await mirra(['locate', digest(2), '--kubeconfig', kubeconfig]);
  assert.equal(both.code, 0, both.stderr);
  assert.match(both.stdout, /node-1/);
  assert.match(both.stdout, /node-2/);

  const short = await mirra(['locate', 'nginx:1.27', '--kubeconfig', kubeconfig, '--output', 'json']);
  const parsed = JSON.parse(short.stdout) as { key: string; agents: Array<{ node: string }> };
  assert.equal(parsed.key, 'docker.io/library/nginx:1.27');
  assert.deepEqual(
    parsed.agents.map((a) => a.node),
    ['node-1'],
  );

  const none = await mirra(['locate', digest(99), '--kubeconfig', kubeconfig]);
  assert.match(none.stdout, /no agent claims/);
});

test('bad input is one line and exit 2', async () => {
  const missing = await mirra(['locate', '--kubeconfig', kubeconfig]);
  assert.equal(missing.code, 2);
  const bad = await mirra(['locate', 'Not A Ref', '--kubeconfig', kubeconfig]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test("the README's kubectl jsonpath shows the same summaries", async () => {
  const jsonpath = '{range .items[*]}{.spec.nodeName}{"\\t"}{.metadata.annotations.mirra\\.dev/summary}{"\\n"}{end}';
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('kubectl', [
      '--kubeconfig',
      kubeconfig,
      'get',
      'pods',
      '-n',
      'mirra',
      '-l',
      'app.kubernetes.io/name=mirra',
      '-o',
      `jsonpath=${jsonpath}`,
    ]);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`kubectl exited ${code}`))));
  });
  const lines = output.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0] ?? '', /^node-1\tv=1;mode=gcs;s=8;n=3;g=\d+;m=104$/);
  assert.match(lines[1] ?? '', /^node-2\tv=1;mode=gcs;s=8;n=2;/);
});
