// Load shedding with @fastify/under-pressure: when the event loop delay,
// utilisation, heap or memory (RSS and live memory, memoryTight) exceed
// their thresholds, requests (all but /healthz) are answered at once with
// 503 UNAVAILABLE (OCI error body) and Retry-After, so containerd moves on to
// the next host instead of waiting on an overloaded agent. The plugin's
// sampling timer is unref'd and cleared on close.
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import { RegistryError } from './errors.ts';

export interface UnderPressureOptions {
  /** Mean event loop delay (ms) above which requests are shed; 0 = not checked. */
  maxEventLoopDelayMs: number;
  /** Heap used (bytes) above which requests are shed; 0 = not checked. */
  maxHeapUsedBytes: number;
  /** Resident set size (bytes) above which requests are shed, while live memory is at least half of it (memoryTight); 0 = not checked. */
  maxRssBytes: number;
  /** Share of the last sample interval the event loop was busy (0-1) above which requests are shed; 0 or absent = not checked. */
  maxEventLoopUtilization?: number;
  /** Retry-After of the 503 answers. */
  retryAfterSeconds: number;
  /** How often the plugin samples (default 1000 ms; at least 10 ms). */
  sampleIntervalMs?: number;
}

/**
 * The agent's thresholds (cmd/registry.ts, --max-event-loop-delay,
 * --max-event-loop-utilization, --max-heap-used, --max-rss), set from
 * `npm run bench:load` (200 blob streams + 1,000 manifest HEADs/s, one agent,
 * 2 cores shared with the load generators, V8 sized as the chart does):
 * - event-loop delay: the mean per second stayed at 10-60 ms (including the
 *   monitor's 10 ms resolution) while the agent was saturated, so 200 ms is
 *   kept for a loop that is really blocked (a long GC, a synchronous
 *   hotspot); saturation itself is handled by the concurrency limits
 *   (concurrency.ts), which tell it apart where these metrics cannot.
 * - event-loop utilisation: off. It is ~1 both under that overload and while
 *   one client is served at full speed (bench:serve failed with 503s at 0.95).
 * - heap and RSS ('auto'): heap used peaked at 38-74 MiB and RSS at
 *   169-240 MiB (idle 92-152 MiB), and on the peer path (bench:load-peer)
 *   at 100 MiB and 270-310 MiB; the thresholds follow the process's real
 *   limits instead (autoMemoryThresholds), so they only fire near an
 *   out-of-memory end. (Without the chart's NODE_OPTIONS, V8 let heap use
 *   reach 200+ MiB of garbage and RSS 420-520 MiB: its young generation
 *   alone grows to 128 MiB.)
 * - sampled every 500 ms, Retry-After 1 s (containerd moves on anyway).
 */
export const DEFAULT_PRESSURE: Readonly<UnderPressureOptions> = {
  maxEventLoopDelayMs: 200,
  maxHeapUsedBytes: 0,
  maxRssBytes: 0,
  maxEventLoopUtilization: 0,
  retryAfterSeconds: 1,
  sampleIntervalMs: 500,
};

/** Share of V8's heap limit above which heap use sheds load. */
const HEAP_LIMIT_SHARE = 0.9;
/** Share of the container's memory limit above which RSS sheds load (180 MiB of the chart's 192 MiB). */
export const MEMORY_LIMIT_SHARE = 0.94;

/**
 * Heap and RSS thresholds from the process's limits: 90% of V8's heap limit
 * (--max-old-space-size and --max-semi-space-size), and 94% of the cgroup's
 * memory limit; no RSS threshold when the process is not constrained.
 */
export function autoMemoryThresholds(): { maxHeapUsedBytes: number; maxRssBytes: number } {
  const constrainedBytes = process.constrainedMemory();
  const limited = constrainedBytes > 0 && constrainedBytes < totalmem();
  return {
    maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * HEAP_LIMIT_SHARE),
    maxRssBytes: limited ? Math.floor(constrainedBytes * MEMORY_LIMIT_SHARE) : 0,
  };
}

export interface PressureSettings {
  maxEventLoopDelayMs: number;
  maxEventLoopUtilization: number;
  maxHeapUsedBytes: number | 'auto';
  maxRssBytes: number | 'auto';
}

/** DEFAULT_PRESSURE with `settings`, 'auto' resolved by autoMemoryThresholds. */
export function resolvePressure(settings: PressureSettings): UnderPressureOptions {
  const auto = autoMemoryThresholds();
  return {
    ...DEFAULT_PRESSURE,
    maxEventLoopDelayMs: settings.maxEventLoopDelayMs,
    maxEventLoopUtilization: settings.maxEventLoopUtilization,
    maxHeapUsedBytes: settings.maxHeapUsedBytes === 'auto' ? auto.maxHeapUsedBytes : settings.maxHeapUsedBytes,
    maxRssBytes: settings.maxRssBytes === 'auto' ? auto.maxRssBytes : settings.maxRssBytes,
  };
}

/**
 * Share of the RSS threshold that live memory (V8 heap used + external, i.e.
 * Buffers) must also reach for RSS to shed load. RSS alone latches: the
 * allocator keeps what a burst freed, so RSS stays near its peak when the
 * load is gone, and an RSS check alone then sheds every request until a
 * restart (bench:load-peer: 245-284 MiB RSS 5 s after the load, with 80-95 MiB
 * live). New work reuses that retained memory; live memory says whether the
 * agent really holds too much.
 */
const LIVE_SHARE_OF_RSS = 0.5;

/** RSS over `maxRssBytes` while live memory is over half of it. */
export function memoryTight(maxRssBytes: number, usage: NodeJS.MemoryUsage = process.memoryUsage()): boolean {
  return usage.rss > maxRssBytes && usage.heapUsed + usage.external > maxRssBytes * LIVE_SHARE_OF_RSS;
}

export function installUnderPressure(app: FastifyInstance, options: UnderPressureOptions): void {
  const retryAfter = String(options.retryAfterSeconds);
  const maxRssBytes = options.maxRssBytes;
  app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    // RSS is checked by memoryTight (the plugin's own check latches).
    maxRssBytes: 0,
    ...(maxRssBytes > 0 ? { healthCheck: async () => !memoryTight(maxRssBytes), healthCheckInterval: options.sampleIntervalMs ?? 1000 } : {}),
    maxEventLoopUtilization: options.maxEventLoopUtilization ?? 0,
    // Per sample interval (the plugin's default is since start, which never comes back down).
    eventLoopUtilizationMode: 'interval',
    retryAfter: options.retryAfterSeconds,
    sampleInterval: options.sampleIntervalMs ?? 1000,
    // Rejecting makes the plugin pass the error on to our error handler
    // (OCI body); the headers travel with the RegistryError.
    pressureHandler: async (request, _reply, type, value) => {
      // Liveness says the process works, not that it is idle: a busy agent must not be restarted.
      if (request.url === '/healthz') return;
      throw new RegistryError(
        'UNAVAILABLE',
        { reason: 'under pressure', type, value: value ?? null },
        {
          'retry-after': retryAfter,
        },
      );
    },
  });
}
