// Where `mirra shards` and `mirra locate` find the Kubernetes API, in
// kubectl's order: --kubeconfig (which falls back to KUBECONFIG, a list of
// files), else ~/.kube/config, else the pod's service account. A kubeconfig
// is merged by the project's loader (kubectl's rules) and authenticated by
// @kubernetes/client-node (client-node.ts); the service account needs neither
// client-node nor anything beyond the agent's own client, so the commands
// also run in the agent's image, which has no node_modules.
import { statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createKubeClient, createKubeClientOver, type KubeReader } from '../kube/client.ts';
import { loadInCluster, SERVICE_ACCOUNT_DIR } from '../kube/config.ts';
import { currentEntries, KubeConfigError } from '../kube/kubeconfig.ts';
import { clientNodeConfig } from './client-node-config.ts';
import { clientNodeKubeConfig, clientNodeTransport } from './client-node.ts';

export interface ApiSource {
  /** --kubeconfig, or KUBECONFIG through the flag table: one path or a list; empty for none. */
  kubeconfig: string;
  /** --context: empty for the kubeconfig's current-context. */
  context: string;
  /** The environment (HOME, KUBERNETES_SERVICE_HOST/PORT). */
  env: Readonly<Record<string, string | undefined>>;
  /** Where the service account is mounted (tests point elsewhere). */
  serviceAccountDir?: string;
}

export interface ApiConnection {
  readonly client: KubeReader;
  /** The API server URL, for messages. */
  readonly server: string;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The kubeconfig files to merge: the flag's (or KUBECONFIG's) list, else ~/.kube/config when it exists; empty for none. */
function kubeconfigFiles(source: ApiSource): string[] {
  const listed = source.kubeconfig.split(delimiter).filter((path) => path !== '');
  for (const path of listed) if (!isFile(path)) throw new KubeConfigError(`kubeconfig ${path} (--kubeconfig or KUBECONFIG) is not a readable file`);
  if (listed.length > 0) return listed;
  const home = source.env['HOME'];
  const fallback = home === undefined || home === '' ? undefined : join(home, '.kube', 'config');
  return fallback !== undefined && isFile(fallback) ? [fallback] : [];
}

async function throughClientNode(files: readonly string[], context: string): Promise<ApiConnection> {
  const config = clientNodeConfig(currentEntries(files, context));
  const transport = clientNodeTransport(await clientNodeKubeConfig(config), config);
  return { client: createKubeClientOver(transport), server: config.server };
}

/**
 * The client of the first source given; throws KubeConfigError (the
 * kubeconfig, one line) or ClientNodeMissingError (a kubeconfig without
 * @kubernetes/client-node installed).
 */
export async function connectToApi(source: ApiSource): Promise<ApiConnection> {
  const files = kubeconfigFiles(source);
  if (files.length > 0) return throughClientNode(files, source.context);
  if (!source.env['KUBERNETES_SERVICE_HOST']) {
    const home = source.env['HOME'] ? join(source.env['HOME'], '.kube', 'config') : '~/.kube/config (HOME unset)';
    throw new KubeConfigError(
      `no kubeconfig: --kubeconfig not given, KUBECONFIG not set, no ${home}, and not in a pod (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig <file> or set KUBECONFIG`,
    );
  }
  if (source.context !== '') throw new KubeConfigError(`--context ${source.context} needs a kubeconfig; in a pod the service account is used`);
  const loaded = loadInCluster(source.env, source.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
  return { client: createKubeClient(loaded.target), server: loaded.target.server };
}
