// The hedge delay: how long to wait for the first peer's response headers
// before asking a second peer as well. It adapts to the peers: the chosen
// quantile (p90 by default) of the most recent header latencies, clamped to
// [minDelayMs, maxDelayMs]. A quantile and not a mean: a hedge should fire for
// the slow tail only, about one request in ten, not for every request that is
// a little slower than average.

export interface HedgeOptions {
  /** Lower bound of the delay (default 20 ms). */
  minDelayMs?: number;
  /** Upper bound of the delay (default 500 ms). */
  maxDelayMs?: number;
  /** Delay before any latency was observed (default 100 ms). */
  initialDelayMs?: number;
  /** Quantile of the recent latencies used as the delay (default 0.9). */
  quantile?: number;
  /** How many recent latencies are kept (default 64). */
  windowSize?: number;
}

export interface HedgeDelay {
  /** The current delay in ms. */
  delayMs(): number;
  /** Records the time a peer took to send response headers. */
  observe(latencyMs: number): void;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

export function createHedgeDelay(options: HedgeOptions = {}): HedgeDelay {
  const minMs = options.minDelayMs ?? 20;
  const maxMs = Math.max(minMs, options.maxDelayMs ?? 500);
  const initialMs = clamp(options.initialDelayMs ?? 100, minMs, maxMs);
  const quantile = clamp(options.quantile ?? 0.9, 0, 1);
  const windowSize = Math.max(1, Math.floor(options.windowSize ?? 64));
  const samples = new Float64Array(windowSize);
  const sorted = new Float64Array(windowSize);
  let count = 0;
  let next = 0;
  /** Cached delay; undefined after a new sample. */
  let cached: number | undefined = initialMs;

  return {
    delayMs() {
      if (cached !== undefined) return cached;
      const view = sorted.subarray(0, count);
      view.set(samples.subarray(0, count));
      view.sort();
      const index = Math.min(count - 1, Math.ceil(quantile * count) - 1);
      cached = clamp(view[Math.max(0, index)] ?? initialMs, minMs, maxMs);
      return cached;
    },
    observe(latencyMs) {
      if (!Number.isFinite(latencyMs) || latencyMs < 0) return;
      samples[next] = latencyMs;
      next = (next + 1) % windowSize;
      count = Math.min(count + 1, windowSize);
      cached = undefined;
    },
  };
}
