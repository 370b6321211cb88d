// A real upstream registry for tests, the demo and benchmarks: Debian's
// docker-registry (CNCF distribution 2.8) on a loopback port, behind a counting
// reverse proxy (counting-proxy.ts) that can also limit bandwidth like a remote
// registry. Clients use `host` (the proxy); images are pushed with skopeo,
// directly to the registry by default so the counts only show client traffic.
// With `tokenAuth` the registry is private: distribution's `auth: token`, its
// realm a token service (token-service.ts); every request, /v2/ included,
// then needs a Bearer token, and pushes need credentials with push access.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startCountingProxy, type Counts, type CountingProxy } from './counting-proxy.ts';
import { freePort, startProcess, waitFor, type Managed } from './process.ts';

export type { CountedRequest, Counts, RequestKind } from './counting-proxy.ts';

/** Debian's docker-registry (distribution 2.8), the upstream. */
export const REGISTRY_BIN = '/usr/bin/docker-registry';
/** Debian's skopeo, which pushes images to it. */
export const SKOPEO_BIN = '/usr/bin/skopeo';

export interface UpstreamOptions {
  /** Working directory: config.yml, registry.log and the registry's storage/ go here (created if missing). */
  dir: string;
  /** Response bandwidth limit of the proxy, shared by all connections. Default: unlimited. */
  bandwidthBytesPerSec?: number;
  startTimeoutMs?: number;
  /** Token authentication (private registry); default none: anonymous pull and push. */
  tokenAuth?: RegistryTokenAuth;
}

/** docker-registry's `auth: token` settings: where clients get tokens, and what it trusts in them. */
export interface RegistryTokenAuth {
  /** URL of the token endpoint, named in the registry's Bearer challenges. */
  realm: string;
  /** The `service` of the challenges, and the `aud` a token must carry. */
  service: string;
  /** The `iss` a token must carry. */
  issuer: string;
  /** PEM certificates the token signing certificate (the JWT's x5c) must chain to. */
  rootCertBundlePath: string;
}

/** Registry credentials, as skopeo's --dest-creds and the kubelet's pull secrets carry them. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface PushOptions {
  /** Push through the counting proxy instead of directly to the registry. Default false. */
  viaProxy?: boolean;
  timeoutMs?: number;
  /** For a registry with tokenAuth: a user the token service grants push (and pull) to. Default: none sent. */
  credentials?: RegistryCredentials;
}

export interface Upstream {
  /** "127.0.0.1:PORT" of the counting proxy: what clients use. */
  host: string;
  /** "127.0.0.1:PORT" of docker-registry itself (not counted, never limited). */
  directHost: string;
  /** PID of the docker-registry process. */
  pid: number;
  logFile: string;
  /** Requests seen by the proxy since the start or the last resetCounts(). */
  counts(): Counts;
  resetCounts(): void;
  setBandwidth(bytesPerSec: number | undefined): void;
  /** Pushes an OCI layout as <name>:<tag>; resolves with the pushed digest. */
  push(layoutDir: string, name: string, tag: string, options?: PushOptions): Promise<string>;
  /** Stops the proxy and the registry; resolves when the registry process has exited. */
  stop(): Promise<void>;
}

function authSection(tokenAuth: RegistryTokenAuth | undefined): string[] {
  if (tokenAuth === undefined) return [];
  return [
    'auth:',
    '  token:',
    `    realm: ${JSON.stringify(tokenAuth.realm)}`,
    `    service: ${JSON.stringify(tokenAuth.service)}`,
    `    issuer: ${JSON.stringify(tokenAuth.issuer)}`,
    `    rootcertbundle: ${JSON.stringify(tokenAuth.rootCertBundlePath)}`,
  ];
}

function registryConfig(storageDir: string, addr: string, tokenAuth: RegistryTokenAuth | undefined): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(storageDir)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${addr}`,
    '  secret: mirra-test-upstream',
    'health:',
    '  storagedriver:',
    '    enabled: false',
    ...authSection(tokenAuth),
    '',
  ].join('\n');
}

/** Whether /v2/ answers: 200, or 401 with a challenge when it requires tokens. */
async function registryAnswers(host: string, tokenAuth: RegistryTokenAuth | undefined): Promise<boolean> {
  const res = await fetch(`http://${host}/v2/`);
  await res.body?.cancel();
  if (tokenAuth !== undefined) return res.status === 401 && (res.headers.get('www-authenticate') ?? '').startsWith('Bearer ');
  return res.ok;
}

async function startRegistry(dir: string, options: UpstreamOptions): Promise<{ registry: Managed; directHost: string; logFile: string }> {
  const { tokenAuth } = options;
  const timeoutMs = options.startTimeoutMs ?? 15_000;
  const logFile = join(dir, 'registry.log');
  const configFile = join(dir, 'config.yml');
  let lastError: unknown;
  // freePort() can race with other processes taking the port: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const directHost = `127.0.0.1:${await freePort()}`;
    await writeFile(configFile, registryConfig(join(dir, 'storage'), directHost, tokenAuth));
    const registry = startProcess({ name: 'docker-registry', command: REGISTRY_BIN, args: ['serve', configFile], logFile });
    try {
      await Promise.race([
        waitFor(`docker-registry on ${directHost}`, () => registryAnswers(directHost, tokenAuth), timeoutMs),
        registry.exited.then((code) => {
          throw new Error(`docker-registry exited (${code}) before answering; see ${logFile}`);
        }),
      ]);
      return { registry, directHost, logFile };
    } catch (err) {
      lastError = err;
      await registry.stop(1000);
    }
  }
  throw lastError;
}

export async function startUpstream(options: UpstreamOptions): Promise<Upstream> {
  await mkdir(join(options.dir, 'storage'), { recursive: true });
  const { registry, directHost, logFile } = await startRegistry(options.dir, options);
  let proxy: CountingProxy;
  try {
    proxy = await startCountingProxy({ target: directHost, bandwidthBytesPerSec: options.bandwidthBytesPerSec });
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return {
    host: proxy.host,
    directHost,
    pid: registry.pid,
    logFile,
    counts: () => proxy.counts(),
    resetCounts: () => proxy.resetCounts(),
    setBandwidth: (bytesPerSec) => proxy.setBandwidth(bytesPerSec),
    push: (layoutDir, name, tag, pushOptions = {}) =>
      pushImage(layoutDir, { host: pushOptions.viaProxy === true ? proxy.host : directHost, name, tag }, pushOptions),
    async stop() {
      await proxy.stop();
      await registry.stop();
    },
  };
}

/**
 * Copies the image (or index, with all its platforms) of an OCI layout to
 * docker://<host>/<name>:<tag> over plain HTTP with skopeo, preserving digests.
 * Independent of /etc/containers: policy, registries.conf and temp dirs are
 * private; no credentials are sent unless given (skopeo then gets a token
 * from the registry's realm with them). Resolves with the digest of what was
 * pushed.
 */
export async function pushImage(
  layoutDir: string,
  dest: { host: string; name: string; tag: string },
  options: { timeoutMs?: number; credentials?: RegistryCredentials } = {},
): Promise<string> {
  const { host, name, tag } = dest;
  const workDir = await mkdtemp(join(tmpdir(), 'mirra-skopeo-'));
  try {
    const policyFile = join(workDir, 'policy.json');
    const registriesConf = join(workDir, 'registries.conf');
    const registriesD = join(workDir, 'registries.d');
    const digestFile = join(workDir, 'digest');
    await writeFile(policyFile, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await writeFile(registriesConf, '');
    await mkdir(registriesD);
    const args = [
      '--policy',
      policyFile,
      '--registries.d',
      registriesD,
      '--tmpdir',
      workDir,
      'copy',
      '--quiet',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      ...(options.credentials === undefined ? ['--dest-no-creds'] : ['--dest-creds', `${options.credentials.username}:${options.credentials.password}`]),
      '--digestfile',
      digestFile,
      `oci:${layoutDir}`,
      `docker://${host}/${name}:${tag}`,
    ];
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf, TMPDIR: workDir, HOME: workDir };
    try {
      await promisify(execFile)(SKOPEO_BIN, args, { env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 4 << 20 });
    } catch (err) {
      const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr).trim() : '';
      throw new Error(`skopeo copy ${layoutDir} -> ${host}/${name}:${tag} failed: ${stderr || String(err)}`, { cause: err });
    }
    return (await readFile(digestFile, 'utf8')).trim();
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
