// Load shedding with @fastify/under-pressure: when the event loop delay, heap
// or RSS exceed their thresholds, requests are answered at once with
// 503 UNAVAILABLE (OCI error body) and Retry-After, so containerd moves on to
// the next host instead of waiting on an overloaded agent. The plugin's
// sampling timer is unref'd and cleared on close.
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import { RegistryError } from './errors.ts';

export interface UnderPressureOptions {
  /** Mean event loop delay (ms) above which requests are shed; 0 = not checked. */
  maxEventLoopDelayMs: number;
  /** Heap used (bytes) above which requests are shed; 0 = not checked. */
  maxHeapUsedBytes: number;
  /** Resident set size (bytes) above which requests are shed; 0 = not checked. */
  maxRssBytes: number;
  /** Retry-After of the 503 answers. */
  retryAfterSeconds: number;
  /** How often the plugin samples (default 1000 ms; at least 10 ms). */
  sampleIntervalMs?: number;
}

export function installUnderPressure(app: FastifyInstance, options: UnderPressureOptions): void {
  const retryAfter = String(options.retryAfterSeconds);
  app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    maxRssBytes: options.maxRssBytes,
    retryAfter: options.retryAfterSeconds,
    sampleInterval: options.sampleIntervalMs ?? 1000,
    // Rejecting makes the plugin pass the error on to our error handler
    // (OCI body); the headers travel with the RegistryError.
    pressureHandler: async (_request, _reply, type, value) => {
      throw new RegistryError('UNAVAILABLE', { reason: 'under pressure', type, value: value ?? null }, {
        'retry-after': retryAfter,
      });
    },
  });
}
