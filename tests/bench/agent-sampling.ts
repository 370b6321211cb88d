// Sampling a running agent during a load bench: RSS from /proc every 100 ms
// (and VmHWM at the end, so a peak between samples is not missed), CPU time
// from /proc/<pid>/stat, and from its /metrics every second the event-loop
// delay, V8 heap and external memory. bench:load and bench:load-peer both use it.
import { readFile } from 'node:fs/promises';
import { metricValues, procStatusBytes } from './load-support.ts';

const RSS_SAMPLE_MS = 100;
const METRICS_SAMPLE_MS = 1000;

export interface Series {
  rssBytes: number[];
  lagMeanMs: number[];
  lagP99Ms: number[];
  heapUsedBytes: number[];
  heapTotalBytes: number[];
  externalBytes: number[];
  /** CPU time of the agent per second of wall time (1 = one core), from /proc/<pid>/stat. */
  cpuCores: number[];
  /** The highest RSS: of the samples and VmHWM. */
  peakRssBytes: number;
  /** VmHWM when sampling stopped. */
  hwmBytes: number;
}

/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command (which may hold spaces) start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / 100 : undefined;
}

export const max = (values: readonly number[]): number => values.reduce((a, b) => Math.max(a, b), 0);

/** Samples `pid` until stop(); metricsUrl undefined: /proc only. */
export function startSampling(pid: number, metricsUrl: string | undefined): { stop(): Promise<Series> } {
  const series: Omit<Series, 'peakRssBytes' | 'hwmBytes'> = {
    rssBytes: [],
    lagMeanMs: [],
    lagP99Ms: [],
    heapUsedBytes: [],
    heapTotalBytes: [],
    externalBytes: [],
    cpuCores: [],
  };
  let lastCpu: { seconds: number; at: number } | undefined;
  const rssTimer = setInterval(() => {
    void procStatusBytes(pid, 'VmRSS').then((bytes) => bytes > 0 && series.rssBytes.push(bytes));
  }, RSS_SAMPLE_MS);
  const metrics: Array<[string, number[], number]> = [
    ['mirra_nodejs_eventloop_lag_mean_seconds', series.lagMeanMs, 1000],
    ['mirra_nodejs_eventloop_lag_p99_seconds', series.lagP99Ms, 1000],
    ['mirra_nodejs_heap_size_used_bytes', series.heapUsedBytes, 1],
    ['mirra_nodejs_heap_size_total_bytes', series.heapTotalBytes, 1],
    ['mirra_nodejs_external_memory_bytes', series.externalBytes, 1],
  ];
  const metricsTimer = setInterval(() => {
    void cpuSeconds(pid).then((seconds) => {
      const at = performance.now();
      if (seconds !== undefined && lastCpu !== undefined) series.cpuCores.push((seconds - lastCpu.seconds) / ((at - lastCpu.at) / 1000));
      if (seconds !== undefined) lastCpu = { seconds, at };
    });
    if (metricsUrl === undefined) return;
    void fetch(metricsUrl, { signal: AbortSignal.timeout(900) })
      .then((res) => res.text())
      .then((text) => {
        const values = metricValues(
          text,
          metrics.map(([name]) => name),
        );
        for (const [name, into, scale] of metrics) {
          const value = values.get(name);
          if (value !== undefined) into.push(value * scale);
        }
      })
      .catch(() => {});
  }, METRICS_SAMPLE_MS);
  return {
    async stop() {
      clearInterval(rssTimer);
      clearInterval(metricsTimer);
      const hwmBytes = await procStatusBytes(pid, 'VmHWM');
      return { ...series, hwmBytes, peakRssBytes: Math.max(max(series.rssBytes), hwmBytes) };
    },
  };
}
