// The test containerd itself: the release MIRRA_CONTAINERD chooses, several at
// once, restart keeps the data, and `pull` goes through a hosts.toml mirror (a
// real docker-registry) and unpacks.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { containerdRelease } from './containerd-release.ts';
import { startContainerd, startTempContainerd } from './containerd.ts';
import { freePort, portOpen, startProcess, waitFor, type Managed } from './process.ts';

const run = promisify(execFile);

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** An OCI layout with one real (unpackable) layer, as skopeo reads it. */
async function writeLayout(dir: string): Promise<void> {
  const files = join(dir, 'files');
  await mkdir(files, { recursive: true });
  await writeFile(join(files, 'hello.txt'), `hello ${Date.now()}\n`);
  await run('tar', ['-C', files, '-cf', join(dir, 'layer.tar'), 'hello.txt']);
  const tar = await readFile(join(dir, 'layer.tar'));
  const layer = gzipSync(tar);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] }, config: {} }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(layer)}`, size: layer.length }],
    }),
  );
  const layout = join(dir, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  for (const blob of [layer, config, manifest]) await writeFile(join(layout, 'blobs', 'sha256', sha256(blob)), blob);
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${sha256(manifest)}`,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': 'v1' },
      },
    ],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
}

describe('test containerd', () => {
  let dir: string;
  let registry: Managed | undefined;
  let port: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-ctd-support-'));
    port = await freePort();
    const config = [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'registry')} } }`,
      `http: { addr: 127.0.0.1:${port} }`,
    ].join('\n');
    await writeFile(join(dir, 'registry.yml'), config);
    registry = startProcess({
      name: 'docker-registry',
      command: '/usr/bin/docker-registry',
      args: ['serve', join(dir, 'registry.yml')],
      logFile: join(dir, 'registry.log'),
    });
    await waitFor('docker-registry', () => portOpen('127.0.0.1', port));
    await writeLayout(dir);
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(dir, 'layout')}:v1`, `docker://127.0.0.1:${port}/mirra-test/hello:v1`]);
  });
  after(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('runs the release MIRRA_CONTAINERD names (default 2.1) with its config version', async () => {
    const c = await startTempContainerd('containerd-release');
    try {
      const release = containerdRelease();
      assert.equal(c.release.series, release.series);
      // `ctr version`: the server's version, e.g. "Version:  2.1.9+unknown" or "Version:  1.6.20~ds1".
      const server = (await c.ctr(['version'])).split('Server:')[1] ?? '';
      assert.match(server, new RegExp(`Version:\\s+v?${release.series.replace('.', '\\.')}\\.`));
      assert.match(await readFile(c.configPath, 'utf8'), new RegExp(`^version = ${release.configVersion}$`, 'm'));
    } finally {
      await c.dispose();
    }
  });

  it('an unknown MIRRA_CONTAINERD is one line naming the variable', () => {
    assert.throws(() => containerdRelease({ MIRRA_CONTAINERD: '1.5' }), /^Error: MIRRA_CONTAINERD="1.5": use one of 2.1, 1.7, 1.6 \(default 2.1\)$/);
  });

  it('runs two instances at once, pulls through a mirror, keeps data over a restart', async () => {
    const a = await startTempContainerd('containerd-a');
    const b = await startTempContainerd('containerd-b');
    try {
      assert.notEqual(a.socket, b.socket);
      // Directly from the plain-HTTP registry.
      await a.pull(`127.0.0.1:${port}/mirra-test/hello:v1`, { plainHttp: true });
      // As a node does: docker.io is mirrored by hosts.toml to the local registry.
      const hostsDir = join(b.dir, 'hosts');
      await mkdir(join(hostsDir, 'docker.io'), { recursive: true });
      await writeFile(
        join(hostsDir, 'docker.io', 'hosts.toml'),
        `server = "https://registry-1.docker.io"\n[host."http://127.0.0.1:${port}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      await b.pull('docker.io/mirra-test/hello:v1', { hostsDir });
      assert.equal((await a.ctr(['images', 'ls', '-q'])).trim(), `127.0.0.1:${port}/mirra-test/hello:v1`);
      assert.equal((await b.ctr(['images', 'ls', '-q'])).trim(), 'docker.io/mirra-test/hello:v1');
      const pid = b.pid;
      await b.restart();
      assert.notEqual(b.pid, pid);
      assert.equal((await b.ctr(['images', 'ls', '-q'])).trim(), 'docker.io/mirra-test/hello:v1');
      await assert.rejects(b.ctr(['images', 'pull', 'no-such-registry.invalid/x:y']), /ctr images pull/);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it('pulls through the CRI plugin as the kubelet does (hosts dir, k8s.io), and removeAllImages frees the content', async () => {
    const dirC = await mkdtemp(join(tmpdir(), 'mirra-ctd-cri-'));
    const hostsDir = join(dirC, 'certs.d');
    const c = await startContainerd({ dir: join(dirC, 'containerd'), name: 'containerd-cri', cri: { hostsDir } });
    try {
      await mkdir(join(hostsDir, `127.0.0.1:${port}`), { recursive: true });
      await writeFile(join(hostsDir, `127.0.0.1:${port}`, 'hosts.toml'), `server = "http://127.0.0.1:${port}"\n`);
      const id = await c.criPull(`127.0.0.1:${port}/mirra-test/hello:v1`);
      assert.match(id, /^sha256:[0-9a-f]{64}$/);
      const names = (await c.ctr(['images', 'ls', '-q'])).split('\n').filter((l) => l !== '');
      assert.ok(names.includes(`127.0.0.1:${port}/mirra-test/hello:v1`), names.join(' '));
      assert.ok(names.includes(id), 'the CRI names the image by its id too');
      assert.ok((await c.ctr(['content', 'ls', '-q'])).includes(id));
      await c.removeAllImages();
      assert.equal((await c.ctr(['images', 'ls', '-q'])).trim(), '');
      assert.equal((await c.ctr(['content', 'ls', '-q'])).includes(id), false, 'content collected');
      await assert.rejects(
        startTempContainerd().then((plain) => plain.criPull('x').finally(() => plain.dispose())),
        /without the CRI plugin/,
      );
    } finally {
      await c.stop();
      await rm(dirC, { recursive: true, force: true });
    }
  });
});
