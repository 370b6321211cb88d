// What each agent holds over the soak, from /proc: open file descriptors and
// how many of them are sockets (/proc/<pid>/fd), and its resident memory
// (VmRSS, and VmHWM, the kernel's own peak, so a peak between samples is not
// missed). Sampled every second per agent process; an agent started again
// during the run is a new incarnation, whose baseline is its first sample
// once its pod is ready (the first agents' baselines: before the workload
// starts).
import { readdir, readFile, readlink } from 'node:fs/promises';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';

export interface Handles {
  fds: number;
  sockets: number;
}

export interface Incarnation {
  readonly node: string;
  readonly pid: number;
  /** ms since the epoch when it was first seen. */
  readonly seenAt: number;
  baseline: Handles | undefined;
  last: Handles | undefined;
  /** The highest of its VmRSS samples and VmHWM, in bytes. */
  peakRssBytes: number;
}

export interface ResourceTracker {
  readonly incarnations: Incarnation[];
  /** The node's current agent process's incarnation (undefined while none runs). */
  current(node: ClusterNode): Incarnation | undefined;
  /** Samples every agent now. */
  sample(): Promise<void>;
  stop(): void;
}

const SAMPLE_MS = 1000;

async function statusBytes(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** The process's open descriptors and sockets; undefined when it is gone. */
export async function handlesOf(pid: number): Promise<Handles | undefined> {
  const dir = `/proc/${pid}/fd`;
  const names = await readdir(dir).catch(() => undefined);
  if (names === undefined) return undefined;
  const targets = await Promise.all(names.map((name) => readlink(`${dir}/${name}`).catch(() => '')));
  return { fds: names.length, sockets: targets.filter((target) => target.startsWith('socket:')).length };
}

function runningPid(node: ClusterNode): number | undefined {
  try {
    return node.agent.process.isRunning() ? node.agent.process.pid : undefined;
  } catch {
    return undefined;
  }
}

async function sampleNode(incarnations: Incarnation[], node: ClusterNode): Promise<void> {
  const pid = runningPid(node);
  if (pid === undefined) return;
  let inc = incarnations.find((i) => i.pid === pid);
  if (inc === undefined) {
    inc = { node: node.name, pid, seenAt: Date.now(), baseline: undefined, last: undefined, peakRssBytes: 0 };
    incarnations.push(inc);
  }
  const [handles, rss, hwm] = await Promise.all([handlesOf(pid), statusBytes(pid, 'VmRSS'), statusBytes(pid, 'VmHWM')]);
  if (handles === undefined) return;
  inc.last = handles;
  inc.peakRssBytes = Math.max(inc.peakRssBytes, rss, hwm);
  if (inc.baseline === undefined && node.ready()) inc.baseline = handles;
}

export function trackAgents(cluster: Cluster): ResourceTracker {
  const incarnations: Incarnation[] = [];
  let sampling: Promise<void> = Promise.resolve();
  const sample = (): Promise<void> => {
    sampling = sampling.then(() => Promise.all(cluster.nodes.map((node) => sampleNode(incarnations, node)))).then(() => undefined);
    return sampling;
  };
  const timer = setInterval(() => void sample(), SAMPLE_MS);
  return {
    incarnations,
    current(node) {
      const pid = runningPid(node);
      return pid === undefined ? undefined : incarnations.find((i) => i.pid === pid);
    },
    sample,
    stop: () => clearInterval(timer),
  };
}
