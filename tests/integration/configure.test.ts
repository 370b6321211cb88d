// `mirra configure` / `mirra cleanup` and the agent's preflight, run as the
// real CLI: configure writes a certs.d for a local docker-registry with a
// running agent as the mirror, a real containerd pulls through what it wrote,
// cleanup removes exactly that; the agent refuses to start on a containerd
// config that breaks a rule.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startAgent, type TestAgent } from '../support/agent.ts';
import type { TestContainerd } from '../support/containerd.ts';
import type { GeneratedImage } from '../support/image.ts';
import { startNodePair, type NodePair } from '../support/node-pair.ts';
import { freePort } from '../support/process.ts';
import type { Upstream } from '../support/upstream.ts';

const MIRRA = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));
const KiB = 1024;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function mirra(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MIRRA, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every file under dir as relative path -> text. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out[join(entry.parentPath, entry.name).slice(dir.length + 1)] = await readFile(join(entry.parentPath, entry.name), 'utf8');
  }
  return out;
}

describe('mirra configure, a real containerd pulling through it, mirra cleanup', { timeout: 240_000 }, () => {
  let pair: NodePair;
  let upstream: Upstream;
  let images: GeneratedImage[];
  let nodeB: TestContainerd;
  let agent: TestAgent;

  before(async () => {
    // The agent runs its preflight on node A's config (discard_unpacked_layers = false, config_path set).
    pair = await startNodePair({
      prefix: 'mirra-it-configure-',
      images: ['app', 'tool'].map((name) => ({ repository: `team/${name}`, layers: [300 * KiB, 700 * KiB + 3], seed: `it-configure-${name}` })),
      agent: (nodeA) => ({ containerdConfigPath: nodeA.configPath }),
    });
    ({ upstream, images, nodeB, agent } = pair);
  });

  after(async () => {
    await pair?.stop();
  });

  test('configure writes hosts.toml, containerd pulls through the agent, cleanup removes exactly that', async () => {
    const certsDir = pair.nodeBHostsDir;
    await mkdir(join(certsDir, 'quay.io'), { recursive: true });
    await writeFile(join(certsDir, 'quay.io', 'hosts.toml'), 'server = "https://quay.io"\n');
    await writeFile(join(certsDir, 'README'), 'not mirra\n');
    const before = await tree(certsDir);

    const configured = await mirra([
      'configure',
      '--containerd-registry-config-path',
      certsDir,
      '--mirrored-registries',
      `http://${upstream.host}`,
      '--mirror-targets',
      agent.url,
    ]);
    assert.equal(configured.code, 0, configured.stderr);
    const hostsFile = join(certsDir, upstream.host, 'hosts.toml');
    assert.equal(configured.stdout, `wrote ${hostsFile}\n`);
    const text = await readFile(hostsFile, 'utf8');
    assert.match(text, /^# managed by mirra/);
    assert.match(text, new RegExp(`server = "http://${upstream.host}"`));
    assert.match(text, new RegExp(`\\[host\\."${agent.url}"\\]\\n  capabilities = \\["pull", "resolve"\\]`));

    upstream.resetCounts();
    const image = images[0]!;
    await nodeB.criPull(`${upstream.host}/team/app:v1`);
    const counts = upstream.counts();
    assert.equal(counts.blobGets, 0, JSON.stringify(counts.requests));
    assert.equal(counts.manifestGets + counts.manifestHeads, 0, JSON.stringify(counts.requests));
    const lines = await agent.accessLines();
    for (const layer of image.layers) {
      assert.ok(
        lines.some((line) => line.handler === 'blob' && line.status === 200 && String(line.url).includes(layer.digest)),
        `agent served ${layer.digest}`,
      );
    }

    const cleaned = await mirra(['cleanup', '--containerd-registry-config-path', certsDir]);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.equal(cleaned.stdout, `removed ${hostsFile}\nremoved-dir ${join(certsDir, upstream.host)}\n`);
    assert.deepEqual(await tree(certsDir), before);
    assert.deepEqual((await readdir(certsDir)).sort(), ['README', 'quay.io']);
  });

  test('--resolve-tags=false: containerd resolves the tag upstream but still takes every blob from the agent', async () => {
    // node B's CRI reads its one hosts dir (config_path); the test before left only what was there before mirra.
    const certsDir = pair.nodeBHostsDir;
    const before = await tree(certsDir);
    const configured = await mirra([
      'configure',
      '--containerd-registry-config-path',
      certsDir,
      '--mirrored-registries',
      `http://${upstream.host}`,
      '--mirror-targets',
      agent.url,
      '--resolve-tags=false',
    ]);
    assert.equal(configured.code, 0, configured.stderr);
    upstream.resetCounts();
    await nodeB.criPull(`${upstream.host}/team/tool:v1`);
    const counts = upstream.counts();
    assert.ok(counts.manifestHeads + counts.manifestGets >= 1, 'the tag was resolved upstream');
    assert.equal(counts.blobGets, 0, JSON.stringify(counts.requests));
    const cleaned = await mirra(['cleanup', '--containerd-registry-config-path', certsDir]);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.deepEqual(await tree(certsDir), before);
  });

  test('bad configure flags are one line and exit 2', async () => {
    for (const args of [
      ['configure', '--mirrored-registries', 'docker.io'],
      ['configure', '--mirror-targets', 'not a url'],
      ['configure', '--mirror-targets', 'http://127.0.0.1:1', '--bogus'],
      ['cleanup', 'extra'],
    ]) {
      const run = await mirra(args);
      assert.equal(run.code, 2, args.join(' '));
      assert.equal(run.stderr.split('\n').filter((l) => l !== '').length, 1, run.stderr);
      assert.match(run.stderr, /^mirra (configure|cleanup): /);
    }
  });
});

describe('agent preflight against containerd configs', { timeout: 60_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-it-preflight-'));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const agentArgs = (configPath: string): string[] => [
    'registry',
    '--containerd-config-path',
    configPath,
    '--containerd-sock',
    '/nonexistent/containerd.sock',
    '--registry-addr',
    '127.0.0.1:1',
    '--metrics-addr=',
  ];

  test('each broken rule: exit 1 with one line naming the setting, the file and the fix', async () => {
    const registry = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n';
    const cases: Array<[string, string | undefined, RegExp]> = [
      [
        'discard',
        `version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = true\n${registry}`,
        /discard_unpacked_layers = true in \S+discard\.toml \[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\]\); set it to false and restart containerd/,
      ],
      [
        'no-config-path',
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = false\n',
        /no registry config_path \(config_path is not set in \S+no-config-path\.toml .*\); set config_path = "\/etc\/containerd\/certs\.d"/,
      ],
      [
        'v3-empty-config-path',
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = ''\n",
        /config_path = "" in \S+v3-empty-config-path\.toml \[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]/,
      ],
      ['missing', undefined, /containerd config \S+missing\.toml not found: mount .*--preflight=false/],
    ];
    for (const [name, text, pattern] of cases) {
      const path = join(dir, `${name}.toml`);
      if (text !== undefined) await writeFile(path, text);
      const run = await mirra(agentArgs(path));
      assert.equal(run.code, 1, `${name}: ${run.stderr}`);
      assert.equal(run.stdout, '', name);
      const lines = run.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, `${name}: ${run.stderr}`);
      assert.match(lines[0] ?? '', /^mirra registry: /);
      assert.match(lines[0] ?? '', pattern, name);
    }
  });

  test('a good config passes, and --preflight=false skips the check: the agent listens', async () => {
    const good = join(dir, 'good.toml');
    await writeFile(good, 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n');
    const common = { dir, host: '127.0.0.1', containerdSock: join(dir, 'no-containerd.sock'), contentPath: join(dir, 'content') };
    const checked = await startAgent({ ...common, name: 'agent-good', port: await freePort(), containerdConfigPath: good });
    await checked.stop();
    const unchecked = await startAgent({
      ...common,
      name: 'agent-unchecked',
      port: await freePort(),
      extraArgs: ['--containerd-config-path', join(dir, 'missing.toml')],
    });
    await unchecked.stop();
  });
});
