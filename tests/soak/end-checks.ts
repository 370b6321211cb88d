// The end of a soak run: everything a fault may have left stopped is started
// again (agents, containerds, the API stand-in, the upstream's bandwidth,
// the fault proxies), then every agent must be ready and serve: `/v2/`, a
// blob its node holds, and a blob only other nodes hold (through its peers);
// then its descriptors must come back near its baseline: keep-alive
// connections from containerd, peers and the fault proxies close on their
// own idle timeouts (the agent closes an idle keep-alive after 72 s), so
// they get up to 100 s to.
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import { waitFor } from '../support/process.ts';
import type { ResourceTracker } from './agent-resources.ts';
import type { SoakImage } from './images.ts';
import { FD_GROWTH_LIMIT } from './report.ts';

export interface EndContext {
  cluster: Cluster;
  tracker: ResourceTracker;
  pool: readonly SoakImage[];
  /** Image names each node holds. */
  held: ReadonlyMap<string, ReadonlySet<string>>;
  upstreamBytesPerSec: number;
  problems: string[];
  log(line: string): void;
}

const SETTLE_LIMIT_MS = 100_000;

/** The status of a HEAD on a fresh connection that is closed after (no keep-alive socket left in the agent). */
function headStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'HEAD', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

function agentRunning(node: ClusterNode): boolean {
  try {
    return node.agent.process.isRunning();
  } catch {
    return false;
  }
}

/** Starts again whatever is down and clears every fault. */
export async function restoreAll(ctx: EndContext): Promise<void> {
  const { cluster } = ctx;
  await cluster.api.restart().catch(() => undefined); // rejects when it is running
  cluster.api.faults.clear();
  cluster.upstream.setBandwidth(ctx.upstreamBytesPerSec);
  for (const node of cluster.nodes) {
    node.faults?.faultRedirects(false);
    await node.faults?.set({ kind: 'none' });
    if (!agentRunning(node)) {
      ctx.problems.push(`${node.name}'s agent was not running at the end`);
      await node.restartAgent();
    }
  }
}

function blobUrl(cluster: Cluster, node: ClusterNode, image: SoakImage, digest: string): string {
  const repository = image.name.split(':')[0] ?? '';
  return `${node.agent.url}/v2/${repository}/blobs/${digest}?ns=${encodeURIComponent(cluster.upstream.host)}`;
}

/** Every agent ready, answering /v2/, serving a blob its node holds and one only its peers hold. */
export async function checkServing(ctx: EndContext): Promise<void> {
  const { cluster, pool, held } = ctx;
  await cluster
    .waitReady(60_000)
    .catch((err: unknown) => ctx.problems.push(`not every agent was ready at the end: ${err instanceof Error ? err.message : String(err)}`));
  for (const node of cluster.nodes) {
    const own = held.get(node.name) ?? new Set<string>();
    const mine = pool.find((image) => own.has(image.name));
    const others = pool.find((image) => !own.has(image.name) && cluster.nodes.some((n) => held.get(n.name)?.has(image.name) === true));
    const checks: Array<[string, string]> = [['/v2/', `${node.agent.url}/v2/`]];
    if (mine !== undefined) checks.push([`its own ${mine.name}`, blobUrl(cluster, node, mine, mine.blobs.at(-1)?.digest ?? '')]);
    if (others !== undefined) checks.push([`${others.name} from its peers`, blobUrl(cluster, node, others, others.blobs.at(-1)?.digest ?? '')]);
    for (const [what, url] of checks) {
      await waitFor(`${node.name} to serve ${what}`, async () => (await headStatus(url)) === 200, 20_000, 250).catch(() =>
        ctx.problems.push(`${node.name}'s agent did not serve ${what} at the end`),
      );
    }
  }
}

/** Waits until every agent's descriptors are within the limit of its baseline (or the settle time is over); the growth per node. */
export async function settleHandles(ctx: EndContext): Promise<Array<{ node: string; fds: number; sockets: number }>> {
  const { cluster, tracker } = ctx;
  const start = Date.now();
  const deadline = start + SETTLE_LIMIT_MS;
  for (;;) {
    await tracker.sample();
    const growth = cluster.nodes.map((node) => {
      const inc = tracker.current(node);
      const base = inc?.baseline;
      const last = inc?.last;
      return { node: node.name, fds: base && last ? last.fds - base.fds : NaN, sockets: base && last ? last.sockets - base.sockets : NaN };
    });
    const settled = growth.every((g) => g.fds <= FD_GROWTH_LIMIT);
    if (settled || Date.now() > deadline) {
      ctx.log(
        `soak: descriptors ${settled ? 'back within' : 'still above'} ${FD_GROWTH_LIMIT} of each agent's baseline after ${((Date.now() - start) / 1000).toFixed(0)} s of quiet`,
      );
      return growth;
    }
    await sleep(2000);
  }
}
