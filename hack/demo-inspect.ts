// What the demo's cluster shows of itself once the pulls are done, as a
// person would look at it: the agents' status annotations on their pods (waited
// for: each agent writes them at most once per --status-interval), `mirra
// shards` (the real CLI, through the kubeconfig the harness wrote), kubectl on
// the annotations, and what each agent's metrics say it sent
// (mirra_http_response_bytes_total).
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { errorMessage } from '../internal/errors/message.ts';
import { STATUS_ANNOTATION } from '../internal/owners/status.ts';
import type { Cluster, ClusterNode } from '../tests/cluster/cluster.ts';
import { parseExposition, sumSamples, type Exposition } from '../tests/support/exposition.ts';
import { waitFor } from '../tests/support/process.ts';
import { annotationsArgs, KUBECTL, shardsArgs } from './cluster-guide.ts';
import { formatBytes, table } from './demo-report.ts';

const MIRRA = fileURLToPath(new URL('../cmd/mirra.ts', import.meta.url));
const run = promisify(execFile);
const BYTES = 'mirra_http_response_bytes_total';

/** The keys a pod's status annotation shows (`mirra.dev/index: v=2;keys=6;...`), or undefined before the first. */
function annotatedKeys(cluster: Cluster, pod: string): number | undefined {
  const annotations: unknown = cluster.api.get('Pod', cluster.namespace, pod)?.metadata['annotations'];
  if (typeof annotations !== 'object' || annotations === null) return undefined;
  const status: unknown = (annotations as Record<string, unknown>)[STATUS_ANNOTATION];
  const keys = typeof status === 'string' ? /;keys=(\d+);/.exec(status)?.[1] : undefined;
  return keys === undefined ? undefined : Number(keys);
}

async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url);
  return parseExposition(await res.text());
}

/** Whether the node's pod annotation shows the keys its agent holds (mirra_advertised_keys), some at least. */
async function statusCurrent(cluster: Cluster, node: ClusterNode): Promise<boolean> {
  const url = node.agent.metricsUrl;
  const shown = annotatedKeys(cluster, node.podName);
  if (url === undefined || shown === undefined || shown === 0) return false;
  return sumSamples(await scrape(url), 'mirra_advertised_keys') === shown;
}

/** Waits (up to 10 s) until every pod's status annotation shows the keys its agent holds; false when they did not in time. */
export async function waitForStatus(cluster: Cluster): Promise<boolean> {
  const check = async (): Promise<boolean> => {
    for (const node of cluster.nodes) if (!(await statusCurrent(cluster, node))) return false;
    return true;
  };
  return waitFor('the status annotations', check, 10_000, 100).then(
    () => true,
    () => false,
  );
}

/** `mirra shards` for the cluster, as it prints it (or its one-line error). */
export async function mirraShards(cluster: Cluster): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [MIRRA, ...shardsArgs(cluster)], { timeout: 30_000 });
    return stdout.trimEnd();
  } catch (err) {
    return `mirra shards failed: ${errorMessage(err)}`;
  }
}

/** kubectl's listing of the pods' status annotations; undefined without kubectl. */
export async function kubectlAnnotations(cluster: Cluster): Promise<string | undefined> {
  if (
    !(await access(KUBECTL)
      .then(() => true)
      .catch(() => false))
  )
    return undefined;
  try {
    const { stdout } = await run(KUBECTL, annotationsArgs(cluster), { timeout: 30_000 });
    return stdout.trimEnd();
  } catch (err) {
    return `kubectl failed: ${errorMessage(err)}`;
  }
}

/** Content bytes (blobs and manifests, misses left out) the agent sent to peers and to its own containerd. */
function contentBytes(exposition: Exposition): { toPeers: number; toContainerd: number } {
  const sum = (match: Record<string, string>): number =>
    ['blob', 'manifest'].reduce((total, handler) => total + sumSamples(exposition, BYTES, { ...match, handler }), 0);
  return {
    toPeers: sum({ from: 'peer', source: 'local' }),
    toContainerd: sum({ from: 'client', source: 'local' }) + sum({ from: 'client', source: 'peer' }),
  };
}

/** Per agent, what its mirra_http_response_bytes_total says it sent to peers and to its containerd. */
export async function agentMetricsLines(cluster: Cluster): Promise<string[]> {
  const rows: string[][] = [];
  for (const node of cluster.nodes) {
    const url = node.agent.metricsUrl;
    if (url === undefined) continue;
    const { toPeers, toContainerd } = contentBytes(await scrape(url));
    rows.push([node.name, `to peers ${formatBytes(toPeers)}`, `to its containerd ${formatBytes(toContainerd)}`]);
  }
  return table(rows);
}
