// A real containerd (Debian's 1.6) for tests, run as a plain child process.
//
// How it is run: `containerd --config <dir>/config.toml`, where the generated
// config (version 2) puts root, state, the gRPC socket and the ttrpc socket
// under <dir>, disables the CRI plugin (unless asked for: then it is on for
// image pulls only, criPull) and the snapshotters that need kernel
// or filesystem features that are absent here (aufs, btrfs, zfs, devmapper),
// turns off the debug and metrics endpoints, and points the `opt` plugin at
// <dir>/opt (by default it creates /opt/containerd). Each instance only uses
// its own <dir>, so several can run at once. stop() sends SIGTERM and waits;
// restart() starts a new process on the same config, so the content and
// metadata survive. The snapshotter used to unpack (`ctr ... --snapshotter`)
// is overlayfs when containerd reports it usable, else native.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { criPull } from './cri.ts';
import { startProcess, waitFor, fileExists, type Managed } from './process.ts';

const CONTAINERD = '/usr/bin/containerd';
const CTR = '/usr/bin/ctr';

export interface PullOptions {
  /** A containerd hosts directory (hosts.toml per registry host), as a node has. */
  hostsDir?: string;
  plainHttp?: boolean;
  namespace?: string;
}

export interface TestContainerd {
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
  /** Removes every image of the namespace and waits for the garbage collection of their content. */
  removeAllImages(namespace?: string): Promise<void>;
  stop(): Promise<void>;
  /** Stops (if running) and starts again with the same root, state and socket. */
  restart(): Promise<void>;
}

/** With the CRI plugin: on, for image pulls only (no cgroups, AppArmor, CNI or TCP service), registries from `hostsDir`. */
export interface CriOptions {
  hostsDir: string;
}

function criSection(dir: string, cri: CriOptions, snapshotter: string): string[] {
  return [
    '[plugins."io.containerd.grpc.v1.cri"]',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  disable_tcp_service = true',
    '  disable_cgroup = true',
    '  disable_apparmor = true',
    '  restrict_oom_score_adj = true',
    '',
    '[plugins."io.containerd.grpc.v1.cri".containerd]',
    `  snapshotter = ${JSON.stringify(snapshotter)}`,
    '  discard_unpacked_layers = false',
    '',
    '[plugins."io.containerd.grpc.v1.cri".cni]',
    `  bin_dir = ${JSON.stringify(join(dir, 'cni', 'bin'))}`,
    `  conf_dir = ${JSON.stringify(join(dir, 'cni', 'net.d'))}`,
    '',
    '[plugins."io.containerd.grpc.v1.cri".registry]',
    `  config_path = ${JSON.stringify(cri.hostsDir)}`,
    '',
  ];
}

function configToml(dir: string, socket: string, cri?: CriOptions, criSnapshotter = 'overlayfs'): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = [',
    ...(cri === undefined ? ['  "io.containerd.grpc.v1.cri",'] : []),
    '  "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.snapshotter.v1.btrfs",',
    '  "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.snapshotter.v1.devmapper",',
    ']',
    '',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '',
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '',
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    '',
    ...(cri !== undefined
      ? criSection(dir, cri, criSnapshotter)
      : [
          // What the agent's preflight (--containerd-config-path) checks; the CRI plugin is off, so containerd ignores them.
          '[plugins."io.containerd.grpc.v1.cri".containerd]',
          '  discard_unpacked_layers = false',
          '',
          '[plugins."io.containerd.grpc.v1.cri".registry]',
          `  config_path = ${JSON.stringify(join(dir, 'certs.d'))}`,
          '',
        ]),
  ].join('\n');
}

/** ctr commands time out after 60 s, pulls after 15 min (a 500 MiB image from a 20 MB/s upstream, 4 at once). */
function runCtr(socket: string, args: string[], namespace: string, stdin?: Buffer, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      CTR,
      ['--address', socket, '--namespace', namespace, ...args],
      { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`ctr ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
    else child.stdin?.end();
  });
}

export async function startContainerd(options: { dir: string; name?: string; cri?: CriOptions }): Promise<TestContainerd> {
  const dir = options.dir;
  const name = options.name ?? 'containerd';
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'containerd.sock');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const configPath = join(dir, 'config.toml');
  const logFile = join(dir, `${name}.log`);
  await writeFile(configPath, configToml(dir, socket, options.cri));

  let proc: Managed | undefined;
  let snapshotter = 'native';

  const launch = async (): Promise<void> => {
    const started = startProcess({ name, command: CONTAINERD, args: ['--config', configPath], logFile });
    proc = started;
    try {
      await waitUntilServing(started);
    } catch (err) {
      proc = undefined;
      await started.stop(2000);
      throw err;
    }
  };

  const waitUntilServing = async (started: Managed): Promise<void> => {
    let serving = false;
    const exitedEarly = started.exited.then((code) => {
      if (!serving) throw new Error(`${name} exited (${code}) before serving; see ${logFile}`);
    });
    exitedEarly.catch(() => {});
    const ready = waitFor(
      `${name} socket ${socket}`,
      async () => {
        if (!(await fileExists(socket))) return false;
        await runCtr(socket, ['version'], 'default');
        return true;
      },
      15_000,
      50,
    );
    ready.catch(() => {});
    await Promise.race([ready, exitedEarly]);
    serving = true;
  };

  await launch();
  const plugins = await runCtr(socket, ['plugins', 'ls'], 'default');
  if (/io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok/.test(plugins)) snapshotter = 'overlayfs';
  if (options.cri !== undefined && snapshotter !== 'overlayfs') {
    // The CRI plugin unpacks with the snapshotter of its config: the one that works here.
    await writeFile(configPath, configToml(dir, socket, options.cri, snapshotter));
    await proc?.stop(10_000);
    await launch();
  }

  const ctd: TestContainerd = {
    socket,
    root,
    state,
    contentDir: join(root, 'io.containerd.content.v1.content'),
    configPath,
    logFile,
    get snapshotter() {
      return snapshotter;
    },
    get pid() {
      if (proc === undefined) throw new Error(`${name} is not running`);
      return proc.pid;
    },
    ctr(args, namespace = 'k8s.io', stdin) {
      return runCtr(socket, args, namespace, stdin);
    },
    pull(ref, opts = {}) {
      const args = ['images', 'pull', '--snapshotter', snapshotter];
      if (opts.hostsDir !== undefined) args.push('--hosts-dir', opts.hostsDir);
      if (opts.plainHttp === true) args.push('--plain-http');
      args.push(ref);
      return runCtr(socket, args, opts.namespace ?? 'k8s.io', undefined, 15 * 60_000);
    },
    criPull(ref) {
      if (options.cri === undefined) return Promise.reject(new Error(`${name}: started without the CRI plugin`));
      return criPull(socket, ref);
    },
    async removeAllImages(namespace = 'k8s.io') {
      const names = (await runCtr(socket, ['images', 'ls', '-q'], namespace)).split('\n').filter((line) => line !== '');
      if (names.length > 0) await runCtr(socket, ['images', 'rm', '--sync', ...names], namespace);
    },
    async stop() {
      const current = proc;
      proc = undefined;
      if (current !== undefined) await current.stop(10_000);
    },
    async restart() {
      await ctd.stop();
      await launch();
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
      execFile('tar', ['-C', layout, '-cf', tarFile, '.'], (err, _stdout, stderr) =>
        err ? reject(new Error(`tar: ${stderr || err.message}`)) : resolve(),
      );
    });
    await ctd.ctr(['images', 'import', '--no-unpack', '--all-platforms', tarFile], namespace);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
