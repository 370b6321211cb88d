// What each agent holds over the soak, from /proc: open file descriptors and
// how many of them are sockets (/proc/<pid>/fd), and its resident memory
// (VmRSS, and VmHWM, the kernel's own peak, so a peak between samples is not
// missed). At a new peak above 150 MiB the agent's /metrics say what the
// memory is (V8 heap used, external memory: buffers). Sampled every second
// per agent process; an agent started again
// during the run is a new incarnation, whose baseline is its first sample
// once its pod is ready (the first agents' baselines: before the workload
// starts).
import { readdir, readFile, readlink } from 'node:fs/promises';
import { request } from 'node:http';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import { metricValues } from '../bench/load-support.ts';

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
  /** The highest RssAnon sample: the anonymous part of RSS (a cgroup can reclaim file pages, the binary's, not these). */
  peakAnonBytes: number;
  /** When the highest VmRSS sample was taken, and what /metrics said then (above 150 MiB only). */
  peak: PeakSample | undefined;
}

export interface PeakSample {
  at: number;
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
}

/** The memory fields of /proc/<pid>/status, in bytes (0 when missing). */
interface Memory {
  rss: number;
  hwm: number;
  anon: number;
  file: number;
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
const BREAKDOWN_ABOVE_BYTES = 150 * 1024 * 1024;

/** GET of /metrics on a fresh connection that is closed after (no keep-alive socket left in the agent). */
function metricsText(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 900 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
      res.on('error', () => resolve(''));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
    req.end();
  });
}

/** A new highest VmRSS sample: when, and (above 150 MiB) what the agent's metrics say its memory is. */
async function notePeak(inc: Incarnation, node: ClusterNode, memory: Memory): Promise<void> {
  if (memory.rss <= (inc.peak?.rssBytes ?? 0)) return;
  const sample: PeakSample = { at: Date.now(), rssBytes: memory.rss, anonBytes: memory.anon, fileBytes: memory.file, heapUsedBytes: NaN, externalBytes: NaN };
  inc.peak = sample;
  const url = node.agent.metricsUrl;
  if (memory.rss < BREAKDOWN_ABOVE_BYTES || url === undefined) return;
  const values = metricValues(await metricsText(url), ['mirra_nodejs_heap_size_used_bytes', 'mirra_nodejs_external_memory_bytes']);
  sample.heapUsedBytes = values.get('mirra_nodejs_heap_size_used_bytes') ?? NaN;
  sample.externalBytes = values.get('mirra_nodejs_external_memory_bytes') ?? NaN;
}

async function memoryOf(pid: number): Promise<Memory> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match === null ? 0 : Number(match[1]) * 1024;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM'), anon: field('RssAnon'), file: field('RssFile') };
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
    inc = { node: node.name, pid, seenAt: Date.now(), baseline: undefined, last: undefined, peakRssBytes: 0, peakAnonBytes: 0, peak: undefined };
    incarnations.push(inc);
  }
  const [handles, memory] = await Promise.all([handlesOf(pid), memoryOf(pid)]);
  if (handles === undefined) return;
  inc.last = handles;
  inc.peakRssBytes = Math.max(inc.peakRssBytes, memory.rss, memory.hwm);
  inc.peakAnonBytes = Math.max(inc.peakAnonBytes, memory.anon);
  await notePeak(inc, node, memory);
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
