// How a person finds their way around a running local cluster (tests/cluster),
// for `npm run cluster` and `npm start -- --keep`: where its parts are, and the
// kubectl, mirra, ctr and curl command lines that work against it, printed as
// a shell takes them. The demo also runs two of them (mirra shards, kubectl for
// the annotations), from the same argument lists.
import type { Cluster } from '../tests/cluster/cluster.ts';

/** The mirra CLI from the repository's root, with the Node 24 that npm installed (the system's node may be older). */
export const MIRRA_COMMAND = ['node_modules/.bin/node', 'cmd/mirra.ts'];
/** kubectl 1.32 as Debian installs it; commands are printed as `kubectl ...`. */
export const KUBECTL = '/usr/bin/kubectl';

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** The command line as a shell takes it: arguments with other characters single-quoted. */
export function shellLine(words: readonly string[]): string {
  return words.map((word) => (SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** `mirra shards` for the cluster's agents (after MIRRA_COMMAND). */
export function shardsArgs(cluster: Cluster): string[] {
  return ['shards', '--kubeconfig', cluster.kubeconfig, '--namespace', cluster.namespace];
}

/** `mirra locate <key>` (a digest or an image reference) through the cluster's API (after MIRRA_COMMAND). */
export function locateArgs(cluster: Cluster, key: string): string[] {
  return ['locate', key, '--kubeconfig', cluster.kubeconfig, '--namespace', cluster.namespace];
}

/** kubectl's arguments that list the agents' pods with their node and status annotations (mirra.dev/index, updated). */
export function annotationsArgs(cluster: Cluster): string[] {
  const columns = [
    'NODE:.spec.nodeName',
    'POD:.metadata.name',
    'INDEX:.metadata.annotations.mirra\\.dev/index',
    'UPDATED:.metadata.annotations.mirra\\.dev/updated',
  ];
  return ['--kubeconfig', cluster.kubeconfig, 'get', 'pods', '-n', cluster.namespace, '-l', cluster.labelSelector, '-o', `custom-columns=${columns.join(',')}`];
}

/** Where the cluster's parts are: its directory, kubeconfig, upstream and each node's agent, pod and containerd. */
export function describeCluster(cluster: Cluster, upstreamNote: string): string[] {
  return [
    `  dir         ${cluster.dir}`,
    `  kubeconfig  ${cluster.kubeconfig}`,
    `  upstream    ${cluster.upstream.host} (${upstreamNote})`,
    ...cluster.nodes.map(
      (node) =>
        `  ${node.name}  agent ${node.url}  pod ${node.podName}${node.zone === undefined ? '' : `  zone ${node.zone}`}  containerd ${node.containerd.socket}`,
    ),
  ];
}

/** Leaves --kubeconfig and its value out of an argument list. */
function notKubeconfig(word: string, i: number, words: readonly string[]): boolean {
  return word !== '--kubeconfig' && words[i - 1] !== '--kubeconfig';
}

/** Command lines to try against the running cluster, from the repository's root; `ref` is an image the upstream has. */
export function commandsToTry(cluster: Cluster, ref: string): string[] {
  const first = cluster.nodes[0];
  const metricsUrl = first?.agent.metricsUrl;
  const lines = [
    `  export KUBECONFIG=${cluster.kubeconfig}`,
    `  kubectl get pods -n ${cluster.namespace} -l ${cluster.labelSelector} -o wide`,
    `  ${shellLine(['kubectl', ...annotationsArgs(cluster).slice(2)])}`,
    `  kubectl get endpointslices -n ${cluster.namespace} -o yaml`,
    // KUBECONFIG is exported above, as kubectl and mirra both read it.
    `  ${shellLine([...MIRRA_COMMAND, ...shardsArgs(cluster).filter(notKubeconfig)])}`,
    `  ${shellLine([...MIRRA_COMMAND, ...locateArgs(cluster, ref).filter(notKubeconfig)])}`,
  ];
  if (first !== undefined) {
    lines.push(
      `  ctr --address ${first.containerd.socket} -n k8s.io images pull --plain-http --hosts-dir ${first.hostsDir} ${ref}`,
      `  curl -s ${first.url}/readyz`,
    );
  }
  if (metricsUrl !== undefined) lines.push(`  curl -s ${metricsUrl} | grep mirra_http_response_bytes_total`);
  return lines;
}
