// The agent's start-up check asks containerd its version (Version over gRPC)
// because a `:`-separated registry config_path breaks containerd 2.1+ (its
// transfer service takes it as one directory) but not 1.x. This runs the real
// releases the tests use (2.1 and 1.7 from hack/containerd.sh, bookworm's 1.6),
// each as a bare daemon (CRI and NRI off, everything under a temp dir), asks
// each its version, and runs the check with it on a config with such a list.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { containerdVersion, requestContainerdVersion } from '../../internal/containerd/version.ts';
import { checkContainerdConfig } from '../../internal/containerd/preflight.ts';
import { containerdRelease, type ContainerdRelease, type ContainerdSeries } from '../support/containerd-release.ts';
import { fileExists, startProcess, waitFor, type Managed } from '../support/process.ts';

const DISABLED = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.cri.v1.images',
  'io.containerd.cri.v1.runtime',
  'io.containerd.nri.v1.nri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
];

function daemonConfig(dir: string, socket: string, configVersion: number): string {
  return [
    `version = ${configVersion}`,
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    `disabled_plugins = ${JSON.stringify(DISABLED)}`,
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
  ].join('\n');
}

/** The node's config.toml as the agent's check reads it: config_path is the 2.2-style list. */
function nodeConfig(configVersion: number): string {
  const table = configVersion === 3 ? "[plugins.'io.containerd.cri.v1.images'.registry]" : '[plugins."io.containerd.grpc.v1.cri".registry]';
  return `version = ${configVersion}\n${table}\n  config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'\n`;
}

async function startBare(release: ContainerdRelease, dir: string): Promise<{ socket: string; proc: Managed }> {
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await writeFile(config, daemonConfig(dir, socket, release.configVersion));
  const logFile = join(dir, 'containerd.log');
  const proc = startProcess({ name: `containerd-${release.series}`, command: release.containerd, args: ['--config', config], logFile });
  try {
    await waitFor(`containerd ${release.series} at ${socket} (log ${logFile})`, async () => {
      if (!proc.isRunning()) throw new Error(`containerd ${release.series} exited; see ${logFile}`);
      if (!(await fileExists(socket))) return false;
      await requestContainerdVersion(socket, 2_000);
      return true;
    });
  } catch (err) {
    await proc.stop(2_000);
    throw err;
  }
  return { socket, proc };
}

const EXPECTED: Record<ContainerdSeries, { major: number; minor: number; transferService: boolean }> = {
  '2.1': { major: 2, minor: 1, transferService: true },
  '1.7': { major: 1, minor: 7, transferService: false },
  '1.6': { major: 1, minor: 6, transferService: false },
};

describe('containerd Version over gRPC, and the preflight with it', { timeout: 120_000 }, () => {
  for (const series of ['2.1', '1.7', '1.6'] as const) {
    test(`containerd ${series}`, async () => {
      const release = containerdRelease({ ...process.env, MIRRA_CONTAINERD: series });
      assert.ok(await fileExists(release.containerd), `${release.containerd} is missing: run npm run setup (hack/containerd.sh) as root once`);
      const dir = await mkdtemp(join(tmpdir(), 'mirra-ctdv-'));
      let proc: Managed | undefined;
      try {
        const started = await startBare(release, dir);
        proc = started.proc;
        const raw = await requestContainerdVersion(started.socket);
        const version = await containerdVersion(started.socket);
        assert.ok(version.known, `unparsed version ${JSON.stringify(raw)}`);
        assert.deepEqual([version.major, version.minor], [EXPECTED[series].major, EXPECTED[series].minor], raw.version);
        assert.match(version.text, new RegExp(`^${series.replace('.', '\\.')}\\.\\d+`));

        const node = join(dir, 'node-config.toml');
        await writeFile(node, nodeConfig(release.configVersion));
        const problem = await checkContainerdConfig(node, version);
        if (EXPECTED[series].transferService) {
          assert.match(problem ?? '', new RegExp(`^containerd ${version.text.replace(/[.+]/g, '\\$&')} pulls through its transfer service, `));
          assert.match(problem ?? '', /set config_path = "\/etc\/containerd\/certs\.d", or use_local_image_pull = true/);
        } else {
          assert.equal(problem, undefined);
        }
      } finally {
        await proc?.stop(10_000);
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  test('nothing listening: the version is unknown, with the reason, and nothing throws', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirra-ctdv-'));
    try {
      const socket = join(dir, 'absent.sock');
      const started = Date.now();
      const version = await containerdVersion(socket);
      assert.ok(Date.now() - started < 4_000, 'fails fast, well before the deadline');
      assert.equal(version.known, false);
      if (!version.known) assert.match(version.reason, new RegExp(`^cannot ask containerd at ${socket.replace(/[.]/g, '\\.')} its version: `));
      if (!version.known) assert.doesNotMatch(version.reason, /\n/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
