// Where the agent finds the Kubernetes API: an explicit kubeconfig (flag), else
// the KUBECONFIG variable of the environment passed in, else the pod's service
// account (in-cluster). Nothing is read at import time.
import { readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

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
  readonly kubeConfig: KubeConfig;
  /** Which source was used. */
  readonly source: 'flag' | 'env' | 'in-cluster';
  /** The kubeconfig context's namespace, or the service account's namespace; undefined when neither says. */
  readonly namespace: string | undefined;
  /** The API server URL, for logs. */
  readonly server: string;
}

/** One clear line about why no Kubernetes API configuration could be loaded. */
export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

function finish(kubeConfig: KubeConfig, source: LoadedKubeConfig['source'], what: string, namespace?: string): LoadedKubeConfig {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null || cluster.server === '') {
    throw new KubeConfigError(`${what}: no current cluster (check current-context)`);
  }
  if (cluster.server.startsWith('http:') && cluster.skipTLSVerify !== true) {
    throw new KubeConfigError(`${what}: plain http server ${cluster.server} needs insecure-skip-tls-verify: true`);
  }
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  return { kubeConfig, source, namespace: namespace ?? (contextNamespace || undefined), server: cluster.server };
}

function fromFiles(paths: readonly string[], source: 'flag' | 'env', what: string): LoadedKubeConfig {
  const kubeConfig = new KubeConfig();
  paths.forEach((path, i) => {
    if (!isFile(path)) throw new KubeConfigError(`${what}: ${path} is not a readable file`);
    try {
      if (i === 0) {
        kubeConfig.loadFromFile(path);
      } else {
        const more = new KubeConfig();
        more.loadFromFile(path);
        kubeConfig.mergeConfig(more, true);
      }
    } catch (err) {
      throw new KubeConfigError(`${what}: cannot load ${path}: ${reason(err)}`);
    }
  });
  return finish(kubeConfig, source, what);
}

function inCluster(env: KubeConfigSource['env'], dir: string): LoadedKubeConfig {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  if (!host || !port) {
    throw new KubeConfigError(
      'no Kubernetes API configuration: --kubeconfig not given, KUBECONFIG not set, and not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)',
    );
  }
  if (!isFile(tokenFile)) throw new KubeConfigError(`in-cluster configuration: service account token ${tokenFile} not found`);
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile: isFile(caFile) ? caFile : undefined, skipTLSVerify: false }],
    // tokenFile: client-node re-reads the file, so rotated (bound) tokens are picked up.
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  let namespace: string | undefined;
  const namespaceFile = join(dir, 'namespace');
  if (isFile(namespaceFile)) namespace = readFileSync(namespaceFile, 'utf8').trim() || undefined;
  return finish(kubeConfig, 'in-cluster', 'in-cluster configuration', namespace);
}

/** Loads the configuration from the first source that is given; throws KubeConfigError (one line) when it fails. */
export function loadKubeConfig(source: KubeConfigSource): LoadedKubeConfig {
  if (source.kubeconfigPath !== undefined && source.kubeconfigPath !== '') {
    return fromFiles([source.kubeconfigPath], 'flag', `kubeconfig from --kubeconfig`);
  }
  const fromEnv = (source.env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) return fromFiles(fromEnv, 'env', 'kubeconfig from KUBECONFIG');
  return inCluster(source.env, source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
}
