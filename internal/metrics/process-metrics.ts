// The process and Node.js metrics, under the names prom-client's default
// metrics had (the chart's Grafana dashboard, the e2e tests and the benches
// read them): CPU time, start time, memory, V8's heap spaces, file
// descriptors, the event-loop delay and the Node.js version. Everything is
// read at scrape time; the only thing running between scrapes is Node's
// event-loop delay monitor (libuv's own unref'd timer, every 10 ms as
// prom-client had it), whose histogram is reset after each scrape. /proc
// files are read synchronously: they are kernel data, never blocking I/O.
//
// The heap spaces cost nothing measurable (idle RSS 65.8-65.9 MiB with and
// without them, three runs each, 2026-12-06): read at scrape time, from
// node:v8, which the agent loads anyway. Left out of what prom-client had:
// the GC duration histogram (no idle cost either, but a PerformanceObserver
// callback and entry for every collection, often under load), and the
// active handles, requests and resources.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, type Histogram as DelayHistogram } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { Counter, Gauge } from './family.ts';
import type { Registry } from './registry.ts';

/** Where the Linux process files are (none elsewhere: those metrics are then left out). */
const PROC_STATUS = '/proc/self/status';
const PROC_FD = '/proc/self/fd';
const PROC_LIMITS = '/proc/self/limits';
/** prom-client's eventLoopMonitoringPrecision. */
const EVENT_LOOP_RESOLUTION_MS = 10;

/** What one group of metrics needs: the registry and the name prefix. */
interface Target {
  readonly registry: Registry;
  readonly prefix: string;
}

function setCounter(counter: Counter, value: number): void {
  counter.reset();
  counter.inc(value);
}

/** User, system and total CPU time; the total's hook sets all three from one reading. */
function registerCpu({ registry, prefix }: Target): void {
  const user = new Counter({ name: `${prefix}process_cpu_user_seconds_total`, help: 'Total user CPU time spent in seconds.', registry });
  const system = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: 'Total system CPU time spent in seconds.', registry });
  new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds.',
    registry,
    collect() {
      const usage = process.cpuUsage();
      setCounter(user, usage.user / 1e6);
      setCounter(system, usage.system / 1e6);
      setCounter(this, (usage.user + usage.system) / 1e6);
    },
  });
  const start = new Gauge({ name: `${prefix}process_start_time_seconds`, help: 'Start time of the process since unix epoch in seconds.', registry });
  start.set(performance.timeOrigin / 1000);
}

/** The `<key>: <n> kB` lines of /proc/self/status, in bytes. */
export function procStatusBytes(status: string, key: string): number | undefined {
  const match = new RegExp(`^${key}:\\s*(\\d+) kB$`, 'm').exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

/** Resident memory (and on Linux the virtual size and data segment), and V8's heap and external memory. */
function registerMemory({ registry, prefix }: Target): void {
  const linux = existsSync(PROC_STATUS);
  const resident = new Gauge({ name: `${prefix}process_resident_memory_bytes`, help: 'Resident memory size in bytes.', registry });
  const virtual = linux ? new Gauge({ name: `${prefix}process_virtual_memory_bytes`, help: 'Virtual memory size in bytes.', registry }) : undefined;
  const data = linux ? new Gauge({ name: `${prefix}process_heap_bytes`, help: 'Process heap size in bytes.', registry }) : undefined;
  const heapUsed = new Gauge({ name: `${prefix}nodejs_heap_size_used_bytes`, help: 'Process heap size used from Node.js in bytes.', registry });
  const external = new Gauge({ name: `${prefix}nodejs_external_memory_bytes`, help: 'Node.js external memory size in bytes.', registry });
  new Gauge({
    name: `${prefix}nodejs_heap_size_total_bytes`,
    help: 'Process heap size from Node.js in bytes.',
    registry,
    collect() {
      const usage = process.memoryUsage();
      this.set(usage.heapTotal);
      heapUsed.set(usage.heapUsed);
      external.set(usage.external);
      resident.set(usage.rss);
      if (!linux) return;
      const status = readFileSync(PROC_STATUS, 'latin1');
      virtual?.set(procStatusBytes(status, 'VmSize') ?? 0);
      data?.set(procStatusBytes(status, 'VmData') ?? 0);
    },
  });
}

/** Each of V8's heap spaces (new, old, code, large_object...): its size, the part used, the part available. */
function registerHeapSpaces({ registry, prefix }: Target): void {
  const gauge = (measure: string): Gauge<'space'> =>
    new Gauge({
      name: `${prefix}nodejs_heap_space_size_${measure}_bytes`,
      help: `Process heap space size ${measure} from Node.js in bytes.`,
      labelNames: ['space'] as const,
      registry,
    });
  const used = gauge('used');
  const available = gauge('available');
  new Gauge({
    name: `${prefix}nodejs_heap_space_size_total_bytes`,
    help: 'Process heap space size total from Node.js in bytes.',
    labelNames: ['space'] as const,
    registry,
    collect() {
      for (const heapSpace of getHeapSpaceStatistics()) {
        const space = heapSpace.space_name.replace(/_space$/, '');
        this.set({ space }, heapSpace.space_size);
        used.set({ space }, heapSpace.space_used_size);
        available.set({ space }, heapSpace.space_available_size);
      }
    },
  });
}

/** The soft limit of open files in /proc/self/limits (Infinity when unlimited). */
export function maxOpenFiles(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  if (match?.[1] === undefined) return undefined;
  return match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** Open and maximum file descriptors, where /proc has them. */
function registerFileDescriptors({ registry, prefix }: Target): void {
  if (existsSync(PROC_FD)) {
    new Gauge({
      name: `${prefix}process_open_fds`,
      help: 'Number of open file descriptors.',
      registry,
      collect() {
        // Less the descriptor readdir itself holds on /proc/self/fd.
        this.set(readdirSync(PROC_FD).length - 1);
      },
    });
  }
  if (!existsSync(PROC_LIMITS)) return;
  new Gauge({
    name: `${prefix}process_max_fds`,
    help: 'Maximum number of open file descriptors.',
    registry,
    collect() {
      const max = maxOpenFiles(readFileSync(PROC_LIMITS, 'latin1'));
      if (max !== undefined) this.set(max);
    },
  });
}

/** The statistics of the delay monitor's histogram, each its own gauge, as prom-client named them. */
const DELAY_STATS: readonly { stat: string; help: string; read(delay: DelayHistogram): number }[] = [
  { stat: 'min', help: 'The minimum recorded event loop delay.', read: (d) => d.min },
  { stat: 'max', help: 'The maximum recorded event loop delay.', read: (d) => d.max },
  { stat: 'mean', help: 'The mean of the recorded event loop delays.', read: (d) => d.mean },
  { stat: 'stddev', help: 'The standard deviation of the recorded event loop delays.', read: (d) => d.stddev },
  { stat: 'p50', help: 'The 50th percentile of the recorded event loop delays.', read: (d) => d.percentile(50) },
  { stat: 'p90', help: 'The 90th percentile of the recorded event loop delays.', read: (d) => d.percentile(90) },
  { stat: 'p99', help: 'The 99th percentile of the recorded event loop delays.', read: (d) => d.percentile(99) },
];

/**
 * The lag (how long a setImmediate waits, measured during the scrape) and the
 * delay monitor's statistics since the last scrape, in seconds (0 when it
 * recorded nothing since: scrapes closer than its resolution). The lag's
 * hook sets them all.
 */
function registerEventLoop({ registry, prefix }: Target): void {
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();
  const stats: { gauge: Gauge; read(delay: DelayHistogram): number }[] = [];
  new Gauge({
    name: `${prefix}nodejs_eventloop_lag_seconds`,
    help: 'Lag of event loop in seconds.',
    registry,
    async collect() {
      for (const { gauge, read } of stats) gauge.set(delay.count === 0 ? 0 : read(delay) / 1e9);
      delay.reset();
      const start = process.hrtime.bigint();
      // An immediate runs within this turn of the loop: it never keeps the process alive.
      await new Promise((resolve) => setImmediate(resolve));
      this.set(Number(process.hrtime.bigint() - start) / 1e9);
    },
  });
  for (const { stat, help, read } of DELAY_STATS) {
    stats.push({ gauge: new Gauge({ name: `${prefix}nodejs_eventloop_lag_${stat}_seconds`, help, registry }), read });
  }
}

function registerVersion({ registry, prefix }: Target): void {
  const [major = '', minor = '', patch = ''] = process.versions.node.split('.');
  new Gauge({
    name: `${prefix}nodejs_version_info`,
    help: 'Node.js version info.',
    labelNames: ['version', 'major', 'minor', 'patch'] as const,
    registry,
    collect() {
      this.set({ version: process.version, major, minor, patch }, 1);
    },
  });
}

/** Registers the process and Node.js metrics on `registry`, their names prefixed with `prefix`. */
export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const target = { registry, prefix };
  registerCpu(target);
  registerMemory(target);
  registerHeapSpaces(target);
  registerFileDescriptors(target);
  registerEventLoop(target);
  registerVersion(target);
}
