// Where the agent finds the Kubernetes API: an explicit kubeconfig (flag), else
// the KUBECONFIG variable of the environment passed in, else the pod's service
// account (in-cluster). Nothing is read at import time.
import { readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import type { ApiTarget } from './client.ts';
import { execCredentials, noCredentials, staticToken, tokenFile, type Credentials } from './credentials.ts';
import { KubeConfigError, readKubeconfig, type KubeUser } from './kubeconfig.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigSource {
  /** The --kubeconfig flag, when given. */
  kubeconfigPath?: string | undefined;
  /** The environment to read KUBECONFIG and KUBERNETES_SERVICE_HOST/PORT from (e.g. process.env). */
  env: Readonly<Record<string, string | undefined>>;
  /** Where the service account token, ca.crt and namespace are mounted (tests point elsewhere). */
  serviceAccountDir?: string;
}

export interface LoadedKubeConfig {
  /** How to reach the API; createKubeClient(target) talks to it. */
  readonly target: ApiTarget;
  /** Which source was used. */
  readonly source: 'flag' | 'env' | 'in-cluster';
  /** The kubeconfig context's namespace, or the service account's namespace; undefined when neither says. */
  readonly namespace: string | undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A token (also from a file or a plugin) wins over nothing; client certificates need no header. */
function credentialsOf(user: KubeUser): Credentials {
  if (user.token !== undefined) return staticToken(user.token);
  if (user.tokenFile !== undefined) return tokenFile(user.tokenFile);
  if (user.exec !== undefined) return execCredentials(user.exec);
  return noCredentials;
}

/** A KUBECONFIG-style list of paths (empty entries ignored, as kubectl does). */
function pathList(value: string): string[] {
  return value.split(delimiter).filter((path) => path !== '');
}

function fromFiles(paths: readonly string[], source: 'flag' | 'env', what: string): LoadedKubeConfig {
  for (const path of paths) if (!isFile(path)) throw new KubeConfigError(`${what}: ${path} is not a readable file`);
  try {
    const { cluster, user, namespace } = readKubeconfig(paths);
    const target: ApiTarget = { ...cluster, cert: user.cert, key: user.key, credentials: credentialsOf(user) };
    return { target, source, namespace };
  } catch (err) {
    if (err instanceof KubeConfigError) throw new KubeConfigError(`${what}: ${err.message}`);
    throw err;
  }
}

/** The pod's service account (`mirra shards` run in a pod uses it too, without @kubernetes/client-node); throws KubeConfigError. */
export function loadInCluster(env: KubeConfigSource['env'], dir: string = SERVICE_ACCOUNT_DIR): LoadedKubeConfig {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const tokenPath = join(dir, 'token');
  const caPath = join(dir, 'ca.crt');
  if (!host || !port) {
    throw new KubeConfigError(
      'no Kubernetes API configuration: --kubeconfig not given, KUBECONFIG not set, and not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)',
    );
  }
  if (!isFile(tokenPath)) throw new KubeConfigError(`in-cluster configuration: service account token ${tokenPath} not found`);
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const target: ApiTarget = {
    server,
    ca: isFile(caPath) ? readFileSync(caPath) : undefined,
    cert: undefined,
    key: undefined,
    insecureSkipTlsVerify: false,
    tlsServerName: undefined,
    // Re-read every minute: bound service account tokens rotate.
    credentials: tokenFile(tokenPath),
  };
  let namespace: string | undefined;
  const namespaceFile = join(dir, 'namespace');
  if (isFile(namespaceFile)) namespace = readFileSync(namespaceFile, 'utf8').trim() || undefined;
  return { target, source: 'in-cluster', namespace };
}

/** Loads the configuration from the first source that is given; throws KubeConfigError (one line) when it fails. */
export function loadKubeConfig(source: KubeConfigSource): LoadedKubeConfig {
  if (source.kubeconfigPath !== undefined && source.kubeconfigPath !== '') {
    // The flag falls back to KUBECONFIG (the commands' flag tables), so it may be a list as well.
    return fromFiles(pathList(source.kubeconfigPath), 'flag', `kubeconfig from --kubeconfig`);
  }
  const fromEnv = pathList(source.env['KUBECONFIG'] ?? '');
  if (fromEnv.length > 0) return fromFiles(fromEnv, 'env', 'kubeconfig from KUBECONFIG');
  return loadInCluster(source.env, source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
}
