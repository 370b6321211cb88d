// The soak's workload: pulls of the images in use (images.ts' rotating
// window) on random nodes at random moments, sometimes the same image on 2-4
// nodes at the same moment (a rollout: coalescing, peers serving peers). An
// image a node already holds is removed first and pulled again, and now and
// then an image that left the window is removed from a node (churn: the index
// and the peers must follow). One operation per node at a time (the kubelet
// pulls an image once, and a removal racing its own pull would say nothing);
// all choices from the workload's PRNG stream.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import { windowAt, type SoakImage } from './images.ts';
import type { Random } from './prng.ts';
import { pullWithRetries, type PullRecord } from './pull.ts';

export interface WorkloadContext {
  readonly cluster: Cluster;
  readonly pool: readonly SoakImage[];
  readonly random: Random;
  /** ms since the epoch when the run started (the window rotates from it). */
  readonly startedAt: number;
  readonly boundMs: number;
  /** Every pull, in order of start. */
  readonly records: PullRecord[];
  /** Image names each node holds (node name to names). */
  readonly held: Map<string, Set<string>>;
  /** Nodes with an operation (removal, pull) in progress. */
  readonly busy: Set<string>;
  /** Nodes whose containerd is pulling now (the CRI call in progress). */
  readonly pulling: Set<string>;
  /** Problems of the workload itself (a removal that kept failing). */
  readonly problems: string[];
  log(line: string): void;
}

const MAX_IN_FLIGHT = 5;
const GAP_MS: [number, number] = [100, 1200];
const WAVE_CHANCE = 0.3;
const CHURN_CHANCE = 0.25;
const REMOVE_TRIES = 8;

/** Removes an image from the node, retried (containerd may be restarting); false when it kept failing. */
async function removeHeld(ctx: WorkloadContext, node: ClusterNode, image: SoakImage): Promise<boolean> {
  for (let attempt = 1; attempt <= REMOVE_TRIES; attempt++) {
    try {
      await node.containerd.removeImage(image.ref);
      ctx.held.get(node.name)?.delete(image.name);
      return true;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message.includes(`no image ${image.ref}`)) {
        ctx.held.get(node.name)?.delete(image.name);
        return true;
      }
      if (attempt === REMOVE_TRIES) ctx.problems.push(`${node.name}: could not remove ${image.name}: ${message}`);
      await sleep(1000 * attempt);
    }
  }
  return false;
}

interface Launch {
  node: ClusterNode;
  image: SoakImage;
  wave: number | undefined;
  /** An image out of the window to remove from the node first, if any. */
  churn: SoakImage | undefined;
}

/** One node's operation: churn, removal of the image if held, the pull with retries. */
async function operate(ctx: WorkloadContext, launch: Launch, record: PullRecord): Promise<void> {
  const { node, image, churn } = launch;
  try {
    if (churn !== undefined) await removeHeld(ctx, node, churn);
    if (ctx.held.get(node.name)?.has(image.name) === true && !(await removeHeld(ctx, node, image))) {
      record.outcome = 'failed';
      record.problem = 'the image could not be removed before the pull';
      return;
    }
    record.startedAt = Date.now();
    ctx.pulling.add(node.name);
    await pullWithRetries({ node, boundMs: ctx.boundMs }, record).finally(() => ctx.pulling.delete(node.name));
    if (record.outcome === 'completed' || record.outcome === 'corrupt') ctx.held.get(node.name)?.add(image.name);
  } finally {
    record.endedAt = Date.now();
    ctx.busy.delete(node.name);
    const retries = record.attempts.length - 1;
    const how =
      record.outcome === 'completed' ? `${((record.endedAt - record.startedAt) / 1000).toFixed(1)} s` : `${record.outcome.toUpperCase()}: ${record.problem}`;
    ctx.log(
      `pull #${record.id} ${node.name} ${image.name}${launch.wave === undefined ? '' : ` (wave ${launch.wave})`}: ${how}${retries > 0 ? `, ${retries} retries` : ''}`,
    );
  }
}

/** What to do next: a wave or a single pull on idle nodes; undefined when no node is idle. */
function nextLaunches(ctx: WorkloadContext, waveNumber: () => number): Launch[] {
  const { random, cluster } = ctx;
  const inFlight = ctx.busy.size;
  const idle = cluster.nodes.filter((node) => !ctx.busy.has(node.name));
  const window = windowAt(ctx.pool, Date.now() - ctx.startedAt);
  const room = Math.min(idle.length, MAX_IN_FLIGHT - inFlight);
  if (room <= 0) return [];
  const image = random.pick(window);
  const wave = room >= 2 && random.chance(WAVE_CHANCE);
  const nodes = wave ? random.sample(idle, random.int(2, Math.min(4, room))) : [random.pick(idle)];
  const waveId = wave ? waveNumber() : undefined;
  return nodes.map((node) => {
    const stale = [...(ctx.held.get(node.name) ?? [])].filter((name) => !window.some((img) => img.name === name));
    const churnName = stale.length > 0 && random.chance(CHURN_CHANCE) ? random.pick(stale) : undefined;
    return { node, image, wave: waveId, churn: ctx.pool.find((img) => img.name === churnName) };
  });
}

/** Runs until `stop` aborts, then waits for the operations in progress (each ends within its bound). */
export async function runWorkload(ctx: WorkloadContext, stop: AbortSignal): Promise<void> {
  for (const node of ctx.cluster.nodes) ctx.held.set(node.name, new Set());
  const running = new Set<Promise<void>>();
  let waves = 0;
  while (!stop.aborted) {
    await sleep(ctx.random.int(...GAP_MS), undefined, { signal: stop }).catch(() => undefined);
    if (stop.aborted) break;
    for (const launch of nextLaunches(ctx, () => ++waves)) {
      const record: PullRecord = {
        id: ctx.records.length + 1,
        node: launch.node.name,
        image: launch.image,
        wave: launch.wave,
        startedAt: Date.now(),
        endedAt: 0,
        attempts: [],
        outcome: 'running',
      };
      ctx.records.push(record);
      ctx.busy.add(launch.node.name);
      const op = operate(ctx, launch, record);
      running.add(op);
      void op.finally(() => running.delete(op));
    }
  }
  await Promise.allSettled([...running]);
}
