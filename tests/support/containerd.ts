// A real containerd for tests, run as a plain child process: 2.1 by default,
// 1.7 or 1.6 with MIRRA_CONTAINERD (containerd-release.ts).
//
// How it is run: `containerd --config <dir>/config.toml`, where the generated
// config (version 3 for 2.x, version 2 for 1.x) puts root, state, the gRPC
// socket and the ttrpc socket under <dir>, disables the CRI plugin (unless
// asked for: then it is on for image pulls only, criPull, with its registries
// from a hosts dir; on 2.x through the transfer service, containerd's default
// since 2.1) and the snapshotters that need kernel or filesystem features that
// are absent here (aufs, btrfs, zfs, devmapper, erofs; on 2.x also NRI, whose
// socket would be shared), turns off the debug and
// metrics endpoints, and points the `opt` plugin at <dir>/opt (by default it
// creates /opt/containerd). Each instance only uses its own <dir>, so several
// can run at once. stop() sends SIGTERM and waits; restart() starts a new
// process on the same config, so the content and metadata survive. The
// snapshotter used to unpack (`ctr ... --snapshotter`, the CRI's) is overlayfs
// when containerd reports it usable, else native.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerdRelease, type ContainerdRelease } from './containerd-release.ts';
import { criPull } from './cri.ts';
import { startProcess, waitFor, fileExists, type Managed } from './process.ts';

export interface PullOptions {
  /** A containerd hosts directory (hosts.toml per registry host), as a node has. */
  hostsDir?: string;
  plainHttp?: boolean;
  namespace?: string;
}

export interface TestContainerd {
  readonly release: ContainerdRelease;
  readonly socket: string;
  readonly root: string;
  readonly state: string;
  /** <root>/io.containerd.content.v1.content */
  readonly contentDir: string;
  readonly configPath: string;
  readonly logFile: string;
  /** The snapshotter ctr should unpack with: overlayfs or native. */
  readonly snapshotter: string;
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** Runs `ctr --address <socket> -n <namespace> ...args`; rejects with stderr on failure. */
  ctr(args: string[], namespace?: string, stdin?: Buffer): Promise<string>;
  /** `ctr images pull` (unpacking with the chosen snapshotter). */
  pull(ref: string, opts?: PullOptions): Promise<string>;
  /** A pull through the CRI plugin, as the kubelet makes it (started with `cri` only); resolves with the image id. */
  criPull(ref: string): Promise<string>;
  /**
   * Removes the image `ref` by every name that points at the same target (the
   * CRI names a pulled image by its tag, its repo digest and its id, and
   * removes them together, as `crictl rmi` does), waiting for the garbage
   * collection of its content.
   */
  removeImage(ref: string, namespace?: string): Promise<void>;
  /** Removes every image of the namespace and waits for the garbage collection of their content. */
  removeAllImages(namespace?: string): Promise<void>;
  stop(): Promise<void>;
  /** Stops (if running) and starts again with the same root, state and socket. */
  restart(): Promise<void>;
}

/** With the CRI plugin: on, for image pulls only (no cgroups, AppArmor, CNI or TCP service), registries from `hostsDir`. */
export interface CriOptions {
  hostsDir: string;
  /**
   * 2.x: the transfer service's concurrent_layer_fetch_buffer in bytes (chunked
   * layer fetch: open-ended Range requests, `maxConcurrentDownloads` at once);
   * default 0, off, as containerd ships it.
   */
  chunkBytes?: number;
  /** max_concurrent_downloads (containerd's default 3). */
  maxConcurrentDownloads?: number;
}

interface ConfigInput {
  dir: string;
  socket: string;
  cri: CriOptions | undefined;
  snapshotter: string;
}

const DISABLED_SNAPSHOTTERS = ['aufs', 'btrfs', 'zfs', 'devmapper'].map((name) => `io.containerd.snapshotter.v1.${name}`);

/** What both config versions share: where everything lives, no debug or metrics endpoint. */
function commonSections(input: ConfigInput): string[] {
  return [
    '[grpc]',
    `  address = ${JSON.stringify(input.socket)}`,
    '',
    '[ttrpc]',
    `  address = ${JSON.stringify(`${input.socket}.ttrpc`)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '',
    '[metrics]',
    '  address = ""',
    '',
  ];
}

function tomlList(key: string, items: string[]): string[] {
  return [`${key} = [`, ...items.map((item) => `  ${JSON.stringify(item)},`), ']'];
}

/** Version 2 (containerd 1.x): one CRI plugin, io.containerd.grpc.v1.cri. */
function configV2(input: ConfigInput): string {
  const { dir, cri } = input;
  const criTable = '[plugins."io.containerd.grpc.v1.cri"';
  const lines = [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    ...tomlList('disabled_plugins', [...(cri === undefined ? ['io.containerd.grpc.v1.cri'] : []), ...DISABLED_SNAPSHOTTERS]),
    '',
    ...commonSections(input),
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
  ];
  if (cri === undefined) {
    // What the agent's preflight (--containerd-config-path) checks; the CRI plugin is off, so containerd ignores them.
    return [
      ...lines,
      `${criTable}.containerd]`,
      '  discard_unpacked_layers = false',
      '',
      `${criTable}.registry]`,
      `  config_path = ${JSON.stringify(join(dir, 'certs.d'))}`,
      '',
    ].join('\n');
  }
  return [
    ...lines,
    `${criTable}]`,
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  disable_tcp_service = true',
    '  disable_cgroup = true',
    '  disable_apparmor = true',
    '  restrict_oom_score_adj = true',
    `  max_concurrent_downloads = ${cri.maxConcurrentDownloads ?? 3}`,
    '',
    `${criTable}.containerd]`,
    `  snapshotter = ${JSON.stringify(input.snapshotter)}`,
    '  discard_unpacked_layers = false',
    '',
    `${criTable}.cni]`,
    `  bin_dir = ${JSON.stringify(join(dir, 'cni', 'bin'))}`,
    `  conf_dir = ${JSON.stringify(join(dir, 'cni', 'net.d'))}`,
    '',
    `${criTable}.registry]`,
    `  config_path = ${JSON.stringify(cri.hostsDir)}`,
    '',
  ].join('\n');
}

const CRI_PLUGINS_V3 = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime'];

/**
 * Version 3 (containerd 2.x): the CRI split into its image service
 * (io.containerd.cri.v1.images: snapshotter, registry config_path), its runtime
 * (io.containerd.cri.v1.runtime) and the gRPC server (io.containerd.grpc.v1.cri);
 * pulls go through the transfer service (io.containerd.transfer.v1.local),
 * whose settings decide chunked fetch.
 */
function configV3(input: ConfigInput): string {
  const { dir, cri } = input;
  const lines = [
    'version = 3',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    ...tomlList('disabled_plugins', [
      ...(cri === undefined ? CRI_PLUGINS_V3 : []),
      ...DISABLED_SNAPSHOTTERS,
      'io.containerd.snapshotter.v1.erofs',
      'io.containerd.differ.v1.erofs',
      'io.containerd.nri.v1.nri',
    ]),
    '',
    ...commonSections(input),
    "[plugins.'io.containerd.internal.v1.opt']",
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
    "[plugins.'io.containerd.cri.v1.images']",
    `  snapshotter = ${JSON.stringify(input.snapshotter)}`,
    '  discard_unpacked_layers = false',
    // max_concurrent_downloads stays at its default 3 here: any other value makes the CRI fall back to pulling locally.
    '',
    "[plugins.'io.containerd.cri.v1.images'.registry]",
    // With the CRI off, what the agent's preflight (--containerd-config-path) reads; containerd ignores it.
    `  config_path = ${JSON.stringify(cri?.hostsDir ?? join(dir, 'certs.d'))}`,
    '',
  ];
  if (cri === undefined) return lines.join('\n');
  return [
    ...lines,
    "[plugins.'io.containerd.transfer.v1.local']",
    `  max_concurrent_downloads = ${cri.maxConcurrentDownloads ?? 3}`,
    `  concurrent_layer_fetch_buffer = ${cri.chunkBytes ?? 0}`,
    '',
    "[plugins.'io.containerd.grpc.v1.cri']",
    '  disable_tcp_service = true',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '',
    "[plugins.'io.containerd.cri.v1.runtime']",
    '  disable_apparmor = true',
    '  restrict_oom_score_adj = true',
    '',
    "[plugins.'io.containerd.cri.v1.runtime'.cni]",
    `  bin_dirs = [${JSON.stringify(join(dir, 'cni', 'bin'))}]`,
    `  conf_dir = ${JSON.stringify(join(dir, 'cni', 'net.d'))}`,
    '',
  ].join('\n');
}

function configToml(release: ContainerdRelease, input: ConfigInput): string {
  return release.configVersion === 3 ? configV3(input) : configV2(input);
}

interface CtrTarget {
  ctr: string;
  socket: string;
}

interface CtrCall {
  namespace: string;
  stdin?: Buffer;
  /** Default 60 s; pulls get 15 min (a 500 MiB image from a 20 MB/s upstream, 4 at once). */
  timeoutMs?: number;
}

function runCtr(target: CtrTarget, args: string[], call: CtrCall): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      target.ctr,
      ['--address', target.socket, '--namespace', call.namespace, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: call.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`ctr ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.end(call.stdin);
  });
}

const PULL_TIMEOUT_MS = 15 * 60_000;

/** Starts `containerd --config` and resolves once it answers `ctr version`; rejects (and stops it) when it exits first or takes over 15 s. */
async function launchContainerd(name: string, release: ContainerdRelease, paths: { configPath: string; socket: string; logFile: string }): Promise<Managed> {
  const started = startProcess({ name, command: release.containerd, args: ['--config', paths.configPath], logFile: paths.logFile });
  let serving = false;
  const exitedEarly = started.exited.then((code) => {
    if (!serving) throw new Error(`${name} exited (${code}) before serving; see ${paths.logFile}`);
  });
  exitedEarly.catch(() => {});
  const target = { ctr: release.ctr, socket: paths.socket };
  const ready = waitFor(
    `${name} socket ${paths.socket}`,
    async () => {
      if (!(await fileExists(paths.socket))) return false;
      await runCtr(target, ['version'], { namespace: 'default' });
      return true;
    },
    15_000,
    50,
  );
  ready.catch(() => {});
  try {
    await Promise.race([ready, exitedEarly]);
    serving = true;
    return started;
  } catch (err) {
    await started.stop(2000);
    throw err;
  }
}

export async function startContainerd(options: { dir: string; name?: string; cri?: CriOptions }): Promise<TestContainerd> {
  const release = containerdRelease();
  const dir = options.dir;
  const name = options.name ?? 'containerd';
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const root = join(dir, 'root');
  const paths = { configPath: join(dir, 'config.toml'), socket, logFile: join(dir, `${name}.log`) };
  const target = { ctr: release.ctr, socket };
  const input: ConfigInput = { dir, socket, cri: options.cri, snapshotter: 'overlayfs' };
  await writeFile(paths.configPath, configToml(release, input));

  let proc: Managed | undefined = await launchContainerd(name, release, paths);
  const plugins = await runCtr(target, ['plugins', 'ls'], { namespace: 'default' });
  const snapshotter = /io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok/.test(plugins) ? 'overlayfs' : 'native';
  if (options.cri !== undefined && snapshotter !== 'overlayfs') {
    // The CRI plugin unpacks with the snapshotter of its config: the one that works here.
    await writeFile(paths.configPath, configToml(release, { ...input, snapshotter }));
    await proc.stop(10_000);
    proc = await launchContainerd(name, release, paths);
  }

  const ctd: TestContainerd = {
    release,
    socket,
    root,
    state: join(dir, 'state'),
    contentDir: join(root, 'io.containerd.content.v1.content'),
    configPath: paths.configPath,
    logFile: paths.logFile,
    snapshotter,
    get pid() {
      if (proc === undefined) throw new Error(`${name} is not running`);
      return proc.pid;
    },
    ctr(args, namespace = 'k8s.io', stdin) {
      return runCtr(target, args, { namespace, stdin });
    },
    pull(ref, opts = {}) {
      const args = ['images', 'pull', '--snapshotter', snapshotter];
      if (opts.hostsDir !== undefined) args.push('--hosts-dir', opts.hostsDir);
      if (opts.plainHttp === true) args.push('--plain-http');
      args.push(ref);
      return runCtr(target, args, { namespace: opts.namespace ?? 'k8s.io', timeoutMs: PULL_TIMEOUT_MS });
    },
    criPull(ref) {
      if (options.cri === undefined) return Promise.reject(new Error(`${name}: started without the CRI plugin`));
      return criPull(socket, ref, PULL_TIMEOUT_MS);
    },
    async removeImage(ref, namespace = 'k8s.io') {
      // `ctr images ls`: REF TYPE DIGEST SIZE PLATFORMS LABELS, one image a line after the header.
      const rows = (await runCtr(target, ['images', 'ls'], { namespace }))
        .split('\n')
        .slice(1)
        .map((line) => line.split(/\s+/));
      const digest = rows.find((row) => row[0] === ref)?.[2];
      if (digest === undefined) throw new Error(`${name}: no image ${ref}`);
      const names = rows.filter((row) => row[2] === digest).map((row) => row[0] ?? '');
      await runCtr(target, ['images', 'rm', '--sync', ...names], { namespace });
    },
    async removeAllImages(namespace = 'k8s.io') {
      const names = (await runCtr(target, ['images', 'ls', '-q'], { namespace })).split('\n').filter((line) => line !== '');
      if (names.length > 0) await runCtr(target, ['images', 'rm', '--sync', ...names], { namespace });
    },
    async stop() {
      const current = proc;
      proc = undefined;
      if (current !== undefined) await current.stop(10_000);
    },
    async restart() {
      await ctd.stop();
      proc = await launchContainerd(name, release, paths);
    },
  };
  return ctd;
}

/** A containerd in a fresh temp dir; dispose() stops it and removes the dir. */
export async function startTempContainerd(name = 'containerd'): Promise<TestContainerd & { dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-ctd-'));
  try {
    const ctd = await startContainerd({ dir, name });
    return Object.assign(ctd, {
      dir,
      async dispose() {
        await ctd.stop();
        await rm(dir, { recursive: true, force: true });
      },
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface LayoutBlob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/**
 * Imports content into containerd without a registry: writes an OCI image
 * layout (oci-layout, index.json naming `reference`, blobs/sha256/...), tars it
 * and runs `ctr images import --no-unpack --all-platforms` (so layers may be
 * any bytes). `root` is the image's target (a manifest or an index); `blobs`
 * must hold it and everything it references.
 */
export async function importImage(
  ctd: TestContainerd,
  image: { reference: string; root: LayoutBlob; blobs: LayoutBlob[] },
  namespace = 'k8s.io',
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-layout-'));
  try {
    const layout = join(dir, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const root = { mediaType: image.root.mediaType, digest: image.root.digest, size: image.root.bytes.length };
    const index = {
      schemaVersion: 2,
      manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': image.reference } }],
    };
    await writeFile(join(layout, 'index.json'), JSON.stringify(index));
    for (const blob of [image.root, ...image.blobs]) {
      const [algorithm, hex] = blob.digest.split(':');
      if (algorithm !== 'sha256' || hex === undefined || !/^[a-f0-9]{64}$/.test(hex)) throw new Error(`bad digest ${blob.digest}`);
      await writeFile(join(layout, 'blobs', 'sha256', hex), blob.bytes);
    }
    const tarFile = join(dir, 'image.tar');
    await new Promise<void>((resolve, reject) => {
      execFile('tar', ['-C', layout, '-cf', tarFile, '.'], (err, _stdout, stderr) => (err ? reject(new Error(`tar: ${stderr || err.message}`)) : resolve()));
    });
    await ctd.ctr(['images', 'import', '--no-unpack', '--all-platforms', tarFile], namespace);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
